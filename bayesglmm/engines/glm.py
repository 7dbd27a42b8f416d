"""Models without random-effect terms: the GLM, fitted exactly.

A formula such as ``y ~ x`` (no ``( | )`` term) has nothing to integrate over, so every
method reduces to a generalized linear model.  lme4's ``glmer``/``lmer`` refuse such a
formula; here it is fitted, because "why random effects?" is taught by comparing exactly
these two models, and every fit of one says so in a note (:data:`GLM_NOTE`).  Each engine
dispatches to these itself when ``design.blocks`` is empty:

* :mod:`bayesglmm.engines.glm_ml`: maximum likelihood (any ``nagq``) and PQL, by IRLS to
  the exact MLE (``fit_glm_ml``);
* :mod:`bayesglmm.engines.glm_laplace`: the Bayesian Laplace (normal) approximation of the
  posterior (``fit_glm_laplace``).

This module names them in one place for the engines that import them from here.
"""

from __future__ import annotations

from bayesglmm.engines.glm_laplace import fit_glm_laplace, glm_laplace_density
from bayesglmm.engines.glm_ml import GLM_NOTE, fit_glm_ml, irls

__all__ = ["GLM_NOTE", "fit_glm_laplace", "fit_glm_ml", "glm_laplace_density", "irls"]
