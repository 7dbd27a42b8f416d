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

A term with a variance of 0 in a correlated block needs a second kind of probe
(:func:`correlated_probes`).  With ``Lambda = [[0, 0], [l10, l11]]`` (intercept variance 0)
the deviance depends on ``l10^2 + l11^2`` only: it is flat along that circle, and the
derivative along ``l00`` is of second order in ``l10``, so an optimizer that reached
``l10 = 0`` cannot find the better points with ``l00 > 0`` and a correlation near
+-1 (a probit ``(1 + x | g)`` ended 0.11 log-likelihood units below glmm there,
tests/test_ml_structures_property.py).  The probes give the zero-variance term ``j`` a
small SD ``t``, perfectly correlated (both signs) with each other term ``k``:
``b_j = +-t b_k / sd_k``, i.e. ``Lambda' = chol((I +- t/sd_k e_j e_k') Lambda ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesglmm.design.types import RandomBlock
from bayesglmm.errors import InferenceError

__all__ = [
    "BOUNDARY_TOL",
    "GRID",
    "correlated_probes",
    "lower_factor",
    "optimize_off_boundary",
    "theta_scales",
]

BOUNDARY_TOL = 1e-4
"""A Cholesky diagonal below this is on the boundary (lme4's ``isSingular`` tolerance)."""

PROBE_ERRORS = (InferenceError, FloatingPointError, np.linalg.LinAlgError, RuntimeError)

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
    out: list[float] = []
    for b in blocks:
        p = b.n_terms
        rms = np.sqrt(np.mean(np.asarray(b.Z, dtype=float) ** 2, axis=0))
        s = np.where(rms > 0, 1.0 / np.where(rms > 0, rms, 1.0), 1.0)
        if b.correlated and p > 1:
            # column-major lower triangle: element (i, j) belongs to column (term) j
            out.extend(float(s[j]) for j in range(p) for _ in range(j, p))
        else:
            out.extend(float(v) for v in s)
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
    extra: Callable[[np.ndarray], Iterable[np.ndarray]] | None = None,
) -> np.ndarray | None:
    """The best interior grid point along a boundary coordinate (or among the ``extra``
    probes), if it beats ``fx``."""
    at = np.flatnonzero(diag & (np.abs(x) < BOUNDARY_TOL))
    best_f, best_x = fx - min_gain, None
    probes = []
    for j in at:
        for t in GRID:
            xt = x.copy()
            xt[j] = t * scales[j]
            probes.append(xt)
    if extra is not None and at.size:
        probes.extend(extra(x))
    for xt in probes:
        info.n_checks += 1
        try:
            ft = float(f(xt))
        except PROBE_ERRORS:
            # a probe the engine cannot evaluate (a mode search that fails, a singular
            # sparse factor) is no evidence of a better point: skip it
            continue
        if np.isfinite(ft) and ft < best_f:
            best_f, best_x = ft, xt
    return best_x


def lower_factor(M: np.ndarray) -> np.ndarray:
    """The lower-triangular ``L`` with a non-negative diagonal and ``L L' = M M'``.

    From the QR decomposition of ``M'`` (``M' = Q R`` gives ``M M' = R' R``), so a
    rank-deficient ``M M'`` (a boundary fit) gets a factor with zeros on its diagonal
    instead of a failed Cholesky.
    """
    M = np.asarray(M, dtype=float)
    if M.shape[0] == 0:
        return M.copy()
    L = np.linalg.qr(M.T, mode="r").T
    sign = np.where(np.diag(L) < 0.0, -1.0, 1.0)
    return np.tril(L * sign)


