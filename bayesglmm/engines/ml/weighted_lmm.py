"""Profiled ML of a weighted linear mixed model (:class:`WeightedLMM`,
:func:`weighted_lmm_fit`): the gaussian family's exact ML and the LMM inside PQL, on the
same structures as the GLMM engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.scalar_structure import make_structure
from bayesglmm.engines.ml.theta_layout import ThetaLayout

__all__ = ["LMMFit", "WeightedLMM", "weighted_lmm_fit"]


@dataclass
class LMMFit:
    """Result of :func:`weighted_lmm_fit` (profiled ML of a weighted linear mixed model)."""

    beta: np.ndarray
    vcov_beta: np.ndarray
    theta: np.ndarray
    covariances: tuple
    sigma: float
    loglik: float
    modes: tuple
    cond_var: tuple
    eta: np.ndarray
    converged: bool
    grad_norm: float
    n_iter: int


class WeightedLMM:
    """Profiled ML deviance of ``y = offset + X beta + Z b + e``, ``e ~ N(0, sigma^2 / w)``.

    ``b = Lambda(theta) u`` with ``u ~ N(0, sigma^2 I)`` (relative factor, as lme4), so for
    given ``theta`` the penalized least squares give ``beta`` and ``u`` in closed form and
    ``sigma^2 = r^2 / n``; with ``sigma`` fixed, ``theta`` is the absolute factor divided by
    ``sigma``.  Uses the same structures (vector / block stack / blocked Cholesky) as the GLMM
    engine.
    """

    def __init__(
        self,
        design: Design,
        y: np.ndarray,
        w: np.ndarray,
        sigma: float | None = None,
    ) -> None:
        self.design = design
        self.st = make_structure(design)
        self.layout = ThetaLayout.from_blocks(design.blocks)
        self.X = np.asarray(design.X, dtype=float)
        self.yo = np.asarray(y, dtype=float) - np.asarray(design.offset, dtype=float)
        self.w = np.asarray(w, dtype=float)
        self.sigma = sigma
        # a zero prior weight removes the row from the likelihood (lme4's ldW skips it too)
        pos = self.w > 0
        self.n = int(pos.sum())
        self.sum_logw = float(np.log(self.w[pos]).sum())
        Xw = self.X * self.w[:, None]
        self.XtWX = self.X.T @ Xw
        self.XtWy = Xw.T @ self.yo
        self.Wcols = np.column_stack([self.w * self.yo, Xw])

    def solve(self, theta: np.ndarray) -> dict:
        """PLS solution and profiled deviance at ``theta``."""
        st = self.st
        st.set_factors(self.layout.factors(np.asarray(theta, dtype=float)))
        F = st.factor(self.w)
        B = st.atv(self.Wcols)
        C = F.solve(B)
        Bx = B[:, 1:]
        S = self.XtWX - Bx.T @ C[:, 1:]
        rhs = self.XtWy - Bx.T @ C[:, 0]
        beta = np.linalg.solve(S, rhs)
        u = C[:, 0] - C[:, 1:] @ beta
        fitted_re = st.au(u)
        r = self.yo - self.X @ beta - fitted_re
        r2 = float(self.w @ (r * r) + u @ u)
        ld = F.logdet()
        n = self.n
        if self.sigma is None:
            s2 = r2 / n
            dev = ld + n * (1.0 + np.log(2 * np.pi * s2)) - self.sum_logw
        else:
            s2 = self.sigma**2
            dev = ld + r2 / s2 + n * np.log(2 * np.pi * s2) - self.sum_logw
        return {
            "dev": float(dev),
            "beta": beta,
            "u": u,
            "S": S,
            "s2": s2,
            "F": F,
            "eta_re": fitted_re,
        }

    def deviance(self, theta: np.ndarray) -> float:
        """Profiled ``-2 log L`` at ``theta``."""
        return self.solve(theta)["dev"]


def _fd_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        s = h * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = s
        g[i] = (f(x + e) - f(x - e)) / (2 * s)
    return g


def weighted_lmm_fit(
    design: Design,
    w: np.ndarray,
    *,
    y: np.ndarray | None = None,
    sigma: float | None = None,
    theta0: np.ndarray | None = None,
) -> LMMFit:
    """ML fit of a (weighted) linear mixed model with the design's random effects.

    Parameters
    ----------
    design : Design
        Supplies ``X``, ``offset`` and the random-effect blocks (and ``y`` by default).
    w : ndarray (n,)
        Prior weights (residual variance ``sigma^2 / w``).
    y : ndarray, optional
        Response to use instead of ``design.y`` (the PQL working response).
    sigma : float, optional
        Fixed residual SD; ``None`` estimates it (ML).
    theta0 : ndarray, optional
        Start for the relative Cholesky parameters (default identity).
    """
    from scipy import optimize

    from bayesglmm.engines.ml.boundary import (
        correlated_probes,
        optimize_off_boundary,
        theta_scales,
    )

    model = WeightedLMM(design, design.y if y is None else y, w, sigma)
    layout = model.layout
    lower = layout.lower_bounds()
    x0 = layout.default() if theta0 is None else np.asarray(theta0, dtype=float)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]

    def fg(t: np.ndarray) -> tuple[float, np.ndarray]:
        t = np.maximum(t, lower)
        return model.deviance(t), _fd_grad(model.deviance, t)

    def run(t0: np.ndarray) -> tuple:
        r = optimize.minimize(
            fg,
            t0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-14, "gtol": 1e-8, "maxiter": 500},
        )
        return r.x, r.fun, r

    # restart off a zero variance while an interior point is better (L-BFGS-B stalls
    # there: the deviance is even in theta); see bayesglmm.engines.ml.boundary
    scales = theta_scales(design.blocks, layout.size)
    (_, _, res), _ = optimize_off_boundary(
        run,
        model.deviance,
        x0,
        lower == 0.0,
        scales,
        extra=correlated_probes(layout, scales, model.deviance),
    )
    theta = np.maximum(res.x, lower)
    g = _fd_grad(model.deviance, theta)
    pg = np.where((theta <= lower + 1e-12) & (g > 0), 0.0, g)
    sol = model.solve(theta)
    s2 = sol["s2"]
    factors = layout.factors(theta)
    inv = sol["F"].inv_blocks()
    cond_var = tuple(
        s2 * np.einsum("ij,gjk,lk->gil", Fb, Minv, Fb)
        for Fb, Minv in zip(factors, inv, strict=True)
    )
    modes, pos = [], 0
    for b, Fb in zip(design.blocks, factors, strict=True):
        size = b.n_levels * b.n_terms
        modes.append(sol["u"][pos : pos + size].reshape(b.n_levels, b.n_terms) @ Fb.T)
        pos += size
    vcov = s2 * np.linalg.inv(sol["S"])
    eta = design.offset + model.X @ sol["beta"] + sol["eta_re"]
    return LMMFit(
        beta=sol["beta"],
        vcov_beta=0.5 * (vcov + vcov.T),
        theta=theta,
        covariances=tuple(s2 * (Fb @ Fb.T) for Fb in factors),
        sigma=float(np.sqrt(s2)),
        loglik=-0.5 * sol["dev"],
        modes=tuple(modes),
        cond_var=cond_var,
        eta=eta,
        converged=bool(np.max(np.abs(pg), initial=0.0) < 1e-3),
        grad_norm=float(np.max(np.abs(pg), initial=0.0)),
        n_iter=int(res.nit),
    )
