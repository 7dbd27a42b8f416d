"""The NB1 negative binomial family (log link): glmmTMB's ``nbinom1``.

``y ~ NegBinomial(size = mu / phi, prob = 1 / (1 + phi))`` with ``mu = exp(eta)``, so

    E[y] = mu,    Var[y] = mu (1 + phi):

the variance is proportional to the mean, as the quasi-Poisson's, with a proper likelihood.
``phi`` is glmmTMB's dispersion (``sigma(fit)`` of an ``nbinom1`` fit); ``phi -> 0`` is the
Poisson.  Its posterior variable, prior key and printed name are ``phi``.  Default prior:
``Gamma(0.01, 0.01)``, the vague, nearly scale-invariant prior of the package's other
count dispersion (NB2's ``shape``).

The log-likelihood, with ``k = mu / phi``::

    lgamma(y + k) - lgamma(k) - lgamma(y + 1) - k log(1 + phi) + y log(phi / (1 + phi))

depends on ``eta`` through ``k`` in the gamma functions, so the log link is not canonical
and the observed information (digamma and trigamma of ``y + k`` and ``k``) differs from
the quasi-likelihood weight ``mu / (1 + phi)``.  ML estimates ``phi`` jointly with the fixed
effects and the covariance parameters (the generic dispersion path, as glmmTMB); PQL and the
Bayesian Laplace engine are clear errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from bayesglmm.errors import DesignError
from bayesglmm.families.base import Dispersion
from bayesglmm.families.counts import CountResponse
from bayesglmm.families.links import Link

__all__ = ["NegativeBinomial1"]

Array = np.ndarray
_ETA_MAX = 700.0
_K_POISSON = 1e8


def _phi(sigma: Any) -> Array:
    return np.asarray(sigma, dtype=float)


def _k(eta: Array, phi: Array) -> Array:
    """The NB size ``mu / phi``."""
    return np.exp(np.minimum(np.asarray(eta, dtype=float), _ETA_MAX)) / phi


class NegativeBinomial1(CountResponse):
    """Overdispersed counts with mean ``exp(eta)`` and variance ``mu (1 + phi)``."""

    name = "negativebinomial1"
    links = ("log",)
    canonical_link = "log"
    dispersion = (Dispersion("phi", ("Gamma", {"alpha": 0.01, "beta": 0.01})),)
    wald_z = True
    separation = "counts"
    response_kind = "counts"
    unsupported = {
        "pql": (
            "PQL is not available for the negativebinomial1 family: MASS::glmmPQL has no NB1 "
            "likelihood (its quasipoisson family is the quasi-likelihood analogue); use "
            "method='ml' (phi estimated) or 'nuts'"
        ),
    }

    # ------------------------------------------------------------ likelihood
    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        phi = _phi(sigma)
        k = _k(eta, phi)
        return (
            special.gammaln(y + k)
            - special.gammaln(k)
            - special.gammaln(y + 1.0)
            - k * np.log1p(phi)
            + y * (np.log(phi) - np.log1p(phi))
        )

    def _a(self, y: Array, k: Array, phi: Array) -> Array:
        """``digamma(y + k) - digamma(k) - log(1 + phi)``: the score is ``k`` times it."""
        return special.digamma(y + k) - special.digamma(k) - np.log1p(phi)

    def score_weights(
        self,
        link: Link,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = 1.0,
    ) -> tuple[Array, Array]:
        """``(k [digamma(y + k) - digamma(k) - log(1 + phi)], mu / (1 + phi))``.

        The weight is the quasi-likelihood one, ``mu_eta^2 / Var = mu / (1 + phi)`` (the
        exact expected information has no closed form); the Laplace engines use the exact
        observed information (:meth:`observed_information`)."""
        phi = _phi(sigma)
        k = _k(eta, phi)
        return k * self._a(y, k, phi), k * phi / (1.0 + phi)

    def observed_information(
        self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any
    ) -> tuple[Array, Array]:
        """``w = -k A - k^2 B`` and ``dw / d eta = -k A - 3 k^2 B - k^3 C`` with
        ``A = digamma(y + k) - digamma(k) - log(1 + phi)``, ``B = trigamma(y + k) -
        trigamma(k)``, ``C = tetragamma(y + k) - tetragamma(k)`` (``d k / d eta = k``)."""
        phi = _phi(sigma)
        k = _k(eta, phi)
        # k above 1e8 (phi -> 0): the Poisson limit w = dw = mu, where k^2 and k^3 overflow
        # and the differences of polygammas lose their digits (the limit's error is O(y / k))
        big = k > _K_POISSON
        ks = np.where(big, 1.0, k)
        a = self._a(y, ks, phi)
        b = special.polygamma(1, y + ks) - special.polygamma(1, ks)
        c = special.polygamma(2, y + ks) - special.polygamma(2, ks)
        w = -ks * a - ks * ks * b
        dw = -ks * a - 3.0 * ks * ks * b - ks**3 * c
        mu = k * phi
        return np.where(big, mu, w), np.where(big, mu, dw)

    def variance(self, mu: Array, trials: Array | None = None, sigma: Any = None) -> Array:
        """``mu (1 + phi)`` (``mu`` alone when ``phi`` is not given: the Poisson limit)."""
        mu = np.asarray(mu, dtype=float)
        return mu if sigma is None else mu * (1.0 + _phi(sigma))

    # ------------------------------------------------------------ data
    def dispersion_start(self, y: Array, mu: Array) -> tuple[float, ...]:
        """Moment estimate ``mean((y - mu)^2 / mu) - 1``, kept in ``[0.01, 1e3]``."""
        y = np.asarray(y, dtype=float)
        mu = np.maximum(np.asarray(mu, dtype=float), 1e-8)
        return (float(np.clip(np.mean((y - mu) ** 2 / mu) - 1.0, 0.01, 1e3)),)

    # ------------------------------------------------------------ simulation
    def simulate(
        self,
        rng: np.random.Generator,
        link: Link,
        eta: Array,
        trials: Array | None,
        dispersion: dict[str, Any],
        weights: Array | None = None,
    ) -> Array:
        """numpy's ``negative_binomial(n=mu / phi, p=1 / (1 + phi))``."""
        mu = link.linkinv(np.asarray(eta, dtype=float))
        phi = _phi(dispersion["phi"])
        phi, mu = np.broadcast_arrays(phi, mu)
        return rng.negative_binomial(mu / phi, 1.0 / (1.0 + phi)).astype(float)

    # ------------------------------------------------------------ interpretation
    def latent_mean(self, link: Link, eta: Array) -> Array:
        return np.exp(eta)

    def latent_dispersion(self, disp: dict[str, Any]) -> Any:
        """``phi`` itself (:meth:`distribution_variance` reads ``1 + phi``)."""
        return np.asarray(disp["phi"], dtype=float)

    def distribution_variance(self, link: Link, lam: Any, method: str, sigma2: Any) -> Array:
        """Nakagawa, Johnson & Schielzeth (2017), quasi-Poisson / NB1 rows of their Table 2,
        with the overdispersion factor ``omega = 1 + phi`` (``sigma2`` is ``phi``):
        ``lognormal``: ``log(1 + omega / lambda)`` (the default), ``delta``:
        ``omega / lambda``, ``trigamma``: ``trigamma(lambda / omega)``."""
        lam = np.asarray(lam, dtype=float)
        if sigma2 is None:
            raise DesignError("the negativebinomial1 latent variance needs phi")
        v = (1.0 + np.asarray(sigma2, dtype=float)) / lam
        if method == "lognormal":
            return np.log1p(v)
        if method == "delta":
            return v
        if method == "trigamma":
            return special.polygamma(1, 1.0 / v)
        raise DesignError(f"method must be 'lognormal', 'delta' or 'trigamma', not {method!r}")

    def data_scale_icc_part(
        self, link: Link, mean_eta: Array, v: Array, sigma: Any
    ) -> tuple[Array, Array]:
        """Between: ``m^2 (e^v - 1)``; within: ``E[mu (1 + phi)] = m (1 + phi)`` with
        ``m = exp(mean_eta + v / 2)``."""
        m = np.exp(mean_eta + v / 2.0)
        return m**2 * np.expm1(v), m * (1.0 + _phi(sigma))

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        return self.variance(mu, sigma=sigma)

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        """The quasi-likelihood deviance of ``Var = (1 + phi) mu``: the Poisson unit deviance
        ``2 [y log(y / mu) - (y - mu)]`` over ``1 + phi`` (R's ``quasipoisson`` scaled by
        its dispersion; ``phi`` not given: the Poisson's).  The NB1 likelihood's own
        ``2 [ll(y | y) - ll(y | mu)]`` is not minimised at ``mu = y``, so it can be negative."""
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(y > 0, y * np.log(y / mu), 0.0)
        dev = 2.0 * (t - (y - mu))
        return dev if sigma is None else dev / (1.0 + _phi(sigma))

    # ------------------------------------------------------------ PyMC
    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm
        import pytensor.tensor as pt

        mu = pt.exp(eta)
        return pm.NegativeBinomial.dist(mu=mu, alpha=mu / disp["phi"])

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm
        import pytensor.tensor as pt

        mu = pt.exp(eta)
        return pm.NegativeBinomial("y", mu=mu, alpha=mu / disp["phi"], observed=observed, dims=dims)
