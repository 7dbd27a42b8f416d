"""The integrated-Laplace log posterior of the hyperparameters and fixed effects.

``-log p(psi, beta | y)`` up to a constant, with the random effects integrated out by the
Laplace/AGQ objective of the ML engine (:class:`~bayesglmm.engines.ml.laplace.LaplaceObjective`),
the priors on the fixed effects and on the covariance parameters ``psi``
(:class:`~bayesglmm.engines.bayes.cov_param.CovParam`), its gradient and Hessian, and
``log p(psi | y)`` with the fixed effects integrated out by Laplace (the grid's density).
Used by :func:`~bayesglmm.engines.bayes.integrated_laplace.fit_bayes_laplace`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.cov_param import CovParam, log_density
from bayesglmm.engines.ml.laplace import LaplaceObjective
from bayesglmm.errors import InferenceError
from bayesglmm.priors import PriorSet

__all__ = ["IntegratedPosterior"]


class IntegratedPosterior:
    """``-log p(psi, beta | y)`` (up to a constant) of the flat vector ``phi = [psi, beta]``.

    ``psi`` holds the hyperparameters: the covariance parameters (:attr:`cp`, ``n_cov`` of
    them) followed by the family's dispersion parameters on their unconstrained scale
    (``Family.dispersion``: the negative binomial's and Gamma's ``log shape``, Beta's
    ``log phi``, the Student-t's ``log sigma, log nu``, the gaussian's ``log sigma``;
    ``n_disp`` of them, none for bernoulli, binomial and Poisson), each with its prior from
    ``PriorSet.dispersions`` and the log-Jacobian of the transform.
    """

    def __init__(self, design: Design, priors: PriorSet, obj: LaplaceObjective, nagq: int):
        self.design, self.priors, self.obj, self.nagq = design, priors, obj, nagq
        self.cp = CovParam(design, priors)
        self.dispersion = design.family.dispersion
        self.n_cov, self.n_disp = self.cp.size, len(self.dispersion)
        self.m, self.k = self.n_cov + self.n_disp, obj.k
        for d in self.dispersion:
            if d.transform != "log":  # the log-Jacobian below is the log transform's
                raise InferenceError(f"no Jacobian for the `{d.transform}` transform of {d.name}")
        self.disp_lp = [log_density(priors.dispersion(d.name)) for d in self.dispersion]
        self.slopes = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
        self.means = design.row_mean(design.X[:, self.slopes]) if self.slopes else np.zeros(0)
        names = design.x_names
        self.i0 = names.index("(Intercept)") if "(Intercept)" in names else None
        self.fixed_lp = [log_density(p) for p in priors.fixed.values()]
        self.icpt_lp = log_density(priors.intercept) if priors.intercept is not None else None

    # ------------------------------------------------------------------ hyperparameters
    def theta(self, psi: np.ndarray) -> np.ndarray:
        """lme4's ``theta`` of the hyperparameters ``psi`` (the covariance part)."""
        return self.cp.to_theta(np.asarray(psi)[: self.n_cov])

    def dispersion_values(self, psi: np.ndarray) -> np.ndarray:
        """The dispersion parameters on their natural scale, ``(..., n_disp)``."""
        u = np.asarray(psi, dtype=float)[..., self.n_cov : self.m]
        return np.stack(
            [np.asarray(d.from_unconstrained(u[..., i])) for i, d in enumerate(self.dispersion)],
            axis=-1,
        )

    def set_hyper(self, psi: np.ndarray) -> np.ndarray:
        """Give the family kernel the dispersion of ``psi``; returns ``theta``."""
        if self.n_disp:
            self.obj.fam.set_dispersion(self.dispersion_values(psi))
        return self.theta(psi)

    def hyper_log_prior(self, psi: np.ndarray) -> float:
        """Log prior density of the hyperparameters on their unconstrained scale."""
        lp = self.cp.log_prior(psi[: self.n_cov])
        for d, logpdf, u in zip(self.dispersion, self.disp_lp, psi[self.n_cov :], strict=True):
            # p(log x) = p(x) x: the log transform's Jacobian
            lp += float(logpdf(d.from_unconstrained(u))) + float(u)
        return lp

    # ------------------------------------------------------------------ prior
    def log_prior(self, phi: np.ndarray) -> float:
        psi, beta = phi[: self.m], phi[self.m :]
        lp = self.hyper_log_prior(psi)
        for i, logpdf in zip(self.slopes, self.fixed_lp, strict=True):
            lp += float(logpdf(beta[i]))
        if self.icpt_lp is not None and self.i0 is not None:
            # the prior is on the intercept at centred predictors (a linear map: unit Jacobian)
            lp += float(self.icpt_lp(beta[self.i0] + self.means @ beta[self.slopes]))
        return lp

    def _prior_grad(self, phi: np.ndarray, h: float = 1e-6) -> np.ndarray:
        """Gradient of :meth:`log_prior` by central differences, term by term.

        The prior is separable: the hyperparameter part in ``psi``, one density per slope
        and the intercept's density at centred predictors (a linear map of ``beta``), so
        each term is differenced in its own argument, as a two-point vectorised call.
        """
        m = self.m
        psi, beta = phi[:m], phi[m:]
        g = np.zeros(phi.size)
        for i in range(m):
            e = np.zeros(m)
            e[i] = h * max(1.0, abs(psi[i]))
            g[i] = (self.hyper_log_prior(psi + e) - self.hyper_log_prior(psi - e)) / (2 * e[i])

        def slope(logpdf: Any, x: float) -> float:
            step = h * max(1.0, abs(x))
            v = np.asarray(logpdf(np.array([x + step, x - step])), dtype=float)
            return float(v[0] - v[1]) / (2 * step)

        for i, logpdf in zip(self.slopes, self.fixed_lp, strict=True):
            g[m + i] = slope(logpdf, float(beta[i]))
        if self.icpt_lp is not None and self.i0 is not None:
            dc = slope(self.icpt_lp, float(beta[self.i0] + self.means @ beta[self.slopes]))
            g[m + self.i0] += dc
            g[m + np.asarray(self.slopes, dtype=int)] += dc * self.means
        return g

    # ------------------------------------------------------------------ posterior
    def value(self, phi: np.ndarray, u0: np.ndarray | None = None) -> float:
        """``-log p``; ``u0`` restarts the inner mode search from a fixed point (for FD)."""
        if u0 is not None:
            self.obj.u = u0.copy()
        psi, beta = phi[: self.m], phi[self.m :]
        try:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                dev = self.obj.evaluate(beta, self.set_hyper(psi), self.nagq).deviance
        except (InferenceError, np.linalg.LinAlgError, FloatingPointError):
            return np.inf
        val = 0.5 * dev - self.log_prior(phi)
        return float(val) if np.isfinite(val) else np.inf

    def value_grad(self, phi: np.ndarray, hyper: bool = True) -> tuple[float, np.ndarray]:
        """``-log p`` and its gradient (analytic in the covariance parameters and ``beta``
        for one scalar term, else central FD; central FD in the dispersion coordinates).
        ``hyper=False`` leaves the dispersion coordinates of the gradient at 0 (callers
        that need the ``beta`` part only)."""
        phi = np.asarray(phi, dtype=float)
        if self.obj.scalar:
            nc, m = self.n_cov, self.m
            psi, beta = phi[:m], phi[m:]
            try:
                with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                    theta = self.set_hyper(psi)
                    ev = self.obj.evaluate(beta, theta, self.nagq, gradient=True)
            except (InferenceError, np.linalg.LinAlgError, FloatingPointError):
                return np.inf, np.zeros(phi.size)
            assert ev.gradient is not None  # asked for
            f = 0.5 * ev.deviance - self.log_prior(phi)
            if not np.isfinite(f):
                return np.inf, np.zeros(phi.size)
            g = np.zeros(phi.size)
            g[:nc] = 0.5 * ev.gradient[:nc] * theta  # d theta / d log sd
            g[m:] = 0.5 * ev.gradient[nc:]
            if hyper and self.n_disp:
                u0 = self.obj.u.copy()
                for i in range(nc, m):
                    e = np.zeros(phi.size)
                    e[i] = 1e-5 * max(1.0, abs(phi[i]))
                    lik = [
                        self.value(phi + s * e, u0) + self.log_prior(phi + s * e) for s in (1, -1)
                    ]
                    g[i] = (lik[0] - lik[1]) / (2 * e[i])
                self.obj.u = u0
                self.set_hyper(psi)
            return f, g - self._prior_grad(phi)
        u0 = self.obj.u.copy()
        f0 = self.value(phi, u0)
        g = np.zeros(phi.size)
        for i in range(phi.size):
            if not hyper and self.n_cov <= i < self.m:
                continue
            e = np.zeros(phi.size)
            e[i] = 1e-5 * max(1.0, abs(phi[i]))
            g[i] = (self.value(phi + e, u0) - self.value(phi - e, u0)) / (2 * e[i])
        self.obj.u = u0
        self.set_hyper(phi[: self.m])
        return f0, g

    def hessian(
        self, phi: np.ndarray, sub: slice | None = None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and Hessian over the coordinates ``sub`` (default: all)."""
        phi = np.asarray(phi, dtype=float)
        idx = np.arange(phi.size)[sub if sub is not None else slice(None)]
        n = idx.size
        if self.obj.scalar:
            # the dispersion part of the gradient only where the Hessian needs it
            hyper = bool(np.any((idx >= self.n_cov) & (idx < self.m)))
            u0 = self.obj.u.copy()
            f0, g0 = self.value_grad(phi, hyper)
            H = np.empty((n, n))
            for a, i in enumerate(idx):
                e = np.zeros(phi.size)
                e[i] = 1e-5 * max(1.0, abs(phi[i]))
                self.obj.u = u0.copy()
                H[a] = (self.value_grad(phi + e, hyper)[1][idx] - g0[idx]) / e[i]
            self.obj.u = u0
            self.set_hyper(phi[: self.m])
            return f0, g0[idx], 0.5 * (H + H.T)
        # second differences of the value, as lme4's deriv12 (also gives the gradient)
        u0 = self.obj.u.copy()
        steps = 1e-4 * np.maximum(1.0, np.abs(phi[idx]))
        f0 = self.value(phi, u0)
        E = np.zeros((n, phi.size))
        E[np.arange(n), idx] = steps
        fp = np.array([self.value(phi + E[a], u0) for a in range(n)])
        fm = np.array([self.value(phi - E[a], u0) for a in range(n)])
        H = np.diag((fp - 2 * f0 + fm) / steps**2)
        for a in range(n):
            for b in range(a + 1, n):
                fpp = self.value(phi + E[a] + E[b], u0)
                fmm = self.value(phi - E[a] - E[b], u0)
                H[a, b] = H[b, a] = (fpp - fp[a] - fp[b] + 2 * f0 - fm[a] - fm[b] + fmm) / (
                    2 * steps[a] * steps[b]
                )
        self.obj.u = u0
        self.set_hyper(phi[: self.m])
        return f0, (fp - fm) / (2 * steps), H

    def beta_value_grad(self, psi: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
        """``-log p`` and its gradient in ``beta`` at fixed ``psi``."""
        phi = np.concatenate([psi, beta])
        if self.obj.scalar:
            f, g = self.value_grad(phi, hyper=False)
            return f, g[self.m :]
        u0 = self.obj.u.copy()
        f0 = self.value(phi, u0)
        g = np.empty(self.k)
        for j in range(self.k):
            e = np.zeros(phi.size)
            e[self.m + j] = 1e-5 * max(1.0, abs(beta[j]))
            g[j] = (self.value(phi + e, u0) - self.value(phi - e, u0)) / (2 * e[self.m + j])
        self.obj.u = u0
        self.set_hyper(psi)
        return f0, g

    # ------------------------------------------------------------------ p(psi | y)
    def log_marginal(
        self, psi: np.ndarray, beta0: np.ndarray, max_newton: int = 6
    ) -> tuple[float, np.ndarray, np.ndarray] | None:
        """``log p(psi | y)`` (fixed effects integrated out by Laplace), the conditional
        mode ``beta*`` and the Cholesky factor of ``H_beta``; None where not defined."""
        sub = slice(self.m, None)
        f, g, H = self.hessian(np.concatenate([psi, beta0]), sub)
        if not np.isfinite(f):
            return None
        try:
            C = linalg.cho_factor(H, lower=True)
        except linalg.LinAlgError:
            return None
        beta = beta0.copy()
        for _ in range(max_newton):
            step = -linalg.cho_solve(C, g)
            dec = -g @ step
            if dec < 0.02:
                # the quadratic model is accurate this close (error ~ dec^1.5 * skew)
                beta = beta + step
                break
            t = 1.0
            for _ in range(12):
                fn, gn = self.beta_value_grad(psi, beta + t * step)
                if fn <= f + 1e-10:
                    break
                t *= 0.5
            else:
                break
            beta, f, g = beta + t * step, fn, gn
        f_min = f - 0.5 * g @ linalg.cho_solve(C, g)  # quadratic model of the remainder
        Lc = np.tril(C[0])
        return -f_min - float(np.log(np.diag(Lc)).sum()), beta, Lc