def correlated_probes(
    layout: Any,
    scales: np.ndarray,
    f: Callable[[np.ndarray], float] | None = None,
    h: float = 3e-3,
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Extra boundary probes for :func:`optimize_off_boundary` (see the module docstring).

    Parameters
    ----------
    layout : ThetaLayout
        The ``theta`` layout (``sizes``, ``correlated``, ``factors``, ``from_factors``).
    scales : ndarray
        Per flat element, the unit of the grid (:func:`theta_scales`).
    f : callable, optional
        The deviance at a flat vector; enables the column probes (below).
    h : float
        Step (in units of ``scales``) of the column-curvature differences.

    Returns
    -------
    callable
        ``x -> list of probe points``: for every correlated block with a term ``j`` of
        variance 0 (its row of ``Lambda`` below :data:`BOUNDARY_TOL`) and every other term
        ``k`` with a positive variance, ``b_j = +-t b_k / sd_k`` for ``t`` on :data:`GRID`.
        With ``f``, also for every column ``j`` of ``Lambda`` that is 0 from its diagonal
        down (a rank-deficient factor), the direction of most negative curvature of the
        deviance in that column's free elements (the deviance is even in the column, so it
        changes as ``t^2 v'Qv / 2`` along ``t v``; ``Q`` from differences at step ``h``),
        at ``t`` on :data:`GRID`: a probe along the diagonal alone misses an optimum of
        higher rank whose new column also has off-diagonal elements (a ``(1 + x1 + x2 |
        g)`` cloglog fit ended on a rank-1 face 0.0009 below glmm's rank-2 optimum).
    """
    n_theta = int(sum(layout.sizes))

    def column_probes(x: np.ndarray, idx: np.ndarray, unit: float) -> list[np.ndarray]:
        """Points along the most negatively curved direction in the elements ``idx``."""
        assert f is not None
        d = idx.size
        try:
            f0 = float(f(x))
            step = h * unit
            fe = np.empty(d)
            for a in range(d):
                xa = x.copy()
                xa[idx[a]] += step
                fe[a] = float(f(xa))
            Q = np.diag(2.0 * (fe - f0) / step**2)
            for a in range(d):
                for b in range(a + 1, d):
                    xab = x.copy()
                    xab[idx[a]] += step
                    xab[idx[b]] += step
                    fab = float(f(xab))
                    Q[a, b] = Q[b, a] = (fab - fe[a] - fe[b] + f0) / step**2
        except (InferenceError, FloatingPointError, np.linalg.LinAlgError, RuntimeError):
            return []
        if not np.all(np.isfinite(Q)):
            return []
        ev, vec = np.linalg.eigh(Q)
        if ev[0] >= 0.0:
            return []
        v = vec[:, 0] * (1.0 if vec[0, 0] >= 0 else -1.0)  # the diagonal element >= 0
        out = []
        for t in GRID:
            xt = x.copy()
            xt[idx] = x[idx] + t * unit * v
            out.append(xt)
        return out

    def probes(x: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        theta = np.asarray(x[:n_theta], dtype=float)
        factors = layout.factors(theta)
        pos = 0
        for b, (L, size, corr) in enumerate(
            zip(factors, layout.sizes, layout.correlated, strict=True)
        ):
            p = L.shape[0]
            if corr:
                diag_pos = pos + np.array([j * p - j * (j - 1) // 2 for j in range(p)])
                sd = np.sqrt(np.sum(L * L, axis=1))
                for j in map(int, np.flatnonzero(np.max(np.abs(L), axis=1) < BOUNDARY_TOL)):
                    for k in map(int, np.flatnonzero(sd >= BOUNDARY_TOL)):
                        for t in GRID:
                            for sign in (1.0, -1.0):
                                A = np.eye(p)
                                A[j, k] = sign * t * scales[diag_pos[j]] / sd[k]
                                new = list(factors)
                                new[b] = lower_factor(A @ L)
                                xt = np.array(x, dtype=float)
                                xt[:n_theta] = layout.from_factors(new)
                                out.append(xt)
                if f is not None:
                    for j in range(p - 1):
                        # column j, from its diagonal down: elements diag_pos[j] ... +p-j-1
                        idx = np.arange(diag_pos[j], diag_pos[j] + p - j)
                        if np.max(np.abs(x[idx])) < BOUNDARY_TOL:
                            out.extend(column_probes(np.array(x, float), idx, scales[idx[0]]))
            pos += size
        return out

    return probes


def optimize_off_boundary(
    run: Callable[[np.ndarray], tuple],
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    diag: np.ndarray,
    scales: np.ndarray,
    *,
    min_gain: float = 1e-7,
    max_restarts: int = 10,
    extra: Callable[[np.ndarray], Iterable[np.ndarray]] | None = None,
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
    extra : callable, optional
        ``x -> probe points`` tried as well when some diagonal is on the boundary
        (:func:`correlated_probes`).

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
        xe = _escape(f, x, fx, diag, scales, min_gain, info, extra)
        if xe is None:
            break
        new = run(xe)
        info.restarts += 1
        if not float(new[1]) < fx:
            break
        res = new
    return res, info
