"""Laplace ML with the family's dispersion parameter(s) in the parameter vector.

The general Laplace objective (:class:`~bayesglmm.engines.ml.laplace.LaplaceObjective`) is a
function of ``[theta, beta]``; a family with dispersion parameters (``Family.dispersion``:
the gaussian's ``sigma``, and the next families' negative-binomial ``theta``, Gamma shape,
Beta precision, Student-t ``nu``) adds them on the unconstrained scale (``log``), so the
ML parameter vector is ``[theta, beta, dispersion(s)]`` and the family's log-likelihood
takes the dispersion.  ``theta`` is absolute here (not relative to ``sigma``).

For the gaussian family with the identity link the Laplace approximation is exact, so this
path reproduces the dedicated LMM engine (``tests/test_families.py``); the LMM path stays
the default there (profiled, much faster).  The gradient is the objective's analytic one in
``[theta, beta]`` and central differences in the dispersion coordinates.

Adaptive Gauss-Hermite quadrature (``nagq > 1``, glmer's ``nAGQ``, glmm's and glmmTMB's
dispersion estimated jointly) is the same objective with the AGQ deviance of
:mod:`bayesglmm.engines.ml.agq` in place of the Laplace one, for the designs AGQ covers
(one grouping factor: one scalar term with the analytic gradient, or 2-3 terms on the
tensor-product rule; :meth:`LaplaceObjective.check_nagq`).  The AGQ search starts from the
Laplace optimum, and the log-likelihood it reports is the properly normalized one (not
glmer's ``nAGQ > 1`` deviance-residual convention, which for a family with a dispersion
would depend on it; glmm reports the normalized value too).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.boundary import (
    correlated_probes,
    optimize_off_boundary,
    theta_scales,
)
from bayesglmm.engines.ml.estimate import SINGULAR_MSG, MLEstimate
from bayesglmm.engines.ml.laplace import LaplaceObjective, newton_polish
from bayesglmm.engines.ml.multistart import vector_multistart
from bayesglmm.engines.ml.pirls import glm_start
from bayesglmm.engines.scaling import standardized_ml
from bayesglmm.errors import ConvergenceWarning, InferenceError

__all__ = ["DispersionObjective", "fit_ml_dispersion"]


class DispersionObjective:
    """Laplace deviance over ``[theta, beta, dispersion(s) on the unconstrained scale]``.

    Parameters
    ----------
    design : Design
        A design whose family has dispersion parameters (``design.family.dispersion``).
    nagq : int
        1 = Laplace; ``> 1`` = adaptive Gauss-Hermite quadrature with ``nagq`` nodes per
        random-effect dimension (one grouping factor only, see
        :meth:`LaplaceObjective.check_nagq`, which raises :class:`AGQError` otherwise).
    """

    def __init__(self, design: Design, nagq: int = 1) -> None:
        self.design = design
        self.nagq = int(nagq)
        self.dispersion = design.family.dispersion
        if not self.dispersion:
            raise InferenceError(
                f"the {design.family.name} family has no dispersion parameter; use fit_ml"
            )
        self.obj = LaplaceObjective(design)
        self.obj.check_nagq(self.nagq)
        self.n_theta, self.k, self.n_disp = self.obj.n_theta, self.obj.k, len(self.dispersion)
        self.lower = np.concatenate([self.obj.lower, np.full(self.n_disp, -np.inf)])

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(theta, beta, dispersion on the natural scale)`` from the flat vector."""
        x = np.asarray(x, dtype=float)
        nt, k = self.n_theta, self.k
        disp = np.array(
            [
                float(d.from_unconstrained(v))
                for d, v in zip(self.dispersion, x[nt + k :], strict=True)
            ]
        )
        return x[:nt], x[nt : nt + k], disp

    def _set(self, x: np.ndarray) -> np.ndarray:
        _, _, disp = self.split(x)
        self.obj.fam.set_dispersion(disp)
        return np.asarray(x[: self.n_theta + self.k], dtype=float)

    def deviance(self, x: np.ndarray) -> float:
        """Laplace deviance ``-2 log L`` at ``x``."""
        return self.obj.deviance(self._set(x), self.nagq)

    def deviance_grad(self, x: np.ndarray, h: float = 1e-5) -> tuple[float, np.ndarray]:
        """Deviance and gradient (analytic in ``[theta, beta]``, central differences in the
        dispersion coordinates at fixed ``[theta, beta]``)."""
        x = np.asarray(x, dtype=float)
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                f, g_tb = self.obj.deviance_grad(self._set(x), self.nagq)
                g_d = self._dispersion_grad(x, h) if np.isfinite(f) else None
        except InferenceError:
            f, g_d = np.nan, None
        if g_d is None or not (np.isfinite(f) and np.all(np.isfinite(g_d))):
            # outside the family's domain (Gamma with the inverse link: eta <= 0 on some
            # row) or a non-positive curvature at the mode (gaussian with a log link, far
            # from the optimum): a huge deviance makes the line search step back
            # (L-BFGS-B stops on inf or NaN)
            self._set(x)
            return 1e12, np.zeros(x.size)
        return f, np.concatenate([g_tb, g_d])

    def _dispersion_grad(self, x: np.ndarray, h: float) -> np.ndarray:
        """Central differences of the deviance in the dispersion coordinates, each from the
        mode at ``x`` (restored afterwards, with the dispersion at ``x``)."""
        u0 = self.obj.u.copy()
        g_d = np.empty(self.n_disp)
        m = self.n_theta + self.k
        try:
            for i in range(self.n_disp):
                step = h * max(1.0, abs(x[m + i]))
                xp, xm = x.copy(), x.copy()
                xp[m + i] += step
                xm[m + i] -= step
                self.obj.u = u0.copy()
                fp = self.deviance(xp)
                self.obj.u = u0.copy()
                fm = self.deviance(xm)
                g_d[i] = (fp - fm) / (2.0 * step)
        finally:
            self.obj.u = u0
            self._set(x)
        return g_d

    def hessian(self, x: np.ndarray, g0: np.ndarray | None = None) -> np.ndarray:
        """Forward differences (step ``1e-5``) of :meth:`deviance_grad`, symmetrized."""
        x = np.asarray(x, dtype=float)
        if g0 is None:
            g0 = self.deviance_grad(x)[1]
        u0 = self.obj.u.copy()
        n = x.size
        H = np.empty((n, n))
        for i in range(n):
            step = 1e-5 * max(1.0, abs(x[i]))
            xp = x.copy()
            xp[i] += step
            self.obj.u = u0.copy()
            H[i] = (self.deviance_grad(xp)[1] - g0) / step
        self.obj.u = u0
        self._set(x)
        return 0.5 * (H + H.T)


