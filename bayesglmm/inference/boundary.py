"""Keep the ML optimizers from stalling on the boundary of the covariance parameters.

The deviance of a mixed model is even in every column of the relative Cholesky factor
``Lambda`` (``Lambda D`` with ``D = diag(+-1)`` gives the same ``Lambda Lambda'``, and
the integral over ``u`` is invariant under ``u -> D u``).  So at a Cholesky diagonal
``theta_j = 0`` (a variance of 0, or a correlation of +-1) the derivative along
``theta_j`` is exactly 0, whatever the likelihood does further in: a bounded gradient
method (L-BFGS-B) whose first, long step is projected onto ``theta_j = 0`` sees a
stationary point there and stops, reporting a "singular" fit where an interior point
is better.  (lme4 and MixedModels.jl avoid it with a derivative-free trust-region
method, BOBYQA.)

:func:`optimize_off_boundary` wraps any local optimizer: after it stops with a Cholesky
diagonal below ``1e-4`` (lme4's ``isSingular`` tolerance), the deviance is evaluated at
interior values of that coordinate (a grid from ``1e-3`` to ``1`` in units of the term's
root-mean-square column value, the other parameters held); if one is lower, the
optimizer restarts there.  Because the deviance is even in ``theta_j``, its change from
0 to ``t`` is ``f_jj t^2 / 2 + O(t^4)`` with the other parameters re-optimized at order
``t^4`` only, so holding them is enough to tell a boundary minimum from a saddle.  This
repeats until no grid point is better: a fit then ends on the boundary only when no
nearby interior point is better.  Interior optima (the usual case) cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bayesglmm.design_types import RandomBlock
from bayesglmm.errors import InferenceError

__all__ = ["BOUNDARY_TOL", "GRID", "optimize_off_boundary", "theta_scales"]

BOUNDARY_TOL = 1e-4
"""A Cholesky diagonal below this is on the boundary (lme4's ``isSingular`` tolerance)."""

GRID = (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0)
"""Interior values tried along a boundary coordinate, in units of ``1 / rms(z)``."""


@dataclass
class OffBoundary:
    """What :func:`optimize_off_boundary` did.

    Attributes
    ----------
    restarts : int
        Times the optimizer was restarted off the boundary.
    n_checks : int
        Deviance evaluations spent on the boundary checks.
    """

    restarts: int = 0
    n_checks: int = 0


def theta_scales(blocks: tuple[RandomBlock, ...], n_theta: int) -> np.ndarray:
    """Per ``theta`` element: ``1 / rms`` of its term's column of ``Z`` (1 if that is 0).

    A random slope on a covariate measured in large units has a small ``theta``; the
    boundary grid is set in these units so it probes the same range of effect sizes.
    """
    out = []
    for b in blocks:
        p = b.n_terms
        rms = np.sqrt(np.mean(np.asarray(b.Z, dtype=float) ** 2, axis=0))
        s = np.where(rms > 0, 1.0 / np.where(rms > 0, rms, 1.0), 1.0)
        if b.correlated and p > 1:
            # column-major lower triangle: element (i, j) belongs to column (term) j
            out.extend(s[j] for j in range(p) for _ in range(j, p))
        else:
            out.extend(s)
    arr = np.asarray(out, dtype=float)
    if arr.size != n_theta:  # pragma: no cover - layout and blocks always agree
        raise InferenceError("internal: theta layout does not match the random-effect blocks")
    return arr


def _escape(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    diag: np.ndarray,
    scales: np.ndarray,
    min_gain: float,
    info: OffBoundary,
) -> np.ndarray | None:
    """The best interior grid point along a boundary coordinate, if it beats ``fx``."""
    at = np.flatnonzero(diag & (np.abs(x) < BOUNDARY_TOL))
    best_f, best_x = fx - min_gain, None
    for j in at:
        for t in GRID:
            xt = x.copy()
            xt[j] = t * scales[j]
            info.n_checks += 1
            try:
                ft = float(f(xt))
            except (InferenceError, FloatingPointError, np.linalg.LinAlgError, RuntimeError):
                # a probe the engine cannot evaluate (a mode search that fails, a singular
                # sparse factor) is no evidence of a better point: skip it
                continue
            if np.isfinite(ft) and ft < best_f:
                best_f, best_x = ft, xt
    return best_x


def optimize_off_boundary(
    run: Callable[[np.ndarray], tuple],
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    diag: np.ndarray,
    scales: np.ndarray,
    *,
    min_gain: float = 1e-7,
    max_restarts: int = 10,
) -> tuple[tuple, OffBoundary]:
    """Run a local optimizer, and restart it off the boundary while that improves the fit.

    Parameters
    ----------
    run : callable
        ``x0 -> (x, f(x), ...)``: one local optimization from ``x0`` (monotone: it never
        returns a point worse than its start).
    f : callable
        The objective (deviance) at a flat parameter vector.
    x0 : ndarray
        Start of the first run.
    diag : ndarray of bool
        Which elements are Cholesky diagonals (bounded below by 0).
    scales : ndarray
        Per element, the unit of the boundary grid (:func:`theta_scales`; only the
        ``diag`` elements are used).
    min_gain : float
        A grid point must lower the deviance by more than this to count.
    max_restarts : int
        Restarts at most (each strictly lowers the deviance).

    Returns
    -------
    result : tuple
        What the last accepted ``run`` returned.
    info : OffBoundary
    """
    info = OffBoundary()
    diag = np.asarray(diag, dtype=bool)
    scales = np.broadcast_to(np.asarray(scales, dtype=float), diag.shape)
    res = run(np.asarray(x0, dtype=float))
    for _ in range(max_restarts):
        x, fx = np.asarray(res[0], dtype=float), float(res[1])
        xe = _escape(f, x, fx, diag, scales, min_gain, info)
        if xe is None:
            break
        new = run(xe)
        info.restarts += 1
        if not float(new[1]) < fx:
            break
        res = new
    return res, info
