"""The bernoulli (0/1) and binomial (successes of ``n`` trials) families.

Links logit (canonical), probit and cloglog.  Case weights multiply each row's
log-likelihood.  The Numba engines use :func:`row_logit` (compiled by them) for the logit
link; probit and cloglog run on the NumPy paths and the PyMC model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from bayesglmm.families.base import FamilySpec
from bayesglmm.families.links import Link

__all__ = [
    "Bernoulli",
    "Binomial",
    "cloglog_ratios",
    "log_choose",
    "probit_ratios",
    "logit_exps",
    "row_logit",
    "softplus",
]

Array = np.ndarray
_EPS = 1e-12


def probit_ratios(eta: Array) -> tuple[Array, Array]:
    """``(phi / Phi(eta), phi / Phi(-eta))`` on the log scale: exact in both tails."""
    logphi = -0.5 * eta * eta - 0.5 * math.log(2.0 * math.pi)
    return np.exp(logphi - special.log_ndtr(eta)), np.exp(logphi - special.log_ndtr(-eta))


def cloglog_ratios(eta: Array) -> tuple[Array, Array, Array]:
    """``(m, m / expm1(m), m / -expm1(-m))`` with ``m = exp(eta)``, overflow-safe: the
    pieces of the cloglog score and information."""
    m = np.exp(np.clip(eta, -700.0, 700.0))
    my = np.minimum(m, 700.0)  # the y-terms vanish like m exp(-m) beyond
    return m, my / np.expm1(my), my / -np.expm1(-my)


def log_choose(n: Array, k: Array) -> Array:
    """``log C(n, k)``, elementwise."""
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


def softplus(eta: Array) -> Array:
    """``log(1 + exp(eta))``, stable, with one exp and one log per element (``log1p`` gains
    < 1e-16 absolute on ``(0, 1]`` and costs twice ``log`` here)."""
    return np.maximum(eta, 0.0) + np.log(1.0 + np.exp(-np.abs(eta)))


def logit_exps(eta: Any) -> tuple[Any, Any]:
    """``(e, log(1 + e))`` with ``e = exp(-|eta|)``: the transcendental part of
    :func:`row_logit`, elementwise.  On arrays it is NumPy's vectorized ``exp`` and ``log``
    over a whole pass (several times faster than a scalar loop's); the Numba engines also
    compile it for one row."""
    e = np.exp(-np.abs(eta))  # one exp serves softplus and the logistic
    return e, np.log(1.0 + e)


def row_logit(
    y: float, n: float, eta: float, e: float, log_ope: float
) -> tuple[float, float, float, float]:
    """``(ll, d ll / d eta, Fisher weight w, d w / d eta)`` of one row, logit link, without
    the ``log choose`` constant, from ``(e, log_ope) = logit_exps(eta)`` (scalar; the Numba
    engines compile it inline)."""
    ope = 1.0 + e
    ll = y * eta - n * (max(eta, 0.0) + log_ope)
    p = (1.0 if eta >= 0.0 else e) / ope
    w = n * e / (ope * ope)
    return ll, y - n * p, w, w * (1.0 - 2.0 * p)


def nuts_row_logit(y: float, n: float, eta: float, c: Any) -> tuple[float, float, float, float]:
    """NUTS row kernel, logit link: ``(ll, d ll / d eta, 0, 0)`` without ``log choose``
    (``n``: trials times the case weight; see :func:`~bayesglmm.families.base.row_prep_none`)."""
    ex = math.exp(-abs(eta))  # one exp serves softplus and the logistic
    # log(1 + ex), ex in (0, 1]: log1p's extra accuracy for tiny ex is below 1e-16 in
    # absolute terms here, and log is ~2x faster on this hot path
    ll = y * eta - n * (max(eta, 0.0) + math.log(1.0 + ex))
    p = 1.0 / (1.0 + ex) if eta >= 0.0 else ex / (1.0 + ex)
    return ll, y - n * p, 0.0, 0.0


class Bernoulli(FamilySpec):
    """A 0/1 response: ``y ~ Bernoulli(linkinv(eta))``."""

    name = "bernoulli"
    links = ("logit", "probit", "cloglog")
    canonical_link = "logit"
    is_binomial = True
    separation = "binary"
    response_kind = "binary"
    case_weights_fold = True
    row_kernels = {"logit": "logit"}

    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        n = 1.0 if trials is None else trials
        if link.name == "logit":
            # y log p + (n - y) log(1 - p) = y eta - n softplus(eta): one exp, one log
            ll = y * eta - n * softplus(eta)
        else:
            if link.name == "probit":
                lp = special.log_ndtr(eta)
                lq = special.log_ndtr(-eta)
            else:  # cloglog
                lq = -np.exp(np.minimum(eta, 700.0))
                lp = np.log(-np.expm1(lq))
            ll = y * lp + (n - y) * lq
        if trials is not None:
            ll = ll + log_choose(trials, y)
        return ll

    def score_weights(
        self, link: Link, y: Array, eta: Array, trials: Array | None = None, sigma: Any = None
    ) -> tuple[Array, Array]:
        """Score and Fisher weight; exact in both tails for probit and cloglog."""
        eta = np.asarray(eta, dtype=float)
        n = 1.0 if trials is None else trials
        if link.name == "logit":
            p = special.expit(eta)
            return y - n * p, n * p * (1.0 - p)
        if link.name == "probit":  # exact in both tails (clipping p made the score vanish)
            l1, l0 = probit_ratios(eta)
            return y * l1 - (n - y) * l0, n * l1 * l0
        # cloglog: d ll / d eta = y m / expm1(m) - (n - y) m
        m, r, s = cloglog_ratios(eta)
        return y * r - (n - y) * m, n * m * np.exp(-np.minimum(m, 700.0)) * s

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        n = 1.0 if trials is None else trials
        return n * mu * (1.0 - mu)

    def row_constants(self, y: Array, trials: Array) -> Array:
        return log_choose(trials, y)

    def saturated_loglik(self, y: Array, trials: Array | None) -> Array:
        if trials is None:
            return np.zeros_like(np.asarray(y, dtype=float))
        n = np.asarray(trials, dtype=float)
        p = np.divide(y, n, out=np.zeros_like(y), where=n > 0)
        return special.xlogy(y, p) + special.xlogy(n - y, 1.0 - p) + log_choose(n, y)

    def check_response(self, values: Array, trials: Array | None) -> tuple[Array, str]:
        return ~np.isin(values, (0.0, 1.0)), "must be 0/1 for the bernoulli family"

    def response_scale(self, design: Any) -> tuple[float, float]:
        y = design.y
        n = design.trials if design.trials is not None else np.ones_like(y)
        w = 1.0 if design.weights is None else design.weights
        p = float(np.clip((w * y).sum() / (w * n).sum(), 0.01, 0.99))
        return 1.0, float(design.family.linkfun(np.array([p]))[0])

    def start_mean(self, y: Array, trials: Array | None) -> float:
        n = 1.0 if trials is None else trials
        return float(np.clip(np.mean(y / n), 0.01, 0.99))

    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        import pymc as pm

        p = _pt_linkinv(link, eta)
        return pm.Bernoulli.dist(p=p) if self.name == "bernoulli" else pm.Binomial.dist(n=n, p=p)

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        import pymc as pm

        kw = {"logit_p": eta} if link.name == "logit" else {"p": _pt_linkinv(link, eta)}
        if self.name == "bernoulli":
            return pm.Bernoulli("y", **kw, observed=observed, dims=dims)
        return pm.Binomial("y", n=n, **kw, observed=observed, dims=dims)

    def simulate(
        self,
        rng: np.random.Generator,
        link: Link,
        eta: Array,
        trials: Array | None,
        dispersion: dict[str, Any],
        weights: Array | None = None,
    ) -> Array:
        n = 1 if trials is None else np.asarray(trials).astype(np.int64)
        return rng.binomial(n, np.clip(link.linkinv(eta), 0.0, 1.0)).astype(float)

    def distribution_variance(self, link: Link, lam: Any, method: str, sigma2: Any) -> float:
        assert link.latent_variance is not None
        return link.latent_variance

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        return self.variance(mu / n, n)

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        p = np.clip(mu / n, 1e-12, 1 - 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(y > 0, y * np.log(y / (n * p)), 0.0)
            b = np.where(n - y > 0, (n - y) * np.log((n - y) / (n * (1 - p))), 0.0)
        return 2.0 * (a + b)


def _pt_linkinv(link: Link, eta: Any) -> Any:
    """The inverse link in PyTensor (probit, cloglog; the logit goes by ``logit_p``)."""
    import pytensor.tensor as pt

    if link.name == "probit":
        return 0.5 * pt.erfc(-eta / np.sqrt(2.0))
    if link.name == "cloglog":
        return -pt.expm1(-pt.exp(eta))
    if link.name == "logit":
        import pymc as pm

        return pm.math.invlogit(eta)
    raise ValueError(link.name)


class Binomial(Bernoulli):
    """Successes of ``n`` trials: ``y ~ Binomial(n, linkinv(eta))`` (``cbind`` or
    ``trials=``)."""

    name = "binomial"
    response_kind = "binomial"

    def check_response(self, values: Array, trials: Array | None) -> tuple[Array, str]:
        return (
            (values < 0) | (values != np.round(values)),
            "must hold non-negative integer successes (counts, not proportions)",
        )