def _optimize(
    dobj: DispersionObjective, x0: np.ndarray, tol: float, maxiter: int
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, int]:
    """L-BFGS-B from ``x0`` and a Newton polish: ``(x, Hessian, deviance, gradient, iterations)``."""
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in dobj.lower]
    res = optimize.minimize(
        dobj.deviance_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-8, "maxcor": 20},
    )
    x, H, f, g = newton_polish(dobj.deviance_grad, dobj.hessian, res.x, dobj.lower)
    return x, H, f, g, int(res.nit)


_SCREEN_ITER = 15
"""L-BFGS-B iterations of the short search that screens each multi-start point."""


def _local_fit(
    dobj: DispersionObjective, x0: np.ndarray, tol: float, maxiter: int
) -> tuple[tuple, str | None]:
    """:func:`_optimize` with :func:`fit_ml`'s safeguards for the covariance parameters:
    restarts off a variance of 0 or a correlation of +-1 while an interior point is better
    (:func:`~bayesglmm.engines.ml.boundary.optimize_off_boundary`) and, for a correlated
    vector term on few groups or on a boundary face, a screened multi-start
    (:func:`~bayesglmm.engines.ml.boundary.vector_multistart`).  The dispersion coordinates
    ride along after ``[theta, beta]``.  Returns ``((x, deviance, Hessian, gradient,
    iterations), multi-start message or None)``.
    """
    design, layout, nt = dobj.design, dobj.obj.layout, dobj.n_theta
    scales = np.concatenate([theta_scales(design.blocks, nt), np.ones(dobj.k + dobj.n_disp)])
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in dobj.lower]

    def dev(x: np.ndarray) -> float:
        return _safe_deviance(dobj, x)

    def run(start: np.ndarray) -> tuple:
        x, H, f, g, nit = _optimize(dobj, start, tol, maxiter)
        return x, f, H, g, nit

    def screen(start: np.ndarray) -> tuple:
        res = optimize.minimize(
            dobj.deviance_grad,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": _SCREEN_ITER, "ftol": tol, "gtol": 1e-8, "maxcor": 20},
        )
        return res.x, float(res.fun)

    probes = correlated_probes(layout, scales, dev)

    def optimize_from(start: np.ndarray) -> tuple:
        return optimize_off_boundary(run, dev, start, dobj.lower == 0.0, scales, extra=probes)[0]

    first = optimize_from(x0)
    best, ms = vector_multistart(
        screen,
        optimize_from,
        first,
        design.blocks,
        layout.factors,
        layout.from_factors,
        layout.correlated,
        nt,
    )
    return best, ms.message()


def _safe_deviance(dobj: DispersionObjective, x: np.ndarray) -> float:
    """The deviance, ``inf`` where the mode search fails (a probe that cannot be evaluated)."""
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            f = dobj.deviance(x)
    except InferenceError:
        return np.inf
    return f if np.isfinite(f) else np.inf


