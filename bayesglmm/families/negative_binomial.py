"""The negative binomial family (NB2, log link): lme4's ``glmer.nb``, glmmTMB's ``nbinom2``.

``y ~ NegBinomial(mu = exp(eta), theta)`` with ``Var(y) = mu + mu^2 / theta``: ``theta`` is
lme4's ``theta`` (``getME(fit, "glmer.nb.theta")``), brms's and Stan's ``shape`` / ``phi``,
PyMC's ``alpha`` and glmm's ``theta``.  Its posterior variable (and the key of its prior in
``priors=``) is ``shape`` (brms's name: ``theta`` is taken by the ML covariance parameters);
printed fits label it ``theta`` as lme4 does.  Default prior: brms's ``Gamma(0.01, 0.01)``
on ``shape``.

Case weights multiply each row's log-likelihood (they are not folded into ``y``: the
log-likelihood is not linear in ``y``).  ML estimates ``theta`` jointly with the fixed
effects and the random-effect covariance (``inference/laplace_dispersion.py``, as glmmTMB
and glmm; lme4 alternates).  PQL (glmmPQL needs a known ``theta``) and the Bayesian Laplace
engine (its hyperparameters are the covariance parameters only) are clear errors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from bayesglmm.errors import DesignError
from bayesglmm.families import row_math
from bayesglmm.families.base import Dispersion
from bayesglmm.families.counts import CountResponse
from bayesglmm.families.links import Link

__all__ = ["NegativeBinomial", "nuts_prep", "nuts_row"]

Array = np.ndarray
_ETA_MAX = 700.0


def nuts_prep(lt: float, d1: float) -> tuple[float, float, float, float]:
    """NUTS row constants from ``log theta``: ``(theta, log theta, theta log theta -
    lgamma(theta), digamma(theta))``."""
    th = math.exp(lt)
    return th, lt, th * lt - math.lgamma(th), row_math.digamma(th)


def nuts_row(y: float, w: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel (NB2, log link, case weight ``w``): ``(ll, d/d eta, d/d log theta,
    0)`` without ``-lgamma(y + 1)``."""
    if w == 0.0:
        return 0.0, 0.0, 0.0, 0.0
    th, lt = c[0], c[1]
    # log(mu + theta) without overflow; q = mu / (mu + theta) from the same exp
    d = eta - lt
    ex = math.exp(-abs(d))
    lmt = max(eta, lt) + math.log1p(ex)
    q = 1.0 / (1.0 + ex) if d >= 0.0 else ex / (1.0 + ex)
    ll = w * (math.lgamma(y + th) + c[2] + y * eta - (th + y) * lmt)
    ds = row_math.digamma(y + th) - c[3] + lt - lmt + q - y * (1.0 - q) / th
    return ll, w * (y - (th + y) * q), w * th * ds, 0.0


def _theta(sigma: Any) -> Array:
    return np.asarray(sigma, dtype=float)


