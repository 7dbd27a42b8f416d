"""The Student-t family (identity link): ``y ~ t_nu(eta, sigma)``, dispersions ``sigma``, ``nu``.

brms's ``student`` (``sigma``, ``nu``), glmmTMB's ``t_family``, bambi's ``"t"``.  Default
priors as brms: ``sigma ~ HalfStudentT(3, 2.5 sd(y))`` (the gaussian's) and
``nu ~ Gamma(2, 0.1)``.  The engines pass the two dispersions to this family's functions as
one argument, the tuple ``(sigma, nu)`` (:meth:`StudentT.dispersion_arg`); a scalar is a
scale with ``nu`` infinite (the gaussian limit, used only by start-value code).

The log-likelihood is not concave in ``eta`` (the observed information
``(nu + 1)(nu sigma^2 - r^2) / (nu sigma^2 + r^2)^2`` is negative for ``|r| > sqrt(nu)
sigma``), so the Laplace engines use the expected (Fisher) information
``(nu + 1) / ((nu + 3) sigma^2)`` in the mode search (Fisher scoring) and in the Laplace
determinant (``laplace_information = "fisher"``), as lme4 does for a non-canonical link.
No PQL and no Bayesian Laplace (``unsupported``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from bayesglmm.families import row_math
from bayesglmm.families.base import Dispersion, FamilySpec
from bayesglmm.families.links import Link

__all__ = ["StudentT", "nuts_prep", "nuts_row"]

Array = np.ndarray
_NU_INF = 1e12


def nuts_prep(ls: float, lnu: float) -> tuple[float, float, float, float]:
    """NUTS row constants from ``(log sigma, log nu)``: ``(1 / sigma, nu, the row's
    constant, d constant / d nu)``."""
    nu = math.exp(lnu)
    c0 = math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)
    dc = 0.5 * (row_math.digamma(0.5 * (nu + 1.0)) - row_math.digamma(0.5 * nu)) - 0.5 / nu
    return math.exp(-ls), nu, c0 - ls, dc


def nuts_row(y: float, w: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel (identity link, case weight ``w``): ``(ll, d/d eta, d/d log sigma,
    d/d log nu)``."""
    if w == 0.0:
        return 0.0, 0.0, 0.0, 0.0
    isd, nu = c[0], c[1]
    t = (y - eta) * isd
    q = t * t / nu
    l1 = math.log1p(q)
    k = (nu + 1.0) * q / (1.0 + q)  # (nu + 1) t^2 / (nu + t^2)
    ll = w * (c[2] - 0.5 * (nu + 1.0) * l1)
    gnu = w * nu * (c[3] - 0.5 * l1 + 0.5 * k / nu)
    ge = w * (nu + 1.0) * t * isd / (nu * (1.0 + q))
    return ll, ge, w * (k - 1.0), gnu


def _unpack(sigma: Any) -> tuple[Array, Array]:
    """``(sigma, nu)`` from the engines' dispersion argument."""
    if isinstance(sigma, tuple):
        s, nu = sigma
        return np.asarray(s, dtype=float), np.asarray(nu, dtype=float)
    return np.asarray(sigma, dtype=float), np.asarray(_NU_INF)


def t_variance(s: Array, nu: Array) -> Array:
    """``sigma^2 nu / (nu - 2)`` for ``nu > 2``; infinite otherwise (no finite variance)."""
    s, nu = np.asarray(s, dtype=float), np.asarray(nu, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nu > 2.0, s * s * nu / np.maximum(nu - 2.0, 1e-300), np.inf)