def _start(dobj: DispersionObjective) -> np.ndarray:
    """lme4's ``theta = 1`` in units of each term's column, the GLM's ``beta`` and the
    family's moment start of the dispersion (on the unconstrained scale)."""
    design = dobj.design
    scales = theta_scales(design.blocks, dobj.n_theta)
    theta0 = dobj.obj.layout.default() * scales
    beta0 = glm_start(design)
    mu0 = design.family.linkinv(design.X @ beta0 + design.offset)
    disp0 = design.family.spec.dispersion_start(design.y, mu0)
    return np.concatenate(
        [
            theta0,
            beta0,
            [float(d.to_unconstrained(v)) for d, v in zip(dobj.dispersion, disp0, strict=True)],
        ]
    )


@standardized_ml
def fit_ml_dispersion(
    design: Design, nagq: int = 1, *, tol: float = 1e-12, maxiter: int = 2000
) -> MLEstimate:
    """ML by the Laplace approximation (``nagq = 1``) or adaptive Gauss-Hermite quadrature
    (``nagq > 1``) with the family's dispersion estimated jointly.

    Parameters
    ----------
    design : Design
        Random effects and a family with dispersion parameters (negative binomial, Gamma,
        Beta, Student-t, gaussian).
    nagq : int
        Quadrature nodes per random-effect dimension; ``> 1`` needs one grouping factor
        (one scalar term, or 2 terms with ``nagq <= 25``, 3 with ``nagq <= 11``).  The AGQ
        search starts from the Laplace optimum.
    tol : float
        Relative function tolerance of the L-BFGS-B stage (a Newton polish follows).
    maxiter : int
        Iteration limit of the L-BFGS-B stage.

    Returns
    -------
    MLEstimate
        ``theta`` absolute; ``family_dispersion`` the dispersion estimates (natural scale);
        ``sigma`` the first of them when it is called ``sigma``; ``loglik`` (equal to
        ``loglik_normalized``) the properly normalized log-likelihood under the rule used.

    Raises
    ------
    AGQError
        ``nagq > 1`` on a design adaptive quadrature does not cover (several grouping
        factors, more than 3 terms, or ``nagq`` above the cap for 2 or 3 terms).
    """
    t0 = time.perf_counter()
    nagq = int(nagq)
    dobj = DispersionObjective(design, nagq)  # checks nagq against the design
    x0 = _start(dobj)
    n_iter = 0
    if nagq > 1:  # the Laplace optimum is the AGQ search's start (as lme4's nAGQ > 1 stage)
        (x0, _, _, _, n_iter), _ = _local_fit(DispersionObjective(design, 1), x0, tol, maxiter)
    (x, f, H, g, nit), note = _local_fit(dobj, x0, tol, maxiter)
    est = _estimate(dobj, x, H, f, g, n_iter + nit, t0)
    return est if note is None else dataclasses.replace(est, messages=(*est.messages, note))


def _estimate(
    dobj: DispersionObjective,
    x: np.ndarray,
    H: np.ndarray,
    f: float,
    g: np.ndarray,
    n_iter: int,
    t0: float,
) -> MLEstimate:
    """The :class:`MLEstimate` at the optimum ``x`` (deviance ``f``, gradient ``g``)."""
    design, obj = dobj.design, dobj.obj
    nt, k = dobj.n_theta, dobj.k
    theta, beta, disp = dobj.split(x)
    messages: list[str] = []
    free = ~((x <= dobj.lower + 1e-10) & (g > 0))
    grad_norm = float(np.max(np.abs(g[free]))) if free.any() else 0.0
    converged = grad_norm < 2e-3
    if not converged:
        messages.append(f"Model failed to converge with max|grad| = {grad_norm:.3g} (tol = 0.002)")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=3)
    vcov = np.full((k, k), np.nan)
    keep = ~(x <= dobj.lower + 1e-10)
    try:
        V = 2.0 * np.linalg.inv(H[np.ix_(keep, keep)])
        sel = np.flatnonzero(keep)
        pos = [int(np.flatnonzero(sel == j)[0]) for j in range(nt, nt + k)]
        vcov = 0.5 * (V[np.ix_(pos, pos)] + V[np.ix_(pos, pos)].T)
    except np.linalg.LinAlgError:
        messages.append("Hessian is not positive definite: standard errors are unavailable")
    singular = obj.layout.is_singular(theta)
    if singular:
        messages.append(SINGULAR_MSG)
    dobj._set(x)
    modes, cond_var = obj.conditional(beta, theta)
    factors = obj.chol_factors(theta)
    names = [d.name for d in dobj.dispersion]
    return MLEstimate(
        method="ml",
        nagq=dobj.nagq,
        beta=beta.copy(),
        vcov_beta=vcov,
        theta=theta.copy(),
        covariances=tuple(F @ F.T for F in factors),
        sigma=float(disp[0]) if names[0] == "sigma" else None,
        loglik=-0.5 * f,
        modes=modes,
        cond_var=cond_var,
        converged=bool(converged),
        grad_norm=grad_norm,
        n_iter=n_iter,
        singular=bool(singular),
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=-0.5 * f,
        hessian=H,
        n_obs=design.n,
        family_dispersion=tuple(float(v) for v in disp),
    )
