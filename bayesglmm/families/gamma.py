"""The Gamma family (log and inverse links): ``y ~ Gamma(shape, rate = shape / mu)``.

``E[y] = mu``, ``Var[y] = mu^2 / shape``.  The dispersion parameter is the **shape**
(brms's ``shape``, the posterior variable's name); lme4, glmmTMB and ``glmm`` report its
inverse, the dispersion ``phi = 1 / shape`` (``print(fit)`` shows both).  The default
prior on the shape is brms's ``Gamma(0.01, 0.01)`` (``priors.py``).  Prior weights are case
weights (each row's log-likelihood times ``w``).  Responses must be positive.

lme4's ``Gamma()`` has the inverse link as its canonical link and glmer users mostly fit
the log link; both are here (``link="log"`` or ``"inverse"``, the canonical default as in
R).  With the inverse link the linear predictor must stay positive (``mu = 1 / eta``); a
non-positive ``eta`` has log-likelihood ``-inf``.

PQL (``MASS::glmmPQL``) fits it with the working LMM's residual variance as the
quasi-likelihood dispersion ``phi = 1 / shape``.

ML runs the generic NumPy Laplace path with the shape in the parameter vector
(``inference/laplace_dispersion.py``).  NUTS runs the fused Numba kernel for the log link
(row kernel ``gamma_log``: :func:`nuts_prep`, :func:`nuts_row_log`) and the PyMC model for
the inverse link.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from bayesglmm.errors import DesignError
from bayesglmm.families import row_math
from bayesglmm.families.base import Dispersion, FamilySpec
from bayesglmm.families.links import Link

__all__ = ["Gamma", "nuts_prep", "nuts_row_log"]

Array = np.ndarray


def nuts_prep(la: float, d1: float) -> tuple[float, float, float, float]:
    """NUTS row constants from ``log shape``: ``(shape, log shape, shape log shape -
    lgamma(shape), digamma(shape))``."""
    ga = math.exp(la)
    return ga, la, ga * la - math.lgamma(ga), row_math.digamma(ga)


def nuts_row_log(y: float, w: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel, log link, case weight ``w``: ``(ll, d/d eta, d/d log shape, 0)``."""
    if w == 0.0:
        return 0.0, 0.0, 0.0, 0.0
    ga, la = c[0], c[1]
    ly = math.log(y)
    r = y * math.exp(-eta)
    ll = w * (c[2] + (ga - 1.0) * ly - ga * (eta + r))
    return ll, w * ga * (r - 1.0), w * ga * (la + 1.0 - c[3] + ly - eta - r), 0.0


