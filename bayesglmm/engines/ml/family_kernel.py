"""The family as the ML engines evaluate it row by row (:class:`FamilyKernel`): the
log-likelihood, score and weights per row on the linear predictor, with the case weights,
binomial trials and a dispersion folded in, and the observed curvature non-canonical links
need; and the saturated log-likelihood glmer's ``nAGQ > 1`` deviance subtracts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from bayesglmm.design.types import Design
from bayesglmm.families import Family, cloglog_ratios, log_choose, probit_ratios, softplus

__all__ = ["FamilyKernel", "saturated_loglik"]


_INLINED = ("logit", "poisson", "gaussian")


class FamilyKernel:
    """Per-row log-likelihood, score and weights of a family, with the fast paths inlined.

    ``ll`` omits per-row constants that do not depend on ``eta`` (``log y!``,
    ``log choose(n, y)``); their sum is :attr:`const`, so the full log-likelihood is
    ``ll.sum() + const``.  Gaussian rows are scaled by ``sigma`` and optional prior
    ``weights`` (used by the PQL working model).

    Parameters
    ----------
    family : Family
    y, trials : ndarray
        Response and binomial trials (None for 1).
    sigma : float
        Gaussian residual SD.
    weights : ndarray, optional
        Prior weights (:attr:`Design.weights`).  Case weights (non-gaussian) are folded
        into the kernel: every binomial and Poisson kernel is linear in ``(y, n)`` apart
        from the ``eta``-free constant, so ``y`` and ``trials`` become ``w y`` and ``w n``
        (Poisson: ``trials`` is then the multiplier ``w`` of the mean) and every engine that
        reads them (the Numba fast paths too) sees the weighted likelihood.  Gaussian:
        precision weights, ``N(y | eta, sigma^2 / w)``.
    """

    def __init__(
        self,
        family: Family,
        y: np.ndarray,
        trials: np.ndarray | None = None,
        sigma: float = 1.0,
        weights: np.ndarray | None = None,
    ) -> None:
        self.family = family
        self.y = np.ascontiguousarray(y, dtype=float)
        self.trials = None if trials is None else np.asarray(trials, dtype=float)
        self.sigma = float(sigma)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        wt = self.weights
        # the family's row kernel names the inlined fast path; others use the family's
        # NumPy loglik / score (``generic``)
        self.kind = family.row_kernel or "generic"
        if self.kind not in _INLINED:  # a row kernel of the fused engines only
            self.kind = "generic"
        # a generic family with a dispersion gets it in its score too (Beta, Student-t)
        self._disp_score = self.kind == "generic" and family.has_dispersion
        self._fisher = family.spec.laplace_information == "fisher"
        self._case_w = None  # case weights multiplying a generic family's rows
        if wt is not None and self.kind == "generic" and not family.spec.case_weights_fold:
            self._case_w = wt
            self._lc = None
            self.const = 0.0
        elif wt is not None and self.kind != "gaussian":
            lc0: float | np.ndarray = 0.0
            if self.kind == "poisson" or self.trials is not None:
                n1 = np.ones_like(self.y) if self.trials is None else self.trials
                lc0 = family.spec.row_constants(self.y, n1)
            self.const = float(np.sum(wt * lc0))
            n0 = np.ones_like(self.y) if self.trials is None else self.trials
            self.y = np.ascontiguousarray(wt * self.y)
            self.trials = np.ascontiguousarray(wt * n0)
            if self.kind == "generic":
                self._lc = log_choose(self.trials, self.y)
        elif self.kind == "logit":
            self.const = 0.0 if self.trials is None else float(log_choose(self.trials, y).sum())
        elif self.kind == "poisson":
            self.const = float(family.spec.row_constants(self.y, self.y).sum())
        elif self.kind == "gaussian":
            self.const = 0.0
            if wt is not None:  # 0.5 sum log w over the rows that count
                self.const = 0.5 * float(np.log(wt[wt > 0]).sum())
                self._n_obs = int((wt > 0).sum())
        else:
            self._lc = None if self.trials is None else log_choose(self.trials, self.y)
            self.const = 0.0 if self._lc is None else float(self._lc.sum())

    def set_dispersion(self, values: np.ndarray) -> None:
        """Set the family's dispersion parameter(s) (natural scale; gaussian: ``sigma``).

        One value is kept as the float ``sigma`` (every one-dispersion family); several
        become the family's own argument (``FamilySpec.dispersion_arg``, Student-t:
        ``(sigma, nu)``), which its ``loglik`` and ``score_weights`` receive."""
        if len(values) == 1:
            self.sigma = float(values[0])
        elif len(values) > 1:
            names = [d.name for d in self.family.dispersion]
            self.sigma = self.family.spec.dispersion_arg(
                {n: float(v) for n, v in zip(names, values, strict=True)}
            )

    def _pmu(self, mu: np.ndarray) -> np.ndarray:
        """Poisson mean times the case weight (``trials`` holds it when weighted)."""
        return mu if self.trials is None else self.trials * mu

    @property
    def canonical(self) -> bool:
        """Observed and Fisher information coincide (canonical link)."""
        return self.kind != "generic"

    def ll(self, eta: np.ndarray) -> np.ndarray:
        """Per-row log-likelihood without the ``eta``-free constants."""
        y = self.y
        if self.kind == "logit":
            n = 1.0 if self.trials is None else self.trials
            return y * eta - n * softplus(eta)
        if self.kind == "poisson":
            e = np.minimum(eta, 700.0)
            return y * e - self._pmu(np.exp(e))
        if self.kind == "gaussian":
            r = y - eta
            s2 = self.sigma**2
            if self.weights is not None:
                wt = self.weights
                return np.where(
                    wt > 0, -0.5 * wt * r * r / s2 - 0.5 * math.log(2 * math.pi * s2), 0.0
                )
            return -0.5 * r * r / s2 - 0.5 * math.log(2 * math.pi * s2)
        if self._case_w is not None:  # full rows (constants included) times the case weight
            return self.family.loglik(y, eta, self.trials, self.sigma, self._case_w)
        if self.trials is None:
            return self.family.loglik(y, eta, None, self.sigma)
        # binomial kernel with n trials, without the choose term (that is in ``const``)
        return self.family.loglik(y, eta, self.trials, self.sigma) - self._lc

    def score(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(d ll / d eta, Fisher weight)`` per row."""
        if self.kind == "logit":
            p = special.expit(eta)
            n = 1.0 if self.trials is None else self.trials
            return self.y - n * p, n * p * (1.0 - p)
        if self.kind == "poisson":
            mu = self._pmu(np.exp(np.minimum(eta, 700.0)))
            return self.y - mu, mu
        if self.kind == "gaussian":
            s2 = self.sigma**2
            wt = 1.0 if self.weights is None else self.weights
            return wt * (self.y - eta) / s2, wt * np.full_like(eta, 1.0 / s2)
        sig = self.sigma if self._disp_score else None
        if self._case_w is not None:
            d1, w = self.family.score_weights(self.y, eta, self.trials, sig)
            return self._case_w * d1, self._case_w * w
        return self.family.score_weights(self.y, eta, self.trials, sig)

    def full(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ll, d1, w)`` in one pass (shares the exponentials for logit and log links)."""
        if self.kind == "logit":
            y = self.y
            n = 1.0 if self.trials is None else self.trials
            e = np.exp(-np.abs(eta))
            ope = 1.0 + e
            # log(1 + e) for e in (0, 1]: log1p's gain for tiny e is < 1e-16 absolute, and
            # NumPy's log is ~2x faster than log1p here (the hot path of every fit)
            ll = y * eta - n * (np.maximum(eta, 0.0) + np.log(ope))
            p = np.where(eta >= 0.0, 1.0, e) / ope
            w = n * e / (ope * ope)  # n p (1 - p)
            return ll, y - n * p, w
        if self.kind == "poisson":
            e = np.minimum(eta, 700.0)
            mu = self._pmu(np.exp(e))
            return self.y * e - mu, self.y - mu, mu
        d1, w = self.score(eta)
        return self.ll(eta), d1, w

    def curvature_at(
        self, eta: np.ndarray, d1: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`curvature` reusing ``d1`` and ``w`` already computed at ``eta``."""
        if self.kind == "logit":
            if self.weights is not None:  # a zero weight makes n = 0
                p = special.expit(eta)
            else:
                n = 1.0 if self.trials is None else self.trials
                p = (self.y - d1) / n
            return w, w * (1.0 - 2.0 * p)
        if self.kind == "poisson":
            return w, w
        return self.curvature(eta)

    def laplace_curvature(
        self, eta: np.ndarray, d1: np.ndarray, w: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(observed information, its derivative d / d eta)`` per row, for the Laplace
        determinant.

        The Laplace approximation expands the log-integrand to second order at the mode, so
        its determinant holds the observed information ``-d2 ll / d eta2``, which for a
        non-canonical link (probit, cloglog) differs from the Fisher weight.  (lme4 puts
        the Fisher weight there; glmm the observed one, whose approximation is the closer
        one: issue 14, ``tests/test_peer_examples.py``.)  :func:`pirls` also steps with it
        (Newton rather than Fisher scoring), so the mode it returns is exact.
        Canonical links: ``curvature_at``; binomial probit and cloglog: analytic
        (:meth:`_binomial_observed`).  Otherwise central differences of the score, first
        (step ``1e-5``) and second (step ``1e-4``) order, ~1e-9 / ~1e-7 relative;
        ``order=1`` skips the derivative (returns None for it).
        """
        if self.canonical:
            return self.curvature_at(eta, d1, w)
        if self._fisher:  # a log-likelihood not concave in eta (Student-t): Fisher weight
            if order == 1:
                return w, None
            _, wp = self.score(eta + 1e-5)
            _, wm = self.score(eta - 1e-5)
            return w, (wp - wm) / 2e-5
        if self.family.is_binomial and self.family.link in ("probit", "cloglog"):
            return self._binomial_observed(np.asarray(eta, dtype=float))
        sig = self.sigma if self.family.has_dispersion else None
        obs = self.family.spec.observed_information(
            self.family.link_fn, self.y, np.asarray(eta, dtype=float), self.trials, sig
        )
        if obs is not None:  # the family's analytic one (negative binomial)
            wo, dwo = obs
            if self._case_w is not None:
                wo, dwo = self._case_w * wo, self._case_w * dwo
            return wo, (dwo if order != 1 else None)
        h, h2 = 1e-5, 1e-4
        d1p, _ = self.score(eta + h)
        d1m, _ = self.score(eta - h)
        if order == 1:
            return -(d1p - d1m) / (2 * h), None
        d1pp, _ = self.score(eta + h2)
        d1mm, _ = self.score(eta - h2)
        return -(d1p - d1m) / (2 * h), -(d1pp - 2.0 * d1 + d1mm) / (h2 * h2)

    def _binomial_observed(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed information ``-d2 ll / d eta2`` and its ``eta``-derivative for the
        binomial probit and cloglog links (``y`` successes of ``n``).

        probit, with ``l1 = phi / Phi(eta)``, ``l0 = phi / Phi(-eta)``:
        ``w = y l1 (eta + l1) + (n - y) l0 (l0 - eta)`` (both terms >= 0).
        cloglog, with ``m = exp(eta)``, ``r = m / expm1(m)``, ``s = m / -expm1(-m)``:
        ``w = y r (s - 1) + (n - y) m`` and ``dw = y r (s (1 - r) - (s - 1)^2) + (n - y) m``.
        """
        y = self.y
        n = 1.0 if self.trials is None else self.trials
        if self.family.link == "probit":
            l1, l0 = probit_ratios(eta)
            a1 = l1 * (eta + l1)
            a0 = l0 * (l0 - eta)
            da1 = -a1 * (eta + l1) + l1 * (1.0 - a1)
            da0 = a0 * (l0 - eta) + l0 * (a0 - 1.0)
            return y * a1 + (n - y) * a0, y * da1 + (n - y) * da0
        m, r, s = cloglog_ratios(eta)
        w = y * r * (s - 1.0) + (n - y) * m
        dw = y * r * (s * (1.0 - r) - (s - 1.0) ** 2) + (n - y) * m
        return w, dw

    def curvature(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(observed information -d2 ll / d eta2, d Fisher weight / d eta)`` per row.

        Analytic for canonical links; central differences of :meth:`score` otherwise
        (elementwise, so accurate to ~1e-9 relative).
        """
        if self.kind == "logit":
            p = special.expit(eta)
            n = 1.0 if self.trials is None else self.trials
            w = n * p * (1.0 - p)
            return w, w * (1.0 - 2.0 * p)
        if self.kind == "poisson":
            mu = self._pmu(np.exp(np.minimum(eta, 700.0)))
            return mu, mu
        if self.kind == "gaussian":
            wt = 1.0 if self.weights is None else self.weights
            return wt * np.full_like(eta, 1.0 / self.sigma**2), np.zeros_like(eta)
        h = 1e-5
        d1p, wp = self.score(eta + h)
        d1m, wm = self.score(eta - h)
        return -(d1p - d1m) / (2 * h), (wp - wm) / (2 * h)


def saturated_loglik(design: Design) -> float:
    """Log-likelihood of the saturated model (``mu = y``); 0 for Bernoulli data.

    glmer's AGQ deviance sums deviance residuals, so for ``nAGQ > 1`` it reports the
    log-likelihood minus this constant.
    """
    y = np.asarray(design.y, dtype=float)
    wt = 1.0 if design.weights is None else np.asarray(design.weights, dtype=float)
    return float((wt * design.family.spec.saturated_loglik(y, design.trials)).sum())
