"""Families and links: inverse links, log-likelihoods and their derivatives (NumPy only).

The engines work on the linear predictor ``eta``.  For every family/link pair this module
provides the per-observation log-likelihood and its first derivative with respect to
``eta``, plus the expected (Fisher) information weight, which is what lme4 uses in the
penalized IRLS step and in the Laplace determinant.  For canonical links (logit for the
binomial, log for the Poisson, identity for the gaussian) observed and expected
information coincide.

Latent-scale variances for ICCs (logit ``pi**2 / 3``, probit 1, cloglog ``pi**2 / 6``) also
live here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

from bayesglmm.errors import DesignError

FamilyName = Literal["bernoulli", "binomial", "poisson", "gaussian"]
LinkName = Literal["logit", "probit", "cloglog", "log", "identity"]

_LINKS: dict[str, tuple[str, ...]] = {
    "bernoulli": ("logit", "probit", "cloglog"),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "gaussian": ("identity",),
}
_CANONICAL = {"bernoulli": "logit", "binomial": "logit", "poisson": "log", "gaussian": "identity"}
_EPS = 1e-12


def _linkinv(link: str, eta: np.ndarray) -> np.ndarray:
    if link == "logit":
        return special.expit(eta)
    if link == "probit":
        return special.ndtr(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(np.minimum(eta, 700.0)))
    if link == "log":
        return np.exp(np.minimum(eta, 700.0))
    return np.asarray(eta, dtype=float)


def _mu_eta(link: str, eta: np.ndarray) -> np.ndarray:
    """Derivative d mu / d eta."""
    if link == "logit":
        p = special.expit(eta)
        return p * (1.0 - p)
    if link == "probit":
        return np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi)
    if link == "cloglog":
        e = np.minimum(eta, 700.0)
        return np.exp(e - np.exp(e))
    if link == "log":
        return np.exp(np.minimum(eta, 700.0))
    return np.ones_like(eta, dtype=float)


def _linkfun(link: str, mu: np.ndarray) -> np.ndarray:
    if link == "logit":
        return special.logit(mu)
    if link == "probit":
        return special.ndtri(mu)
    if link == "cloglog":
        return np.log(-np.log1p(-mu))
    if link == "log":
        return np.log(mu)
    return np.asarray(mu, dtype=float)


@dataclass(frozen=True)
class Family:
    """A response distribution with its link function.

    Parameters
    ----------
    name : {"bernoulli", "binomial", "poisson", "gaussian"}
        Distribution name.
    link : str
        Link name; must be valid for ``name``.
    """

    name: FamilyName
    link: LinkName

    def __post_init__(self) -> None:
        if self.name not in _LINKS:
            raise DesignError(
                f"unknown family `{self.name}`; choose one of {', '.join(sorted(_LINKS))}"
            )
        if self.link not in _LINKS[self.name]:
            raise DesignError(
                f"link `{self.link}` is not available for family `{self.name}`; "
                f"choose one of {', '.join(_LINKS[self.name])}"
            )

    # ------------------------------------------------------------------ properties
    @property
    def is_binomial(self) -> bool:
        """True for bernoulli and binomial (trials-based) families."""
        return self.name in ("bernoulli", "binomial")

    @property
    def canonical(self) -> bool:
        """True when the link is the family's canonical link."""
        return _CANONICAL[self.name] == self.link

    @property
    def has_dispersion(self) -> bool:
        """True when the family has a free dispersion parameter (gaussian)."""
        return self.name == "gaussian"

    # ------------------------------------------------------------------ link maps
    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """Mean of one trial (probability) or count/mean, from the linear predictor."""
        return _linkinv(self.link, np.asarray(eta, dtype=float))

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """Linear predictor from the mean."""
        return _linkfun(self.link, np.asarray(mu, dtype=float))

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """Derivative of the inverse link, d mu / d eta."""
        return _mu_eta(self.link, np.asarray(eta, dtype=float))

    # ------------------------------------------------------------------ likelihood
    def loglik(
        self,
        y: np.ndarray,
        eta: np.ndarray,
        trials: np.ndarray | None = None,
        sigma: float = 1.0,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Per-observation log-likelihood, including normalizing constants (as R's ``logLik``).

        Parameters
        ----------
        y : ndarray
            Response: 0/1, successes, counts or real values.
        eta : ndarray
            Linear predictor (same shape as ``y`` or broadcastable).
        trials : ndarray, optional
            Number of trials for the binomial family.
        sigma : float
            Residual SD of the gaussian family.
        weights : ndarray, optional
            Prior weights (lme4's): case weights multiplying each row's log-likelihood, or
            for the gaussian precision weights, ``N(y | mu, sigma^2 / w)``; a zero weight
            gives 0.
        """
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            if self.name != "gaussian":
                return w * self.loglik(y, eta, trials, sigma)
            r = y - np.asarray(eta, dtype=float)
            with np.errstate(divide="ignore"):
                ll = (
                    -0.5 * w * (r * r) / sigma**2
                    - np.log(sigma)
                    - 0.5 * math.log(2 * math.pi)
                    + 0.5 * np.log(w)
                )
            return np.where(w > 0, ll, 0.0)
        eta = np.asarray(eta, dtype=float)
        if self.name in ("bernoulli", "binomial"):
            n = 1.0 if trials is None else trials
            if self.link == "logit":
                # y log p + (n - y) log(1 - p) = y eta - n softplus(eta): one exp, one log
                ll = y * eta - n * softplus(eta)
                if trials is not None:
                    ll = ll + log_choose(trials, y)
                return ll
            if self.link == "probit":
                lp = special.log_ndtr(eta)
                lq = special.log_ndtr(-eta)
            else:  # cloglog
                e = np.minimum(eta, 700.0)
                lq = -np.exp(e)
                lp = np.log(-np.expm1(lq))
            ll = y * lp + (n - y) * lq
            if trials is not None:
                ll = ll + log_choose(trials, y)
            return ll
        if self.name == "poisson":
            e = np.minimum(eta, 700.0)
            return y * e - np.exp(e) - special.gammaln(y + 1.0)
        r = y - eta
        return -0.5 * (r * r) / sigma**2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)

    def score_weights(
        self, y: np.ndarray, eta: np.ndarray, trials: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """First derivative of the log-likelihood in ``eta`` and the Fisher weight.

        Returns
        -------
        d1 : ndarray
            ``d loglik / d eta`` per observation.
        w : ndarray
            Expected information ``n * mu_eta**2 / V(mu)`` per observation (for the gaussian,
            1, to be divided by the residual variance by the caller).
        """
        eta = np.asarray(eta, dtype=float)
        if self.name == "poisson":
            mu = np.exp(np.minimum(eta, 700.0))
            return y - mu, mu
        if self.name == "gaussian":
            return y - eta, np.ones_like(eta)
        n = 1.0 if trials is None else trials
        if self.link == "logit":
            p = special.expit(eta)
            return y - n * p, n * p * (1.0 - p)
        if self.link == "probit":  # exact in both tails (clipping p made the score vanish)
            l1, l0 = probit_ratios(eta)
            return y * l1 - (n - y) * l0, n * l1 * l0
        if self.link == "cloglog":  # d ll / d eta = y m / expm1(m) - (n - y) m
            m, r, s = cloglog_ratios(eta)
            return y * r - (n - y) * m, n * m * np.exp(-np.minimum(m, 700.0)) * s
        p = np.clip(self.linkinv(eta), _EPS, 1.0 - _EPS)
        me = self.mu_eta(eta)
        var = p * (1.0 - p)
        d1 = (y - n * p) * me / var
        w = n * me * me / var
        return d1, w

    def variance(self, mu: np.ndarray, trials: np.ndarray | None = None) -> np.ndarray:
        """Variance of the response given its mean (per trial count for the binomial)."""
        if self.name == "poisson":
            return np.asarray(mu, dtype=float)
        if self.name == "gaussian":
            return np.ones_like(mu, dtype=float)
        n = 1.0 if trials is None else trials
        return n * mu * (1.0 - mu)


def probit_ratios(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(phi / Phi(eta), phi / Phi(-eta))`` on the log scale: exact in both tails."""
    logphi = -0.5 * eta * eta - 0.5 * math.log(2.0 * math.pi)
    return np.exp(logphi - special.log_ndtr(eta)), np.exp(logphi - special.log_ndtr(-eta))


def cloglog_ratios(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(m, m / expm1(m), m / -expm1(-m))`` with ``m = exp(eta)``, overflow-safe: the
    pieces of the cloglog score and information."""
    m = np.exp(np.clip(eta, -700.0, 700.0))
    my = np.minimum(m, 700.0)  # the y-terms vanish like m exp(-m) beyond
    return m, my / np.expm1(my), my / -np.expm1(-my)


def log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``log C(n, k)``, elementwise."""
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


def softplus(eta: np.ndarray) -> np.ndarray:
    """``log(1 + exp(eta))``, stable, with one exp and one log per element (``log1p`` gains
    < 1e-16 absolute on ``(0, 1]`` and costs twice ``log`` here)."""
    return np.maximum(eta, 0.0) + np.log(1.0 + np.exp(-np.abs(eta)))


def get_family(family: str | Family, link: str | None = None) -> Family:
    """Resolve a family name (and optional link) to a :class:`Family`.

    Parameters
    ----------
    family : str or Family
        ``"bernoulli"``, ``"binomial"``, ``"poisson"`` or ``"gaussian"``.
    link : str, optional
        Link name; defaults to the canonical link.
    """
    if isinstance(family, Family):
        if link is not None and link != family.link:
            return Family(family.name, link)  # type: ignore[arg-type]
        return family
    name = str(family).lower()
    if name not in _LINKS:
        raise DesignError(f"unknown family `{family}`; choose one of {', '.join(sorted(_LINKS))}")
    return Family(name, link or _CANONICAL[name])  # type: ignore[arg-type]
