"""Maximum likelihood by Laplace approximation and adaptive Gauss-Hermite quadrature
(lme4's ``glmer(nAGQ = 1)`` and ``glmer(nAGQ = Q)``): :func:`fit_ml`, the outer problem over
the integrated likelihood of :class:`~bayesglmm.engines.ml.laplace_objective.LaplaceObjective`.

The outer problem, minimizing the deviance over ``(theta, beta)`` jointly (lme4's second
stage), is solved by L-BFGS-B with the analytic gradient (see
:mod:`bayesglmm.engines.ml.laplace_objective` for which path computes it), then polished by
bounded Newton steps on the finite-difference Hessian (of the gradient;
:mod:`bayesglmm.engines.ml.newton_polish`); a polish that ends with a projected gradient
above 1e-3 (it can leave a boundary face along negative curvature and run out of Newton
rounds) hands back to L-BFGS-B.
Where that ends with a variance of 0 or a correlation of +-1, it restarts off
the boundary while an interior point is better (:mod:`bayesglmm.engines.ml.boundary`: the
deviance is even in each Cholesky diagonal, so a gradient method can stall there).  A
correlated vector term on few groups or on a boundary face gets a screened multi-start from
correlations +-0.9 (:func:`~bayesglmm.engines.ml.multistart.vector_multistart`), reported in
the fit's messages.
Measured on the issue-14 bench shapes at 1e4 rows and grouseticks
(``benchmarks/ml_structures.py --optimizers --quick``, L-BFGS-B stage): the analytic
gradient needs 9-16x fewer deviance evaluations than central differences (1-15x less
time: a difference evaluation is only a warm-started mode search) and 10-40x fewer than a
derivative-free search (SciPy's bounded Powell; 4-18x less time).  Standard errors come from that
Hessian of the deviance over ``(theta, beta)``, as lme4 computes them
(``vcov = 2 H^-1``, fixed-effect block).

lme4 quirk reproduced: for ``nAGQ > 1`` glmer's deviance sums deviance residuals instead of
``-2 log f(y | mu)`` (``glmerAGQ`` in lme4's ``external.cpp``), so its reported
log-likelihood is the properly normalized one minus the saturated model's log-likelihood
(``sum_i log f(y_i | mu_i = y_i)``).  That constant is 0 for Bernoulli data (toenail: both
agree), -530.64 for the epilepsy counts (glmer: -480.04 at nAGQ = 20 against -1010.68 at
Laplace).  :attr:`MLEstimate.loglik` follows glmer (so AIC/BIC/LRTs match glmer's output);
:attr:`MLEstimate.loglik_normalized` is always the properly normalized value, which is the
one to compare across ``nagq`` values or with other software.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.blas_threads import one_blas_thread
from bayesglmm.engines.ml.boundary import (
    correlated_probes,
    optimize_off_boundary,
    theta_scales,
)
from bayesglmm.engines.ml.estimate import SINGULAR_MSG, MLEstimate
from bayesglmm.engines.ml.fit_separation import separation_check
from bayesglmm.engines.ml.laplace_objective import AGQError, LaplaceEval, LaplaceObjective
from bayesglmm.engines.ml.multistart import vector_multistart
from bayesglmm.engines.ml.newton_polish import newton_polish, projected_grad
from bayesglmm.engines.ml.pirls import ThetaLayout, glm_start, saturated_loglik, weighted_lmm_fit
from bayesglmm.engines.scaling import standardized_ml
from bayesglmm.errors import ConvergenceWarning, InferenceError

# AGQError, LaplaceEval, LaplaceObjective and newton_polish are imported from here by callers
__all__ = [
    "AGQError",
    "LaplaceEval",
    "LaplaceObjective",
    "fit_ml",
    "newton_polish",
    "saturated_loglik",
]

_MAX_CYCLES = 4
"""L-BFGS-B + Newton polish cycles at most per local optimization (:func:`fit_ml`)."""

_CYCLE_GTOL = 1e-3
"""A polished point with a larger projected gradient goes back to L-BFGS-B (half lme4's
``check.conv.grad`` tolerance of 2e-3, below which a fit counts as converged)."""


_SCREEN_ITER = 15
"""L-BFGS-B iterations of the short search that screens each multi-start point."""


@standardized_ml(finish=separation_check)
def fit_ml(
    design: Design,
    nagq: int = 1,
    *,
    start: dict | None = None,
    tol: float = 1e-10,
    maxiter: int = 500,
) -> MLEstimate:
    """Maximum-likelihood fit of a GLMM by Laplace (``nagq=1``) or AGQ (``nagq > 1``).

    Gaussian designs are fitted exactly (profiled ML of the linear mixed model).  The fit
    runs on standardized fixed-effect columns and is reported on the user's scale
    (:func:`bayesglmm.engines.scaling.standardized_ml`).

    Parameters
    ----------
    design : Design
    nagq : int
        Gauss-Hermite nodes per group and dimension; ``> 1`` only for one grouping factor:
        one scalar term, or 2 terms (``nagq <= 25``) or 3 (``nagq <= 11``), with
        ``nagq^q`` nodes per level and the gradient by central differences.
    start : dict, optional
        ``{"beta": ..., "theta": ...}`` start values (default: GLM fit and lme4's
        ``theta = 1``, in units of ``1 / rms`` of each term's column of ``Z``).
    tol : float
        Relative function tolerance of the L-BFGS-B stage.
    maxiter : int
        Iteration limit of the L-BFGS-B stage.

    Returns
    -------
    MLEstimate

    Raises
    ------
    AGQError
        ``nagq > 1`` on a model with several blocks or more than 3 terms, or ``nagq``
        beyond the cap for 2 or 3 terms.
    InferenceError
        The deviance became non-finite.
    """
    if not design.blocks:  # a GLM: exact IRLS (bayesglmm.engines.glm)
        from bayesglmm.engines.glm import fit_glm_ml

        return fit_glm_ml(design, nagq=nagq, start=start)
    t0 = time.perf_counter()
    nagq = int(nagq)
    if design.family.is_linear:  # the LMM: profiled ML (fit_ml_dispersion is the general path)
        if nagq != 1:
            raise AGQError("nagq > 1 is not used for the gaussian family (Laplace is exact)")
        return _fit_gaussian(design, start=start, t0=t0)
    obj = LaplaceObjective(design)
    obj.check_nagq(nagq)
    start = start or {}
    scales = np.concatenate([theta_scales(design.blocks, obj.n_theta), np.ones(obj.k)])
    # default start: lme4's theta = 1 (identity), but in units of 1 / rms of each term's
    # column, so a random slope on a covariate in large or small units starts at an effect
    # size of 1 as an intercept does (from raw theta = 1 such a slope starts at a tiny or
    # huge SD, and L-BFGS-B can end in a worse local optimum: a probit slope on a column of
    # scale 0.01 ended 2.9 log-likelihood units below glmm's, tests/test_ml_structures_property)
    default = obj.layout.default() * scales[: obj.n_theta]
    theta0 = np.asarray(start.get("theta", default), dtype=float)
    if "beta" in start:
        beta0 = np.asarray(start["beta"], dtype=float)
    else:
        with one_blas_thread():  # tall-skinny least squares: thread hand-offs, no gain
            beta0 = glm_start(design)
    x0 = np.concatenate([theta0, beta0])
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in obj.lower]

    last: list = [None, 0.0, None]  # the last point evaluated, its deviance and gradient

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        # the polish starts where L-BFGS-B stopped, which it has just evaluated
        if last[0] is not None and np.array_equal(x, last[0]):
            return last[1], last[2].copy()
        # a trial point where the mode search fails (a long step with a log link) is
        # infinitely bad: the line searches back off it; the start itself still raises
        try:
            f, g = obj.deviance_grad(x, nagq)
        except InferenceError:
            if np.array_equal(x, x0):
                raise
            return np.inf, np.zeros_like(x)
        last[:] = [np.array(x, dtype=float, copy=True), f, np.array(g, copy=True)]
        return f, g

    def run(start_x: np.ndarray) -> tuple:
        x, nit, f_prev = start_x, 0, np.inf
        for _ in range(_MAX_CYCLES):
            res = optimize.minimize(
                fg,
                x,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-6, "maxcor": 20},
            )
            nit += int(res.nit)
            x, H, f, g = newton_polish(
                fg, lambda p, g0: obj.hessian(p, nagq, g0=g0), res.x, obj.lower
            )
            # the polish can leave a boundary face L-BFGS-B stopped on (a Levenberg step
            # along negative curvature: the deviance is even in a Cholesky diagonal, so
            # its derivative there is 0) and then run out of Newton rounds far from the
            # optimum: hand back to L-BFGS-B while that still improves the fit
            pg = projected_grad(x, g, obj.lower)
            if not pg.size or np.max(np.abs(pg)) < _CYCLE_GTOL or not f < f_prev - 1e-9:
                break
            f_prev = f
        return x, f, H, g, nit

    def dev(x: np.ndarray) -> float:
        return obj.deviance(x, nagq)

    # L-BFGS-B can stall on a zero variance (the deviance is even in theta, so its
    # derivative there is 0): restart off the boundary while an interior point is better
    # one BLAS thread: L-BFGS-B's tiny BLAS calls are slowed ~50x by OpenBLAS thread
    # hand-offs, and the engine's own work is vector arithmetic and bincounts anyway
    def screen(start_x: np.ndarray) -> tuple:
        res = optimize.minimize(
            fg,
            start_x,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": _SCREEN_ITER, "ftol": tol, "gtol": 1e-6, "maxcor": 20},
        )
        return res.x, float(res.fun)

    probes = correlated_probes(obj.layout, scales, dev)

    def optimize_from(start_x: np.ndarray) -> tuple:
        return optimize_off_boundary(run, dev, start_x, obj.lower == 0.0, scales, extra=probes)[0]

    with one_blas_thread():
        first = optimize_from(x0)
        # a vector term on few groups or on a boundary face: its covariance can sit in a
        # local optimum; restart from correlations near +-1 and keep the best
        lay = obj.layout
        (x, f, H, g, nit), ms = vector_multistart(
            screen,
            optimize_from,
            first,
            design.blocks,
            lay.factors,
            lay.from_factors,
            lay.correlated,
            obj.n_theta,
        )
        # inside too: the conditional covariances at the end factor and invert small dense
        # blocks, which OpenBLAS thread hand-offs slowed ~25x (grouseticks: 0.45 s of 0.73)
        est = _finish(obj, design, x, H, f, g, nagq, nit, t0)
    msg = ms.message()
    if msg is None:
        return est
    return dataclasses.replace(est, messages=(*est.messages, msg))


def _finish(
    obj: LaplaceObjective,
    design: Design,
    x: np.ndarray,
    H: np.ndarray,
    f: float,
    g: np.ndarray,
    nagq: int,
    n_iter: int,
    t0: float,
) -> MLEstimate:
    theta, beta = obj.split(x)
    nt, k = obj.n_theta, obj.k
    messages: list[str] = []
    pg = projected_grad(x, g, obj.lower)
    grad_norm = float(np.max(np.abs(pg))) if pg.size else 0.0
    converged = grad_norm < 2e-3  # lme4's check.conv.grad tolerance
    if not converged:
        msg = f"Model failed to converge with max|grad| = {grad_norm:.3g} (tol = 0.002)"
        messages.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    # standard errors: fixed-effect block of 2 H^-1 (free parameters only)
    free = ~(x <= obj.lower + 1e-10)
    free[nt:] = True
    vcov = np.full((k, k), np.nan)
    try:
        Hf = H[np.ix_(free, free)]
        V = 2.0 * np.linalg.inv(Hf)
        vb = V[-k:, -k:]
        if np.all(np.isfinite(vb)) and np.all(np.diag(vb) > 0):
            vcov = 0.5 * (vb + vb.T)
        else:
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        messages.append("Hessian is not positive definite: standard errors are unavailable")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=3)
    factors = obj.chol_factors(theta)
    singular = obj.layout.is_singular(theta)
    if singular:
        messages.append(SINGULAR_MSG)
        warnings.warn(SINGULAR_MSG, ConvergenceWarning, stacklevel=3)
    modes, cond_var = obj.conditional(beta, theta)
    loglik_norm = -0.5 * f
    loglik = loglik_norm
    if nagq > 1:
        sat = saturated_loglik(design)
        loglik = loglik_norm - sat
        if sat != 0.0:
            messages.append(
                f"loglik follows glmer's nAGQ > 1 convention (relative to the saturated model, "
                f"constant {sat:.4f}); loglik_normalized = {loglik_norm:.4f} is the proper value"
            )
    return MLEstimate(
        method="ml",
        nagq=nagq,
        beta=beta.copy(),
        vcov_beta=vcov,
        theta=theta.copy(),
        covariances=tuple(F @ F.T for F in factors),
        sigma=None,
        loglik=float(loglik),
        modes=modes,
        cond_var=cond_var,
        converged=bool(converged),
        grad_norm=grad_norm,
        n_iter=n_iter,
        singular=bool(singular),
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=float(loglik_norm),
        hessian=H,
        n_obs=design.n,
    )


def _fit_gaussian(design: Design, *, start: dict | None, t0: float) -> MLEstimate:
    """Exact ML for the linear mixed model (profiled over ``beta`` and ``sigma``)."""
    w = np.ones(design.n) if design.weights is None else design.weights
    fit = weighted_lmm_fit(design, w, sigma=None, theta0=(start or {}).get("theta"))
    messages: list[str] = []
    layout = ThetaLayout.from_blocks(design.blocks)
    singular = layout.is_singular(fit.theta)
    if singular:
        messages.append(SINGULAR_MSG)
        warnings.warn(SINGULAR_MSG, ConvergenceWarning, stacklevel=3)
    return MLEstimate(
        method="ml",
        nagq=1,
        beta=fit.beta,
        vcov_beta=fit.vcov_beta,
        theta=fit.theta,
        covariances=fit.covariances,
        sigma=fit.sigma,
        loglik=fit.loglik,
        modes=fit.modes,
        cond_var=fit.cond_var,
        converged=fit.converged,
        grad_norm=fit.grad_norm,
        n_iter=fit.n_iter,
        singular=singular,
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=fit.loglik,
        n_obs=design.n,
    )