class NegativeBinomial(CountResponse):
    """Overdispersed counts with mean ``exp(eta)`` and variance ``mu + mu^2 / theta``."""

    name = "negativebinomial"
    links = ("log",)
    canonical_link = "log"
    dispersion = (Dispersion("shape", ("Gamma", {"alpha": 0.01, "beta": 0.01}), label="theta"),)
    wald_z = True
    dispersion_orthogonal = True
    separation = "counts"
    response_kind = "counts"
    row_kernels = {"log": "nb_log"}  # the fused NUTS log density
    unsupported = {
        "pql": (
            "PQL is not available for the negative binomial family: MASS::glmmPQL defines it "
            "only for a known theta (negative.binomial(theta)); use method='ml' (theta "
            "estimated) or 'nuts'"
        ),
    }

    # ------------------------------------------------------------ likelihood
    def __init__(self) -> None:
        # (y, theta, lgamma(y + theta) - lgamma(theta) - lgamma(y + 1)) of the last call: the
        # eta-free part is most of the cost, and the Laplace inner loop calls the
        # log-likelihood with the same y and theta many times (3x faster ML at 1e5 rows)
        self._const_cache: tuple[Array, float, Array] | None = None
        # (y, its distinct values, the index of each row's value): a count takes few
        # distinct values, so a new theta (every optimizer step and both sides of the
        # dispersion's difference quotient) costs three lgamma of those, not of every row
        self._distinct: tuple[Array, Array, Array] | None = None

    def _distinct_counts(self, y: Array) -> tuple[Array, Array] | None:
        """``(distinct values, row -> value index)`` of ``y`` when it has at most a quarter
        as many distinct values as rows (cached for the same array), else None."""
        d = self._distinct
        if d is not None and d[0] is y:
            return (d[1], d[2]) if d[1].size else None
        uniq, inv = np.unique(y, return_inverse=True)
        if uniq.size * 4 > y.size:
            uniq, inv = np.empty(0), np.empty(0, dtype=np.intp)  # not worth it: cache that
        self._distinct = (y, uniq, inv)
        return (uniq, inv) if uniq.size else None

    def _eta_free(self, y: Array, th: Array) -> Array:
        """``lgamma(y + theta) - lgamma(theta) - lgamma(y + 1)``, cached for scalar theta."""
        if th.ndim == 0 and isinstance(y, np.ndarray):
            c = self._const_cache
            if c is not None and c[0] is y and c[1] == float(th):
                return c[2]
            d = self._distinct_counts(y) if y.ndim == 1 else None
            if d is not None:  # per distinct count, then one gather
                uniq, inv = d
                out = (
                    special.gammaln(uniq + th) - special.gammaln(th) - special.gammaln(uniq + 1.0)
                )[inv]
            else:
                out = special.gammaln(y + th) - special.gammaln(th) - special.gammaln(y + 1.0)
            self._const_cache = (y, float(th), out)
            return out
        return special.gammaln(y + th) - special.gammaln(th) - special.gammaln(y + 1.0)

    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        th = _theta(sigma)
        e = np.minimum(eta, _ETA_MAX)
        log_mu_th = np.log(np.exp(e) + th)  # log(mu + theta); mu + theta >= theta > 0
        return self._eta_free(y, th) + th * (np.log(th) - log_mu_th) + y * (e - log_mu_th)

    def score_weights(
        self,
        link: Link,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = 1.0,
    ) -> tuple[Array, Array]:
        """``(theta (y - mu) / (mu + theta), Fisher weight mu theta / (mu + theta))``."""
        th = _theta(sigma)
        mu = np.exp(np.minimum(np.asarray(eta, dtype=float), _ETA_MAX))
        r = th / (mu + th)
        return r * (y - mu), r * mu

    def observed_information(
        self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any
    ) -> tuple[Array, Array]:
        """``(y + theta) theta mu / (mu + theta)^2`` and its ``eta``-derivative
        ``(y + theta) theta mu (theta - mu) / (mu + theta)^3`` (the log link is not the
        negative binomial's canonical link, so this differs from the Fisher weight)."""
        th = _theta(sigma)
        mu = np.exp(np.minimum(np.asarray(eta, dtype=float), _ETA_MAX))
        r = 1.0 / (mu + th)
        w = (y + th) * th * mu * r * r
        return w, w * (th - mu) * r

    def variance(self, mu: Array, trials: Array | None = None, sigma: Any = None) -> Array:
        """``mu + mu^2 / theta`` (``mu`` alone when ``theta`` is not given: the Poisson limit)."""
        mu = np.asarray(mu, dtype=float)
        if sigma is None:
            return mu
        return mu + mu * mu / _theta(sigma)

    # ------------------------------------------------------------ data
    def dispersion_start(self, y: Array, mu: Array) -> tuple[float, ...]:
        """Moment estimate ``mean(mu^2) / mean((y - mu)^2 - mu)``, kept in ``[0.05, 1e3]``."""
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        excess = float(np.mean((y - mu) ** 2 - mu))
        if excess <= 0:
            return (1e3,)
        return (float(np.clip(np.mean(mu * mu) / excess, 0.05, 1e3)),)

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
        """numpy's ``negative_binomial(n=theta, p=theta / (theta + mu))``."""
        mu = link.linkinv(np.asarray(eta, dtype=float))
        th = _theta(dispersion["shape"])
        th, mu = np.broadcast_arrays(th, mu)
        return rng.negative_binomial(th, th / (th + mu)).astype(float)

    # ------------------------------------------------------------ interpretation
    def latent_mean(self, link: Link, eta: Array) -> Array:
        return np.exp(eta)

    def distribution_variance(self, link: Link, lam: Any, method: str, sigma2: Any) -> Array:
        """Nakagawa et al. (2017) for the log link: with ``v = 1 / lambda + 1 / theta``,
        ``lognormal``: ``log(1 + v)`` (the default), ``delta``: ``v``, ``trigamma``:
        ``trigamma(1 / v)``.  ``sigma2`` is ``theta^2`` (the callers pass the squared
        dispersion)."""
        lam = np.asarray(lam, dtype=float)
        if sigma2 is None:
            raise DesignError("the negative binomial latent variance needs theta")
        v = 1.0 / lam + 1.0 / np.sqrt(np.asarray(sigma2, dtype=float))
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
        """Between: ``m^2 (e^v - 1)``; within: ``E[mu + mu^2 / theta] = m + m^2 e^v / theta``
        with ``m = exp(mean_eta + v / 2)``."""
        m = np.exp(mean_eta + v / 2.0)
        return m**2 * np.expm1(v), m + m**2 * np.exp(v) / _theta(sigma)

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        return self.variance(mu, sigma=sigma)

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        """``2 [y log(y / mu) - (y + theta) log((y + theta) / (mu + theta))]`` (R's
        ``negative.binomial(theta)$dev.resids``); the Poisson's when ``theta`` is not given."""
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(y > 0, y * np.log(y / mu), 0.0)
        if sigma is None:
            return 2.0 * (t - (y - mu))
        th = _theta(sigma)
        return 2.0 * (t - (y + th) * np.log((y + th) / (mu + th)))

    # ------------------------------------------------------------ PyMC
    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm
        import pytensor.tensor as pt

        return pm.NegativeBinomial.dist(mu=pt.exp(eta), alpha=disp["shape"])

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm
        import pytensor.tensor as pt

        return pm.NegativeBinomial(
            "y", mu=pt.exp(eta), alpha=disp["shape"], observed=observed, dims=dims
        )
