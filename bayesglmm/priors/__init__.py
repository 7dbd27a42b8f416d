"""Priors: what a user writes, the data-scaled defaults and the resolved set a fit uses.

* :mod:`~bayesglmm.priors.distribution`: :class:`Prior` (a distribution by name and its
  checked parameters) and :func:`as_prior` (a user's value as a :class:`Prior`);
* :mod:`~bayesglmm.priors.defaults`: the data-scaled defaults (rstanarm's autoscaled
  priors; the table of every class is that module's docstring), the unit of a random-effect
  term column;
* :mod:`~bayesglmm.priors.prior_set`: :class:`PriorSet`, the priors a fit used, and the
  block labels of the posterior's variable names;
* :mod:`~bayesglmm.priors.resolve`: :func:`resolve_priors` (user overrides against the
  defaults) and the rule of each prior class.

Users override priors per class (``"intercept"``, ``"fixed"``, ``"sd"``, ``"cor"``,
and the family's dispersion by its name: ``"sigma"``, ``"shape"``, ``"nu"``, ``"phi"``) or per
term (``"fixed:time"``, ``"sd:patientID"``, ``"cor:subject"``) with a
:class:`Prior` or a plain dict ``{"dist": "Normal", "mu": 0, "sigma": 1}``; a number for
``cor`` means the LKJ ``eta``.  NumPy/SciPy only; no PyMC here.
"""

from __future__ import annotations

from bayesglmm.priors.defaults import default_priors, term_scales, term_unit
from bayesglmm.priors.distribution import POSITIVE, Prior, as_prior, check_prior_params
from bayesglmm.priors.prior_set import PriorSet, block_labels
from bayesglmm.priors.resolve import PRIOR_CLASSES, check_prior_class, resolve_priors

__all__ = [
    "POSITIVE",
    "PRIOR_CLASSES",
    "Prior",
    "PriorSet",
    "as_prior",
    "block_labels",
    "check_prior_class",
    "check_prior_params",
    "default_priors",
    "resolve_priors",
    "term_scales",
    "term_unit",
]