class StudentT(FamilySpec):
    """Real responses with location ``eta``, scale ``sigma`` and ``nu`` degrees of freedom."""

    name = "student_t"
    links = ("identity",)
    canonical_link = "identity"
    row_kernels = {"identity": "t_identity"}  # the fused NUTS kernel
    dispersion = (
        Dispersion("sigma", ("HalfStudentT", {"nu": 3.0, "sigma": ("s_y", 2.5)})),
        Dispersion("nu", ("Gamma", {"alpha": 2.0, "beta": 0.1})),
    )
    laplace_information = "fisher"
    unsupported = {
        "pql": (
            "PQL is not defined for the student_t family (MASS::glmmPQL needs an exponential "
            "family); use method='ml' or 'nuts'"
        ),
    }

    # ---------------------------------------------------------------- likelihood
    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        s, nu = _unpack(sigma)
        r = (y - np.asarray(eta, dtype=float)) / s
        big = nu > 1e7  # the gaussian limit, without cancellation in the gamma functions
        nu_f = np.where(big, 1e7, nu)
        c = (
            special.gammaln((nu_f + 1.0) / 2.0)
            - special.gammaln(nu_f / 2.0)
            - 0.5 * np.log(nu_f * math.pi)
        )
        ll_t = c - 0.5 * (nu_f + 1.0) * np.log1p(r * r / nu_f)
        ll_g = -0.5 * r * r - 0.5 * math.log(2.0 * math.pi)
        return np.where(big, ll_g, ll_t) - np.log(s)

    def score_weights(
        self,
        link: Link,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = None,
    ) -> tuple[Array, Array]:
        """``d ll / d eta = (nu + 1) r / (nu sigma^2 + r^2)`` and the Fisher weight
        ``(nu + 1) / ((nu + 3) sigma^2)``."""
        s, nu = _unpack(1.0 if sigma is None else sigma)
        eta = np.asarray(eta, dtype=float)
        r = y - eta
        s2 = s * s
        d1 = (nu + 1.0) * r / (nu * s2 + r * r)
        w = np.broadcast_to((nu + 1.0) / ((nu + 3.0) * s2), np.shape(d1)).copy()
        return d1, w

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        return np.ones_like(np.asarray(mu, dtype=float))

    # ---------------------------------------------------------------- data
    def response_scale(self, design: Any) -> tuple[float, float]:
        return float(design.row_std(design.y)) or 1.0, float(design.row_mean(design.y))

    def dispersion_start(self, y: Array, mu: Array) -> tuple[float, ...]:
        r = y - mu
        mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        return (max(mad, 1e-3), 10.0)

    def start_mean(self, y: Array, trials: Array | None) -> float:
        return float(np.mean(y))

    def dispersion_arg(self, disp: dict[str, Any]) -> Any:
        return (disp["sigma"], disp["nu"])

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
        eta = np.asarray(eta, dtype=float)
        s = np.asarray(dispersion["sigma"], dtype=float)
        nu = np.broadcast_to(np.asarray(dispersion["nu"], dtype=float), eta.shape)
        return link.linkinv(eta) + s * rng.standard_t(nu)

    # ---------------------------------------------------------------- interpretation
    def latent_dispersion(self, disp: dict[str, Array]) -> Array | None:
        """``sigma^2 nu / (nu - 2)``, the residual variance (infinite for ``nu <= 2``)."""
        return t_variance(disp["sigma"], disp["nu"])

    def distribution_variance(self, link: Link, lam: Any, method: str, sigma2: Any) -> Array:
        return np.asarray(sigma2, dtype=float)

    def data_scale_icc_part(
        self, link: Link, mean_eta: Array, v: Array, sigma: Any
    ) -> tuple[Array, Array]:
        s, nu = _unpack(sigma)
        return v, t_variance(s, nu)

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        """``sigma^2 nu / (nu - 2)``; ``sigma^2`` where ``nu <= 2`` (no finite variance:
        the Pearson residual is then scaled by ``sigma``)."""
        s, nu = _unpack(sigma)
        v = np.where(nu > 2.0, t_variance(s, nu), s * s)
        return np.broadcast_to(v, np.shape(mu))

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        return (y - mu) ** 2

    # ---------------------------------------------------------------- PyMC
    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm

        return pm.StudentT.dist(nu=disp["nu"], mu=eta, sigma=disp["sigma"])

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm

        return pm.StudentT(
            "y", nu=disp["nu"], mu=eta, sigma=disp["sigma"], observed=observed, dims=dims
        )
