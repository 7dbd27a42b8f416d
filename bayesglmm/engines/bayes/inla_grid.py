"""INLA's grid strategy over a few hyperparameters, and sampling from the gridded density.

The log posterior ``log p(psi | y)`` of ``m`` hyperparameters is explored on a regular
lattice in the standardized coordinates ``z`` of a Gaussian approximation,
``psi = center + E z`` (``E`` from the eigen-decomposition of its covariance), as
R-INLA's ``int.strategy = "grid"``: starting at ``z = 0``, neighbours (one step along one
axis) are evaluated flood-fill style, and a point's neighbours are explored only while the
log density there has dropped by less than ``threshold`` from the centre.  The lattice
follows the actual shape of the density, so a skewed posterior is captured.

Sampling treats each lattice point as a cell (a box of side ``step`` around it) with mass
``exp(lp) * integral``, where the log density inside the cell is a separable quadratic
``lp + d t + c t^2 / 2`` per axis (slope ``d`` and curvature ``c <= 0`` from the
neighbours' values; an axis without neighbours gets the Gaussian's ``c = -1``); a cell is
drawn by mass, then a point inside it exactly from that quadratic (by rejection from the
linear part).  This removes the staircase of sampling lattice points alone.  Where the
lattice ends and the density decays outwards, the last cell of a one-dimensional grid
extends to infinity with the exponential tail ``exp(lp + d t)``, so a long tail beyond the
threshold is not cut off (in more dimensions such tails would overlap; a larger threshold
does that job).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Grid", "explore_grid", "sample_grid"]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)


@dataclass(frozen=True)
class Grid:
    """An explored lattice.

    Attributes
    ----------
    index : ndarray of int (n, m)
        Lattice coordinates (``z = step * index``).
    lp : ndarray (n,)
        Log density at each point (``-inf`` where it could not be evaluated).
    payload : list
        Whatever the density function returned with each value.
    step : float
    center : ndarray (m,)
    E : ndarray (m, m)
        ``psi = center + E z``.
    """

    index: np.ndarray
    lp: np.ndarray
    payload: list[Any]
    step: float
    center: np.ndarray
    E: np.ndarray

    @property
    def z(self) -> np.ndarray:
        """Standardized coordinates of the points."""
        return self.step * self.index.astype(float)

    def psi(self, z: np.ndarray) -> np.ndarray:
        """Hyperparameters at standardized coordinates ``z`` (..., m)."""
        return self.center + z @ self.E.T


def explore_grid(
    logdens: Callable[[np.ndarray, Any], tuple[float, Any]],
    center: np.ndarray,
    cov: np.ndarray,
    *,
    step: float,
    threshold: float,
    max_points: int = 4000,
) -> Grid:
    """Flood-fill the lattice around ``center`` while the log density stays within reach.

    Parameters
    ----------
    logdens : callable
        ``logdens(psi, hint) -> (log density, payload)``; ``hint`` is the payload of the
        already evaluated neighbour the point was reached from (``None`` at the centre), a
        warm start.
    center : ndarray (m,)
    cov : ndarray (m, m)
        Covariance of the Gaussian approximation (defines the ``z`` coordinates).
    step : float
        Lattice spacing in ``z`` units.
    threshold : float
        Stop exploring beyond points whose log density is this far below the centre's.
    max_points : int
        Hard limit on evaluations.

    Returns
    -------
    Grid
    """
    center = np.asarray(center, dtype=float)
    m = center.size
    lam, V = np.linalg.eigh(0.5 * (cov + cov.T))
    E = V * np.sqrt(np.maximum(lam, 1e-12))
    seen: dict[tuple[int, ...], int] = {}
    index: list[tuple[int, ...]] = []
    lps: list[float] = []
    payload: list[Any] = []
    origin = (0,) * m
    queue: deque[tuple[tuple[int, ...], Any]] = deque([(origin, None)])
    seen[origin] = -1
    lp0 = None
    while queue and len(index) < max_points:
        key, hint = queue.popleft()
        psi = center + E @ (step * np.asarray(key, dtype=float))
        lp, pay = logdens(psi, hint)
        lp = float(lp) if np.isfinite(lp) else -np.inf
        seen[key] = len(index)
        index.append(key)
        lps.append(lp)
        payload.append(pay)
        if lp0 is None:
            if not np.isfinite(lp):
                raise ValueError("the log density is not finite at the centre of the grid")
            lp0 = lp
        if lp0 - lp >= threshold:
            continue
        for axis in range(m):
            for sign in (-1, 1):
                nb = list(key)
                nb[axis] += sign
                nbt = tuple(nb)
                if nbt not in seen:
                    seen[nbt] = -1
                    queue.append((nbt, pay))
    return Grid(
        np.asarray(index, dtype=int).reshape(-1, m), np.asarray(lps), payload, step, center, E
    )


def _local_shape(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point and axis: slope ``d``, curvature ``c <= 0`` (z units) and the tail flag
    (one hyperparameter only): +1 (-1) where the lattice ends above (below) the point and
    the density decays that way, so the cell extends to infinity as ``exp(d t)``."""
    idx, lp, h = grid.index, grid.lp, grid.step
    n, m = idx.shape
    lookup = {tuple(k): i for i, k in enumerate(idx.tolist())}
    d = np.zeros((n, m))
    c = np.full((n, m), -1.0)
    tail = np.zeros((n, m), dtype=int)
    for axis in range(m):
        e = np.zeros(m, dtype=int)
        e[axis] = 1
        up = np.array([lookup.get(tuple(k), -1) for k in (idx + e).tolist()])
        dn = np.array([lookup.get(tuple(k), -1) for k in (idx - e).tolist()])
        lp_up = np.where(up >= 0, lp[np.maximum(up, 0)], -np.inf)
        lp_dn = np.where(dn >= 0, lp[np.maximum(dn, 0)], -np.inf)
        has_up, has_dn = np.isfinite(lp_up), np.isfinite(lp_dn)
        both = has_up & has_dn
        with np.errstate(invalid="ignore"):
            curv = (lp_up - 2 * lp + lp_dn) / h**2
            c[both, axis] = np.minimum(curv[both], 0.0)
            # a one-sided point borrows its neighbour's curvature (-1 if it has none) to
            # turn the secant slope (half a step away) into the slope at the point
            nb = np.where(has_up, up, dn)
            c_nb = np.where(both[np.maximum(nb, 0)], c[np.maximum(nb, 0), axis], -1.0)
            c[~both, axis] = np.where((has_up | has_dn)[~both], c_nb[~both], -1.0)
            d[:, axis] = np.select(
                [both, has_up, has_dn],
                [
                    (lp_up - lp_dn) / (2 * h),
                    (lp_up - lp) / h - 0.5 * h * c[:, axis],
                    (lp - lp_dn) / h + 0.5 * h * c[:, axis],
                ],
                0.0,
            )
        if m == 1:  # in more dimensions the tails of neighbouring cells would overlap
            tail[has_dn & ~has_up & (d[:, axis] < -0.5), axis] = 1
            tail[has_up & ~has_dn & (d[:, axis] > 0.5), axis] = -1
    c[tail != 0] = 0.0
    return d, c, tail


