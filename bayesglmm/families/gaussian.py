"""The gaussian family (identity and log links): ``y ~ Normal(mu, sigma)`` with ``mu = eta``
or ``mu = exp(eta)``, dispersion ``sigma``.

Prior weights are precision weights, ``N(y | eta, sigma^2 / w)`` (lme4's), and a zero weight
drops the row from the likelihood.  The ML default is the dedicated LMM path
(``inference/laplace.py``'s profiled deviance); the general Laplace path takes the
dispersion as a parameter too (:class:`~bayesglmm.engines.ml.laplace.LaplaceObjective`).

With the log link (``family="gaussian", link="log"``) the model is not linear: it takes the
general Laplace path with ``sigma`` in the parameter vector
(``engines/ml/laplace_dispersion.py``) and NUTS the fused kernel (row kernel
``gaussian_log``); ``y`` may be
any real number, the mean ``exp(eta)`` is positive.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bayesglmm.families.base import Dispersion, FamilySpec
from bayesglmm.families.links import Link

__all__ = ["Gaussian", "nuts_prep", "nuts_row_identity", "nuts_row_log"]

Array = np.ndarray
_LOG_2PI = math.log(2.0 * math.pi)


def nuts_prep(ls: float, d1: float) -> tuple[float, float, float, float]:
    """NUTS row constants from ``log sigma``: ``(log sigma + log(2 pi) / 2, 1 / sigma^2, 0,
    0)``."""
    return ls + 0.5 * _LOG_2PI, math.exp(-2.0 * ls), 0.0, 0.0


def nuts_row_identity(y: float, w: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel, identity link, precision weight ``w``: ``(ll, d/d eta, d/d log
    sigma, 0)`` without ``0.5 log w`` (a zero weight drops the row)."""
    wr = w * (y - eta)
    q = wr * (y - eta) * c[1]
    k = 1.0 if w > 0.0 else 0.0  # branch-free: the loop stays a straight line
    return -0.5 * q - k * c[0], wr * c[1], q - k, 0.0


