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
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.boundary import theta_scales
from bayesglmm.engines.ml.estimate import SINGULAR_MSG, MLEstimate
from bayesglmm.engines.ml.laplace import LaplaceObjective, newton_polish
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
    """

    def __init__(self, design: Design) -> None:
        self.design = design
        self.dispersion = design.family.dispersion
        if not self.dispersion:
            raise InferenceError(
                f"the {design.family.name} family has no dispersion parameter; use fit_ml"
            )
        self.obj = LaplaceObjective(design)
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
        return self.obj.deviance(self._set(x))

    def deviance_grad(self, x: np.ndarray, h: float = 1e-5) -> tuple[float, np.ndarray]:
        """Deviance and gradient (analytic in ``[theta, beta]``, central differences in the
        dispersion coordinates at fixed ``[theta, beta]``)."""
        x = np.asarray(x, dtype=float)
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                f, g_tb = self.obj.deviance_grad(self._set(x))
        except InferenceError:
            f = np.nan
        if not np.isfinite(f):
            # outside the family's domain (Gamma with the inverse link: eta <= 0 on some
            # row) or a non-positive curvature at the mode (gaussian with a log link, far
            # from the optimum): a huge deviance makes the line search step back
            # (L-BFGS-B stops on inf or NaN)
            return 1e12, np.zeros(x.size)
        u0 = self.obj.u.copy()
        g_d = np.empty(self.n_disp)
        m = self.n_theta + self.k
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
        self.obj.u = u0
        self._set(x)
        return f, np.concatenate([g_tb, g_d])

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


@standardized_ml
def fit_ml_dispersion(design: Design, *, tol: float = 1e-12, maxiter: int = 2000) -> MLEstimate:
    """ML by the Laplace approximation with the family's dispersion estimated jointly.

    Parameters
    ----------
    design : Design
        Random effects and a family with dispersion parameters (gaussian).
    tol : float
        Relative function tolerance of the L-BFGS-B stage (a Newton polish follows).
    maxiter : int
        Iteration limit of the L-BFGS-B stage.

    Returns
    -------
    MLEstimate
        ``theta`` absolute; ``family_dispersion`` the dispersion estimates (natural scale);
        ``sigma`` the first of them when it is called ``sigma``.
    """
    t0 = time.perf_counter()
    dobj = DispersionObjective(design)
    obj = dobj.obj
    nt, k = dobj.n_theta, dobj.k
    scales = theta_scales(design.blocks, nt)
    theta0 = obj.layout.default() * scales
    beta0 = glm_start(design)
    mu0 = design.family.linkinv(design.X @ beta0 + design.offset)
    disp0 = design.family.spec.dispersion_start(design.y, mu0)
    x0 = np.concatenate(
        [
            theta0,
            beta0,
            [float(d.to_unconstrained(v)) for d, v in zip(dobj.dispersion, disp0, strict=True)],
        ]
    )
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
    theta, beta, disp = dobj.split(x)
    messages: list[str] = []
    free = ~((x <= dobj.lower + 1e-10) & (g > 0))
    grad_norm = float(np.max(np.abs(g[free]))) if free.any() else 0.0
    converged = grad_norm < 2e-3
    if not converged:
        messages.append(f"Model failed to converge with max|grad| = {grad_norm:.3g} (tol = 0.002)")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=2)
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
        nagq=1,
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
        n_iter=int(res.nit),
        singular=bool(singular),
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=-0.5 * f,
        hessian=H,
        n_obs=design.n,
        family_dispersion=tuple(float(v) for v in disp),
    )
