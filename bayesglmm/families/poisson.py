"""The Poisson family (log link): counts ``y ~ Poisson(exp(eta))``.

Case weights multiply each row's log-likelihood.  The Numba engines use
:func:`row_log` (compiled by them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from bayesglmm.errors import DesignError
from bayesglmm.families.counts import CountResponse
from bayesglmm.families.links import Link

__all__ = ["Poisson", "log_exps", "nuts_row_log", "row_log"]

Array = np.ndarray


def log_exps(eta: Any) -> tuple[Any, Any]:
    """``(exp(min(eta, 700)), the same)``: the transcendental part of :func:`row_log`,
    elementwise (vectorized on arrays; the pair mirrors
    :func:`~bayesglmm.families.binomial.logit_exps`)."""
    ex = np.exp(np.minimum(eta, 700.0))
    return ex, ex


def row_log(
    y: float, n: float, eta: float, ex: float, _unused: float
) -> tuple[float, float, float, float]:
    """``(ll, d ll / d eta, w, d w / d eta)`` of one row without ``-log y!``, from
    ``ex = log_exps(eta)[0]``; ``n`` is the case weight multiplying the mean (1 when
    unweighted).  Scalar; compiled by Numba."""
    et = min(eta, 700.0)
    mu = n * ex
    return y * et - mu, y - mu, mu, mu


def nuts_row_log(y: float, n: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel: ``(ll, d ll / d eta, 0, 0)`` without ``-log y!``; ``n`` the case
    weight multiplying the mean (no clipping of ``eta``: the PyMC model's density)."""
    mu = n * math.exp(eta)
    return y * eta - mu, y - mu, 0.0, 0.0


class Poisson(CountResponse):
    """Counts with mean ``exp(eta)``."""

    name = "poisson"
    links = ("log",)
    canonical_link = "log"
    row_kernels = {"log": "poisson"}
    separation = "counts"
    response_kind = "counts"
    case_weights_fold = True

    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        e = np.minimum(eta, 700.0)
        return y * e - np.exp(e) - special.gammaln(y + 1.0)

    def score_weights(
        self, link: Link, y: Array, eta: Array, trials: Array | None = None, sigma: Any = None
    ) -> tuple[Array, Array]:
        mu = np.exp(np.minimum(np.asarray(eta, dtype=float), 700.0))
        return y - mu, mu

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        return np.asarray(mu, dtype=float)

    def saturated_loglik(self, y: Array, trials: Array | None) -> Array:
        return special.xlogy(y, y) - y - special.gammaln(y + 1.0)

    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm
        import pytensor.tensor as pt

        return pm.Poisson.dist(mu=pt.exp(eta))

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm
        import pytensor.tensor as pt

        return pm.Poisson("y", mu=pt.exp(eta), observed=observed, dims=dims)

    def simulate(
        self,
        rng: np.random.Generator,
        link: Link,
        eta: Array,
        trials: Array | None,
        dispersion: dict[str, Any],
        weights: Array | None = None,
    ) -> Array:
        return rng.poisson(link.linkinv(eta)).astype(float)

    def latent_mean(self, link: Link, eta: Array) -> Array:
        return np.exp(eta)

    def distribution_variance(self, link: Link, lam: Any, method: str, sigma2: Any) -> Array:
        lam = np.asarray(lam, dtype=float)
        if method == "lognormal":
            return np.log1p(1.0 / lam)
        if method == "delta":
            return 1.0 / lam
        if method == "trigamma":
            return special.polygamma(1, lam)
        raise DesignError(f"method must be 'lognormal', 'delta' or 'trigamma', not {method!r}")

    def data_scale_icc_part(
        self, link: Link, mean_eta: Array, v: Array, sigma: Any
    ) -> tuple[Array, Array]:
        m = np.exp(mean_eta + v / 2.0)
        return m**2 * np.expm1(v), m

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(y > 0, y * np.log(y / mu), 0.0)
        return 2.0 * (t - (y - mu))