def nuts_row_log(y: float, w: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel, log link (``mu = exp(eta)``), as :func:`nuts_row_identity`."""
    mu = math.exp(eta)
    wr = w * (y - mu)
    q = wr * (y - mu) * c[1]
    k = 1.0 if w > 0.0 else 0.0
    return -0.5 * q - k * c[0], wr * mu * c[1], q - k, 0.0


class Gaussian(FamilySpec):
    """Real responses with mean ``eta`` and residual SD ``sigma``."""

    name = "gaussian"
    links = ("identity", "log")
    canonical_link = "identity"
    dispersion = (Dispersion("sigma", ("HalfStudentT", {"nu": 3.0, "sigma": ("s_y", 2.5)})),)
    row_kernels = {"identity": "gaussian", "log": "gaussian_log"}
    precision_weights = True
    linear_model = True
    unsupported = {
        "pql": "PQL is for non-gaussian families; use method='ml' for an LMM",
    }

    def loglik(
        self,
        link: Link,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = 1.0,
        weights: Array | None = None,
    ) -> Array:
        """Normal log density; prior ``weights`` are precision weights (0 drops the row)."""
        r = y - link.linkinv(np.asarray(eta, dtype=float))
        if weights is None:
            return -0.5 * (r * r) / sigma**2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)
        w = np.asarray(weights, dtype=float)
        with np.errstate(divide="ignore"):
            ll = (
                -0.5 * w * (r * r) / sigma**2
                - np.log(sigma)
                - 0.5 * math.log(2 * math.pi)
                + 0.5 * np.log(w)
            )
        return np.where(w > 0, ll, 0.0)

    def score_weights(
        self, link: Link, y: Array, eta: Array, trials: Array | None = None, sigma: Any = None
    ) -> tuple[Array, Array]:
        """Identity link without ``sigma``: ``(y - eta, 1)`` (the callers divide by
        ``sigma^2``); otherwise ``(y - mu) mu_eta / sigma^2`` and ``mu_eta^2 / sigma^2``."""
        eta = np.asarray(eta, dtype=float)
        if sigma is None and link.name == "identity":
            return y - eta, np.ones_like(eta)
        s2 = 1.0 if sigma is None else np.asarray(sigma, dtype=float) ** 2
        mu, me = link.linkinv(eta), link.mu_eta(eta)
        return (y - mu) * me / s2, me * me / s2 * np.ones_like(eta)

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        return np.ones_like(mu, dtype=float)

    def response_scale(self, design: Any) -> tuple[float, float]:
        # prior weights: weighted statistics (Design.row_mean)
        # rstanarm's gaussian rule for every link: s_y = sd(y); the intercept's location
        # is link(mean y) (log link: of the mean |y|, kept positive)
        s_y, m = float(design.row_std(design.y)) or 1.0, float(design.row_mean(design.y))
        if design.family.link == "log":
            return s_y, math.log(max(abs(m), 1e-8))
        return s_y, m

    def dispersion_start(self, y: Array, mu: Array) -> tuple[float, ...]:
        return (max(float(np.sqrt(np.mean((y - mu) ** 2))), 1e-3),)

    def start_mean(self, y: Array, trials: Array | None) -> float:
        return float(np.mean(y))

    def _pymc_mu(self, link: Link, eta: Any) -> Any:
        import pytensor.tensor as pt

        return pt.exp(eta) if link.name == "log" else eta

    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm

        return pm.Normal.dist(mu=self._pymc_mu(link, eta), sigma=disp["sigma"])

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm

        return pm.Normal(
            "y", mu=self._pymc_mu(link, eta), sigma=disp["sigma"], observed=observed, dims=dims
        )

    def pymc_weighted_logp(
        self, link: Link, value: Any, eta: Any, w: Any, n: Any, disp: dict[str, Any]
    ) -> Any:
        """Precision weights: ``Normal(eta, sigma / sqrt(w))``; a zero weight gives 0."""
        import pymc as pm
        import pytensor.tensor as pt

        wp = pt.switch(pt.gt(w, 0.0), w, 1.0)
        mu = self._pymc_mu(link, eta)
        lp = pm.logp(pm.Normal.dist(mu=mu, sigma=disp["sigma"] / pt.sqrt(wp)), value)
        return pt.switch(pt.gt(w, 0.0), lp, 0.0)

    def pymc_weighted_dist(
        self, link: Link, eta: Any, w: Any, n: Any, disp: dict[str, Any], size: Any
    ) -> Any:
        import pymc as pm
        import pytensor.tensor as pt

        wp = pt.switch(pt.gt(w, 0.0), w, 1.0)
        mu = self._pymc_mu(link, eta)
        return pm.Normal.dist(mu=mu, sigma=disp["sigma"] / pt.sqrt(wp), size=size)

    def simulate(
        self,
        rng: np.random.Generator,
        link: Link,
        eta: Array,
        trials: Array | None,
        dispersion: dict[str, Any],
        weights: Array | None = None,
    ) -> Array:
        s = dispersion["sigma"]
        if weights is not None:  # precision weights: sd sigma / sqrt(w) (simulate.lm)
            w = np.asarray(weights, dtype=float)
            s = s / np.sqrt(np.where(w > 0, w, 1.0))
        return rng.normal(link.linkinv(eta), s)

    def latent_mean(self, link: Link, eta: Array) -> Array | None:
        return np.exp(eta) if link.name == "log" else None

    def distribution_variance(self, link: Link, lam: Any, method: str, sigma2: Any) -> Array:
        """Identity link: ``sigma^2``.  Log link: the lognormal approximation
        ``ln(1 + sigma^2 / mu^2)`` at the mean ``mu = lam`` (Nakagawa et al. 2017)."""
        s2 = np.asarray(sigma2, dtype=float)
        if link.name == "log":
            lam = np.asarray(lam, dtype=float)
            return np.log1p(s2 / (lam * lam))
        return s2

    def data_scale_icc_part(
        self, link: Link, mean_eta: Array, v: Array, sigma: Any
    ) -> tuple[Array, Array]:
        if link.name == "log":  # Var(exp(eta + b)) for b ~ N(0, v), closed form
            m = np.exp(mean_eta + v / 2.0)
            return m**2 * np.expm1(v), np.asarray(sigma, dtype=float) ** 2 * np.ones_like(m)
        return v, sigma**2

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        return np.broadcast_to(np.asarray(sigma, dtype=float) ** 2, np.shape(mu))

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        return (y - mu) ** 2
