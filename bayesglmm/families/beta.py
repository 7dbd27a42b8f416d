"""The Beta family (logit link): proportions in (0, 1) with mean ``mu`` and precision ``phi``.

``y ~ Beta(mu phi, (1 - mu) phi)``, ``mu = logistic(eta)``, so ``E y = mu`` and
``Var y = mu (1 - mu) / (1 + phi)``: brms's ``Beta`` (its ``phi``), glmmTMB's
``beta_family`` (its dispersion parameter is the same ``phi``), bambi's ``"beta"``.  The
default prior on ``phi`` is brms's, ``Gamma(0.01, 0.01)``.

A 0 or a 1 in the response has zero density: the response check names the column, the row
and the value and points to a zero-one-inflated model or the Smithson-Verkuilen squeeze
``(y (n - 1) + 0.5) / n`` (``docs/bad_input.md``).

ML runs the generic Laplace path (``inference/laplace_dispersion.py``) with the analytic
score and the observed information from its differences, as glmmTMB's Laplace (TMB uses the
exact Hessian); there is no peer installed here, so it is checked against long NUTS runs
(``tests/test_families_beta.py``).  No PQL (not an exponential dispersion family in ``mu``
with a known variance function for MASS::glmmPQL) and no Bayesian Laplace
(``method='laplace'`` integrates the random effects with the dispersion fixed at 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from bayesglmm.families import row_math
from bayesglmm.families.base import Dispersion, FamilySpec
from bayesglmm.families.links import Link

__all__ = ["Beta", "nuts_prep", "nuts_row"]

Array = np.ndarray
_TINY = 1e-12


def nuts_prep(lp: float, d1: float) -> tuple[float, float, float, float]:
    """NUTS row constants from ``log phi``: ``(phi, lgamma(phi), digamma(phi), 0)``."""
    phi = math.exp(lp)
    return phi, math.lgamma(phi), row_math.digamma(phi), 0.0


def nuts_row(y: float, w: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel (logit link, case weight ``w``): ``(ll, d/d eta, d/d log phi, 0)``."""
    if w == 0.0:
        return 0.0, 0.0, 0.0, 0.0
    phi = c[0]
    ex = math.exp(-abs(eta))
    mu = 1.0 / (1.0 + ex) if eta >= 0.0 else ex / (1.0 + ex)
    mc = ex / (1.0 + ex) if eta >= 0.0 else 1.0 / (1.0 + ex)  # 1 - mu
    a = mu * phi
    b = mc * phi
    ly = math.log(y)
    l1y = math.log1p(-y)
    da = row_math.digamma(a)
    db = row_math.digamma(b)
    ll = w * (c[1] - math.lgamma(a) - math.lgamma(b) + (a - 1.0) * ly + (b - 1.0) * l1y)
    ge = w * phi * mu * mc * (ly - l1y - da + db)
    gp = w * phi * (c[2] - mu * da - mc * db + mu * ly + mc * l1y)
    return ll, ge, gp, 0.0


def _phi(sigma: Any) -> Any:
    """The precision from the engines' dispersion argument (one value per row or scalar)."""
    return np.asarray(sigma, dtype=float)


