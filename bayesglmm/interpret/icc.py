"""Intraclass correlations, per posterior draw (so the ICC has a posterior).

Latent scale (Nakagawa, Johnson & Schielzeth 2017):

* distribution-specific variance: logit ``pi^2/3``, probit 1, cloglog ``pi^2/6``; Poisson
  ``ln(1 + 1/lambda)`` (``method="lognormal"``), ``1/lambda`` (``"delta"``) or
  ``trigamma(lambda)`` (``"trigamma"``) with ``lambda = exp(mean(X beta + offset) +
  sigma2_total / 2)``; gaussian: the residual variance;
* a grouping factor's variance is ``Sigma[0, 0]`` for a random intercept and, with random
  slopes, the mean of ``z_i' Sigma z_i`` over rows (Johnson 2014): it then depends on the
  scale (and centring) of the covariate, and a warning says so;
* rows: each grouping factor (its variance over the total), ``total`` (all random-effect
  variances over the total: the adjusted ICC), and ``conditional`` (with
  ``sigma2_fixed = var(X beta)`` added to the denominator).

Data scale (``scale="data"``): the share of the response variance due to the groups at the
average linear predictor, from the exact moments of the response given the random effect
(Gauss-Hermite for binomial families, closed form for the Poisson).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from bayesglmm.errors import BayesGLMMWarning, DesignError
from bayesglmm.families import get_family
from bayesglmm.intervals import CI_PROB, column_names, eti

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike

Scale = Literal["latent", "data"]
PoissonMethod = Literal["lognormal", "delta", "trigamma"]


def distribution_variance(
    family_name: str,
    link: str,
    lam: np.ndarray | float | None = None,
    method: PoissonMethod = "lognormal",
    sigma2: np.ndarray | float | None = None,
) -> np.ndarray | float:
    """Distribution-specific (latent) variance of a family/link.

    Parameters
    ----------
    family_name, link : str
    lam : array, optional
        Poisson mean ``lambda`` on the data scale (needed for the Poisson).
    method : {"lognormal", "delta", "trigamma"}
        Poisson approximation.
    sigma2 : array, optional
        Residual variance (gaussian).
    """
    fam = get_family(family_name, link)
    return fam.spec.distribution_variance(fam.link_fn, lam, method, sigma2)


def icc_draws(
    fit: FitLike,
    scale: Scale = "latent",
    method: PoissonMethod = "lognormal",
) -> dict[str, np.ndarray]:
    """ICC draws (S,) per row label: each group, ``total``, ``conditional``."""
    d = fit.design
    if not d.blocks:
        raise DesignError(
            "the model has no random-effect terms (no groups: it is a GLM), so it has no ICC"
        )
    if scale not in ("latent", "data"):
        raise DesignError(f"scale must be 'latent' or 'data', not {scale!r}")
    group_var: dict[str, np.ndarray] = {}
    slopes = False
    for i, b in enumerate(d.blocks):
        cov = fit.draws_cov(i)
        if b.terms == ("(Intercept)",):
            v = cov[:, 0, 0]
        else:
            slopes = True
            v = np.einsum("np,spq,nq->s", b.Z, cov, b.Z) / d.n
        group_var[b.group] = group_var.get(b.group, 0.0) + v
    if slopes:
        warnings.warn(
            "with random slopes the group variance is the mean of z' Sigma z over the rows "
            "(Johnson 2014): the ICC depends on the scale and centring of the slope covariates",
            BayesGLMMWarning,
            stacklevel=3,
        )
    total_re = sum(group_var.values())
    beta = fit.draws_fixed()
    xb = beta @ d.X.T  # (S, n)
    mean_eta = xb.mean(axis=1) + d.offset.mean()
    var_fixed = xb.var(axis=1)
    fam = d.family
    if scale == "data":
        dispersion = fit.draws_dispersion()
        disp = fam.spec.dispersion_arg(dispersion) if dispersion else None
        return _data_scale(fam, mean_eta, group_var, total_re, disp)
    lam = fam.spec.latent_mean(fam.link_fn, mean_eta + total_re / 2.0)
    dist = distribution_variance(
        fam.name, fam.link, lam, method, fam.spec.latent_dispersion(fit.draws_dispersion())
    )
    denom = total_re + dist
    out = {g: v / denom for g, v in group_var.items()}
    out["total"] = total_re / denom
    out["conditional"] = total_re / (denom + var_fixed)
    return {k: np.broadcast_to(np.asarray(v, dtype=float), beta.shape[:1]) for k, v in out.items()}


def _data_scale(fam, mean_eta, group_var, total_re, sigma) -> dict[str, np.ndarray]:  # noqa: ANN001
    def one(v: np.ndarray) -> np.ndarray:
        var_between, within = fam.spec.data_scale_icc_part(fam.link_fn, mean_eta, v, sigma)
        return var_between / (var_between + within)

    out = {
        g: one(np.asarray(v, dtype=float) * np.ones_like(mean_eta)) for g, v in group_var.items()
    }
    out["total"] = one(np.asarray(total_re, dtype=float) * np.ones_like(mean_eta))
    return out


def icc_table(
    fit: FitLike,
    scale: Scale = "latent",
    method: PoissonMethod = "lognormal",
    ci_prob: float = CI_PROB,
) -> pd.DataFrame:
    """ICC table: Bayesian fits give mean, sd and the equal-tailed ``ci_prob`` interval
    (columns ``eti95_lb, eti95_ub`` by default, as ``summary()``); ML fits the estimate."""
    draws = icc_draws(fit, scale, method)
    if not fit.is_bayesian:
        return pd.DataFrame({"estimate": {k: float(v[0]) for k, v in draws.items()}})
    lo_name, hi_name = column_names(ci_prob)
    rows = {}
    for k, v in draws.items():
        lo, hi = (float(t) for t in eti(v, ci_prob))
        rows[k] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)), lo_name: lo, hi_name: hi}
    return pd.DataFrame(rows).T


def hdi(x: np.ndarray, prob: float = 0.94) -> tuple[float, float]:
    """Highest-density interval of a 1-D sample (shortest interval with ``prob`` mass)."""
    s = np.sort(np.asarray(x, dtype=float))
    n = s.size
    k = max(int(math.floor(prob * n)), 1)
    if k >= n:
        return float(s[0]), float(s[-1])
    widths = s[k:] - s[: n - k]
    j = int(np.argmin(widths))
    return float(s[j]), float(s[j + k])