def sample_grid(grid: Grid, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws from the gridded density.

    Returns
    -------
    point : ndarray of int (size,)
        The lattice point (cell) of each draw.
    z : ndarray (size, m)
        Standardized coordinates of each draw (inside its cell).
    """
    ok = np.isfinite(grid.lp)
    d, c, tail = _local_shape(grid)
    h = grid.step
    t = 0.5 * h * _GL_NODES  # Gauss-Legendre on [-h/2, h/2]
    w = 0.5 * h * _GL_WEIGHTS
    # log of the per-axis cell integrals (closed form for the exponential tails)
    expo = d[:, :, None] * t + 0.5 * c[:, :, None] * t**2  # (n, m, 8)
    top = expo.max(axis=2, keepdims=True)
    log_int = top[:, :, 0] + np.log(np.exp(expo - top) @ w)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_tail = np.abs(d) * h / 2 - np.log(np.abs(d))
    log_int = np.where(tail != 0, log_tail, log_int).sum(axis=1)
    logw = np.where(ok, grid.lp + log_int, -np.inf)
    prob = np.exp(logw - logw.max())
    prob /= prob.sum()
    point = rng.choice(grid.lp.size, size=size, p=prob)
    dd, cc, tt = d[point].ravel(), c[point].ravel(), tail[point].ravel()
    offset = np.empty(dd.size)
    todo = np.flatnonzero(tt == 0)  # positions inside a bounded cell still to draw
    while todo.size:
        u = rng.uniform(size=todo.size)
        slope = dd[todo]
        small = np.abs(slope * h) < 1e-8
        safe = np.where(small, 1.0, slope)
        # inverse CDF of exp(d t) on [-h/2, h/2], then accept with exp(c t^2 / 2) <= 1
        with np.errstate(over="ignore"):
            prop = np.where(
                small, (u - 0.5) * h, -0.5 * h + np.log1p(u * np.expm1(safe * h)) / safe
            )
        accept = rng.uniform(size=todo.size) < np.exp(0.5 * cc[todo] * prop**2)
        offset[todo[accept]] = prop[accept]
        todo = todo[~accept]
    ends = np.flatnonzero(tt != 0)
    offset[ends] = tt[ends] * (rng.exponential(size=ends.size) / np.abs(dd[ends]) - 0.5 * h)
    z = grid.z[point] + offset.reshape(point.size, -1)
    return point, z