class Beta(FamilySpec):
    """Proportions strictly inside (0, 1): mean ``logistic(eta)``, precision ``phi``."""

    name = "beta"
    links = ("logit",)
    canonical_link = "logit"
    dispersion = (Dispersion("phi", ("Gamma", {"alpha": 0.01, "beta": 0.01})),)
    row_kernels = {"logit": "beta_logit"}  # the fused NUTS kernel
    unsupported = {
        "pql": (
            "PQL is not defined for the beta family (MASS::glmmPQL needs an exponential "
            "family with a fixed variance function); use method='ml' or 'nuts'"
        ),
    }

    # ---------------------------------------------------------------- likelihood
    def _mu(self, link: Link, eta: Array) -> Array:
        return np.clip(link.linkinv(np.asarray(eta, dtype=float)), _TINY, 1.0 - _TINY)

    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        phi = _phi(sigma)
        mu = self._mu(link, eta)
        a, b = mu * phi, (1.0 - mu) * phi
        return (
            special.gammaln(phi)
            - special.gammaln(a)
            - special.gammaln(b)
            + (a - 1.0) * np.log(y)
            + (b - 1.0) * np.log1p(-y)
        )

    def score_weights(
        self,
        link: Link,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = None,
    ) -> tuple[Array, Array]:
        """``d ll / d eta = phi (y* - mu*) mu_eta`` with ``y* = logit(y)``,
        ``mu* = digamma(mu phi) - digamma((1 - mu) phi)``; Fisher weight
        ``phi^2 (trigamma(mu phi) + trigamma((1 - mu) phi)) mu_eta^2``."""
        phi = _phi(1.0 if sigma is None else sigma)
        eta = np.asarray(eta, dtype=float)
        mu = self._mu(link, eta)
        me = link.mu_eta(eta)
        a, b = mu * phi, (1.0 - mu) * phi
        ystar = np.log(y) - np.log1p(-y)
        mustar = special.digamma(a) - special.digamma(b)
        d1 = phi * (ystar - mustar) * me
        w = phi * phi * (special.polygamma(1, a) + special.polygamma(1, b)) * me * me
        return d1, w

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        """``mu (1 - mu)``: the variance is this over ``1 + phi``."""
        return mu * (1.0 - mu)

    def saturated_loglik(self, y: Array, trials: Array | None) -> Array:
        return np.zeros_like(np.asarray(y, dtype=float))

    # ---------------------------------------------------------------- data
    def check_response(self, values: Array, trials: Array | None) -> tuple[Array, str]:
        return (values <= 0.0) | (values >= 1.0), (
            "must lie strictly between 0 and 1 for the beta family (a 0 or a 1 has zero "
            "density): fit a zero-one-inflated model, or squeeze it into (0, 1) as Smithson "
            "and Verkuilen (2006), (y * (n - 1) + 0.5) / n"
        )

    def response_scale(self, design: Any) -> tuple[float, float]:
        m = float(np.clip(design.row_mean(design.y), 0.01, 0.99))
        return 1.0, float(np.log(m / (1.0 - m)))

    def dispersion_start(self, y: Array, mu: Array) -> tuple[float, ...]:
        v = float(np.mean((y - mu) ** 2))
        phi = float(np.mean(mu * (1.0 - mu))) / max(v, 1e-12) - 1.0
        return (float(np.clip(phi, 0.5, 1e4)),)

    def start_mean(self, y: Array, trials: Array | None) -> float:
        return float(np.clip(np.mean(y), 0.01, 0.99))

    # ---------------------------------------------------------------- simulation
    def simulate(
        self,
        rng: np.random.Generator,
        link: Link,
        eta: Array,
        trials: Array | None,
        dispersion: dict[str, Any],
        weights: Array | None = None,
    ) -> Array:
        phi = np.asarray(dispersion["phi"], dtype=float)
        mu = self._mu(link, eta)
        y = rng.beta(mu * phi, (1.0 - mu) * phi)
        # a draw can round to exactly 0 or 1 in double precision for a tiny precision
        return np.clip(y, np.nextafter(0.0, 1.0), np.nextafter(1.0, 0.0))

    # ---------------------------------------------------------------- interpretation
    def latent_mean(self, link: Link, eta: Array) -> Array | None:
        """``mu`` at the linear predictor the ICC passes (the mean ``eta``)."""
        return self._mu(link, eta)

    def distribution_variance(
        self, link: Link, lam: Any, method: str, sigma2: Any
    ) -> Array | float:
        """Observation-level variance on the logit scale at mean ``mu = lam``, with
        ``sigma2`` the precision ``phi`` (:meth:`latent_dispersion`).

        ``method='trigamma'``: ``trigamma(mu phi) + trigamma((1 - mu) phi)``, the exact
        variance of ``logit(y)`` for ``y ~ Beta``; otherwise (the default, ``'lognormal'`` /
        ``'delta'``) the delta method ``1 / (mu (1 - mu) (1 + phi))`` (Nakagawa, Johnson &
        Schielzeth 2017's observation-level approach: the data-scale variance divided by
        the squared derivative of the inverse link).
        """
        mu = np.asarray(lam, dtype=float)
        phi = np.asarray(sigma2, dtype=float)
        if method == "trigamma":
            return special.polygamma(1, mu * phi) + special.polygamma(1, (1.0 - mu) * phi)
        return 1.0 / (mu * (1.0 - mu) * (1.0 + phi))

    def latent_dispersion(self, disp: dict[str, Array]) -> Array | None:
        return np.asarray(disp["phi"], dtype=float)

    def data_scale_icc_part(
        self, link: Link, mean_eta: Array, v: Array, sigma: Any
    ) -> tuple[Array, Array]:
        between, within = super().data_scale_icc_part(link, mean_eta, v, sigma)
        return between, within / (1.0 + np.asarray(sigma, dtype=float))

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        return mu * (1.0 - mu) / (1.0 + np.asarray(sigma, dtype=float))

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        """The quasi-binomial unit deviance of the variance function ``mu (1 - mu)``
        (``2 [y log(y / mu) + (1 - y) log((1 - y) / (1 - mu))]``; ``phi``-free, as
        ``residuals(type="deviance")`` of a quasi-binomial GLM)."""
        mu = np.clip(mu, _TINY, 1.0 - _TINY)
        return 2.0 * (special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))

    # ---------------------------------------------------------------- PyMC
    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm

        mu = pm.math.invlogit(eta)
        phi = disp["phi"]
        return pm.Beta.dist(alpha=mu * phi, beta=(1.0 - mu) * phi)

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm

        mu = pm.math.invlogit(eta)
        phi = disp["phi"]
        return pm.Beta("y", alpha=mu * phi, beta=(1.0 - mu) * phi, observed=observed, dims=dims)