def nuts_row_inverse(y: float, w: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel, inverse link (``mu = 1 / eta``), case weight ``w``: ``(ll, d/d eta,
    d/d log shape, 0)``; ``-inf`` where ``eta <= 0`` (no mean there: the sampler rejects)."""
    if w == 0.0:
        return 0.0, 0.0, 0.0, 0.0
    if not eta > 0.0:
        return -math.inf, 0.0, 0.0, 0.0
    ga, la = c[0], c[1]
    ly = math.log(y)
    le = math.log(eta)
    r = y * eta
    ll = w * (c[2] + (ga - 1.0) * ly + ga * (le - r))
    return ll, w * ga * (1.0 / eta - y), w * ga * (la + 1.0 - c[3] + ly + le - r), 0.0


def _mu(link: Link, eta: Array) -> Array:
    """``mu`` with the inverse link's invalid region (``eta <= 0``) mapped to NaN."""
    eta = np.asarray(eta, dtype=float)
    if link.name == "inverse":
        with np.errstate(divide="ignore"):
            return np.where(eta > 0, 1.0 / np.where(eta > 0, eta, 1.0), np.nan)
    return link.linkinv(eta)


class Gamma(FamilySpec):
    """Positive continuous responses with mean ``mu`` and shape ``shape``."""

    dispersion_orthogonal = True  # beta and the shape: glm's Fisher standard errors

    name = "gamma"
    links = ("inverse", "log")
    canonical_link = "inverse"
    dispersion = (Dispersion("shape", ("Gamma", {"alpha": 0.01, "beta": 0.01})),)
    response_kind = "real"
    row_kernels = {"log": "gamma_log", "inverse": "gamma_inverse"}  # the fused NUTS kernel

    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        a = np.asarray(sigma, dtype=float)
        mu = _mu(link, eta)
        with np.errstate(invalid="ignore", divide="ignore"):
            ll = (
                a * np.log(a)
                - special.gammaln(a)
                + (a - 1.0) * np.log(y)
                - a * (np.log(mu) + y / mu)
            )
        return np.where(np.isnan(mu), -np.inf, ll)

    def score_weights(
        self,
        link: Link,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = 1.0,
    ) -> tuple[Array, Array]:
        """``shape (y - mu) mu_eta / mu^2`` and the Fisher weight ``shape mu_eta^2 / mu^2``
        (log link: ``shape (y / mu - 1)`` and ``shape``)."""
        a = np.asarray(sigma, dtype=float)
        eta = np.asarray(eta, dtype=float)
        if link.name == "log":
            mu = link.linkinv(eta)
            return a * (y / mu - 1.0), a * np.ones_like(eta)
        mu = _mu(link, eta)
        me = -mu * mu  # d(1/eta)/d eta
        return a * (y - mu) * me / (mu * mu), a * me * me / (mu * mu)

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        mu = np.asarray(mu, dtype=float)
        return mu * mu

    def check_response(self, values: Array, trials: Array | None) -> tuple[Array, str]:
        return values <= 0, "must be positive for the gamma family (y > 0)"

    def response_scale(self, design: Any) -> tuple[float, float]:
        m = max(float(design.row_mean(design.y)), 1e-8)
        if design.family.link == "log":
            return 1.0, math.log(m)
        return 1.0 / m, 1.0 / m  # inverse link: eta is on the scale of 1 / y

    def dispersion_start(self, y: Array, mu: Array) -> tuple[float, ...]:
        # moment estimate from the Pearson dispersion: shape = 1 / mean(((y - mu) / mu)^2)
        phi = float(np.mean(((y - mu) / mu) ** 2))
        return (1.0 / max(phi, 1e-3),)

    def start_mean(self, y: Array, trials: Array | None) -> float:
        return float(np.mean(y))

    def simulate(
        self,
        rng: np.random.Generator,
        link: Link,
        eta: Array,
        trials: Array | None,
        dispersion: dict[str, Any],
        weights: Array | None = None,
    ) -> Array:
        a = np.asarray(dispersion["shape"], dtype=float)
        mu = _mu(link, eta)
        return rng.gamma(a, mu / a)

    # ---------------------------------------------------------------- interpretation
    def latent_mean(self, link: Link, eta: Array) -> Array:
        return _mu(link, eta)

    def distribution_variance(self, link: Link, lam: Any, method: str, sigma2: Any) -> Array:
        """Nakagawa et al. (2017): log link, ``ln(1 + 1/shape)`` (``"lognormal"``, default),
        ``trigamma(shape)`` (``"trigamma"``) or ``1/shape`` (``"delta"``); inverse link, the
        delta method ``1 / (shape mu^2)`` at the mean ``mu = lam``.  ``sigma2`` is the square
        of the family's first dispersion parameter (here the shape)."""
        a = np.sqrt(np.asarray(sigma2, dtype=float))
        if link.name == "inverse":
            lam = np.asarray(lam, dtype=float)
            return 1.0 / (a * lam * lam)
        if method == "lognormal":
            return np.log1p(1.0 / a)
        if method == "trigamma":
            return special.polygamma(1, a)
        if method == "delta":
            return 1.0 / a
        raise DesignError(f"method must be 'lognormal', 'delta' or 'trigamma', not {method!r}")

    def data_scale_icc_part(
        self, link: Link, mean_eta: Array, v: Array, sigma: Any
    ) -> tuple[Array, Array]:
        """Between-group and within-group variances on the data scale: ``Var(mu)`` and
        ``E[mu^2] / shape`` over the random effect (closed form for the log link)."""
        a = np.asarray(sigma, dtype=float)
        if link.name == "log":
            m = np.exp(mean_eta + v / 2.0)
            return m**2 * np.expm1(v), m**2 * np.exp(v) / a
        x, w = np.polynomial.hermite_e.hermegauss(40)
        w = w / w.sum()
        mu = _mu(link, mean_eta[:, None] + np.sqrt(v)[:, None] * x[None, :])
        em = mu @ w
        em2 = (mu**2) @ w
        return em2 - em**2, em2 / a

    def dispersion_from_phi(self, phi: float) -> tuple[float, ...]:
        """PQL's ``phi`` (``Var = phi mu^2``): ``shape = 1 / phi``."""
        return (1.0 / phi,)

    def residual_sd(self, disp: Array) -> Array:
        """lme4's ``sigma(fit)`` for a Gamma GLMM: ``sqrt(phi) = sqrt(1 / shape)``."""
        return np.sqrt(1.0 / np.asarray(disp, dtype=float))

    def dispersion_note(self, disp: dict[str, float]) -> str:
        a = disp["shape"]
        return (
            f"Gamma shape: {a:.4g} (brms's `shape`); dispersion phi = 1/shape = {1.0 / a:.4g} "
            "(lme4's, glmmTMB's; the Residual row shows phi and sqrt(phi))"
        )

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        return np.asarray(mu, dtype=float) ** 2 / np.asarray(sigma, dtype=float)

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        """``2 (-log(y / mu) + (y - mu) / mu)`` (R's ``Gamma()$dev.resids``)."""
        return 2.0 * (-np.log(y / mu) + (y - mu) / mu)

    # ---------------------------------------------------------------- PyMC
    def _pymc_mu(self, link: Link, eta: Any) -> Any:
        import pytensor.tensor as pt

        return pt.exp(eta) if link.name == "log" else 1.0 / eta

    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm

        a = disp["shape"]
        return pm.Gamma.dist(alpha=a, beta=a / self._pymc_mu(link, eta))

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm

        a = disp["shape"]
        return pm.Gamma(
            "y", alpha=a, beta=a / self._pymc_mu(link, eta), observed=observed, dims=dims
        )
