"""The default priors, scaled to the data (NumPy only; no PyMC here).

Defaults follow rstanarm's weakly informative, autoscaled priors, adapted to an
uncentred intercept (``s_y`` is 1 for binomial/Poisson/beta families and ``sd(y)`` for the
gaussian and Student-t):

====================  ==========================================  ==============================
class                 default                                      why
====================  ==========================================  ==============================
``intercept``         Normal(link(mean y), 2.5 s_y)                as rstanarm: on the intercept
                                                                   at centred predictors (the
                                                                   model samples that one, then
                                                                   reports the usual intercept)
``fixed`` (slopes)    Normal(0, 2.5 s_y / sd(x_j))                 rstanarm's autoscaled slopes: a
                                                                   1-SD change in x moves eta by
                                                                   at most ~5 a priori
``sd`` (group SDs)    HalfStudentT(nu=3, sigma=2.5 s_y)            brms' choice: heavy tail lets a
                                                                   large SD (toenail: 4) through,
                                                                   mass near 0 allows no effect
``sd`` (slope SDs)    HalfStudentT(nu=3, sigma=2.5 s_y / u_j)      autoscaled as the fixed slopes:
                                                                   the SD of a random slope on
                                                                   ``z_j`` is per unit of ``z_j``,
                                                                   so the same prior in other units
                                                                   would be another prior
``cor``               LKJ(eta=2)                                   mild shrinkage of correlations
                                                                   towards 0; keeps NUTS stable
``sigma`` (gaussian)  HalfStudentT(nu=3, sigma=2.5 sd(y))          as brms (any link: log too)
``sigma`` (t)         HalfStudentT(nu=3, sigma=2.5 sd(y))          as brms' ``student``
``nu`` (t)            Gamma(alpha=2, beta=0.1)                     as brms (prior mean 20)
``phi`` (beta)        Gamma(alpha=0.01, beta=0.01)                 as brms' ``Beta`` precision
``shape`` (negative   Gamma(alpha=0.01, beta=0.01)                 as brms's ``shape``: lme4's
binomial)                                                          ``theta``, ``Var = mu +
                                                                   mu^2 / shape``; vague, mean 1,
                                                                   most mass near 0 and a long
                                                                   right tail
``shape`` (gamma)     Gamma(alpha=0.01, beta=0.01)                 brms's default on the Gamma
                                                                   shape (Var = mu^2 / shape);
                                                                   key ``"shape"`` overrides it
====================  ==========================================  ==============================

``u_j`` is the SD of a random-effect term column, or its range when it takes two values (an
indicator keeps the intercept's prior, as rstanarm scales binary predictors by their range);
a constant column (the intercept) has ``u_j = 1``.  A predictor multiplied by ``f`` thus gets
a slope-SD prior ``1 / f`` as wide, and the posterior of the slope SD is the original one
divided by ``f`` (tests/test_scale_invariance.py).

User overrides are resolved against these by :func:`bayesglmm.priors.resolve.resolve_priors`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.priors.distribution import Prior

__all__ = ["default_priors", "default_sd_prior", "term_scales", "term_unit"]


def default_priors(design: Design) -> dict[str, Prior]:
    """Class-level default priors, scaled to the data (see the module docstring)."""
    fam = design.family
    s_y, loc = fam.spec.response_scale(design)  # the family's rule (families/<family>.py)
    out = {
        "intercept": Prior("Normal", mu=loc, sigma=2.5 * s_y),
        "sd": Prior("HalfStudentT", nu=3.0, sigma=2.5 * s_y),
        "cor": Prior("LKJ", eta=2.0),
    }
    for disp in fam.dispersion:  # e.g. gaussian sigma: HalfStudentT(3, 2.5 s_y)
        dist, params = disp.default_prior(s_y)
        out[disp.name] = Prior(dist, **params)
    out["_s_y"] = s_y  # type: ignore[assignment]
    return out


def term_unit(z: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The unit ``u_j`` of a random-effect term column for its default SD prior: its SD, its
    range when it takes two values, 1 when it is constant or not finite.  With prior
    ``weights`` the rows of weight 0 do not count and the SD is weighted (a weight-``k``
    row counts as ``k`` rows, so weighted and duplicated data get the same unit)."""
    z = np.asarray(z, dtype=float)
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        keep = w > 0
        z, w = z[keep], w[keep]
    if not z.size or not np.all(np.isfinite(z)) or np.ptp(z) == 0:
        return 1.0
    vals = np.unique(z)
    if vals.size == 2:
        unit = float(vals[-1] - vals[0])
    elif w is None:
        unit = float(np.std(z))
    else:
        m = float(np.sum(w * z) / np.sum(w))
        unit = float(np.sqrt(np.sum(w * (z - m) ** 2) / np.sum(w)))
    return unit if unit > 0 and np.isfinite(unit) else 1.0


def term_scales(block: Any, weights: np.ndarray | None = None) -> np.ndarray:
    """:func:`term_unit` of every term column of a random-effect block.

    The Bayesian engines sample a correlated block's Cholesky factor for the columns divided
    by these units (scaling only: correlations and the meaning of the priors are kept, each
    SD prior scaled by its unit), so its off-diagonal elements are of one order whatever the
    units of the predictors.
    """
    Z = np.asarray(block.Z, dtype=float)
    return np.array([term_unit(Z[:, j], weights) for j in range(Z.shape[1])])


def default_sd_prior(base: Prior, z: np.ndarray, weights: np.ndarray | None = None) -> Prior:
    """The class default SD prior, its scale divided by the column's unit (exact, unrounded)."""
    unit = term_unit(z, weights)
    if unit == 1.0:
        return base
    return Prior("HalfStudentT", nu=base.params["nu"], sigma=base.params["sigma"] / unit)
