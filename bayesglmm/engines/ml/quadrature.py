"""Gauss-Hermite rules and the one-scalar-term Laplace/AGQ curvature and gradient formulas.

Shared by the NumPy path (:mod:`bayesglmm.engines.ml.agq`) and the fused Numba path
(:mod:`bayesglmm.engines.ml.scalar_laplace`), so both compute one set of formulas; this
module imports no other engine module (it breaks what was an import cycle between them).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

__all__ = ["agq_gradient", "curvature_terms", "gh_rule", "group_colsums", "laplace_gradient"]


@functools.lru_cache(maxsize=64)
def _gh_rule(nagq: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = hermegauss(nagq)
    x.setflags(write=False)
    logw = np.log(w / np.sqrt(2.0 * np.pi))
    logw.setflags(write=False)
    return x, logw


def gh_rule(nagq: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and log-weights for the standard normal density (cached, read-only)."""
    return _gh_rule(int(nagq))


def group_colsums(index: np.ndarray, weights: np.ndarray, X: np.ndarray, L: int) -> np.ndarray:
    """Per-group sums of ``weights * X[:, j]`` for every column: (L, k)."""
    return np.stack(
        [np.bincount(index, weights=weights * X[:, j], minlength=L) for j in range(X.shape[1])],
        axis=1,
    )


def curvature_terms(
    th: float,
    u: np.ndarray,
    S: np.ndarray,
    Sobs: np.ndarray,
    zd1: np.ndarray,
    D: np.ndarray,
    a: np.ndarray,
    C: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mode sensitivities and curvature derivatives from per-group sums at the mode.

    With ``S = sum z^2 w`` (Fisher), ``Sobs = sum z^2 w_obs``, ``zd1 = sum z d1``,
    ``D = sum z^3 dw``, ``a = sum z w_obs x`` and ``C = sum z^2 dw x`` per group, returns
    ``(du/dtheta, du/dbeta, dH/dtheta, dH/dbeta)`` of the mode ``u`` and the curvature
    ``H = 1 + theta^2 S``.
    """
    th2 = th * th
    Hobs = 1.0 + th2 * Sobs
    du_db = -th * a / Hobs[:, None]
    du_dt = (zd1 - th * u * Sobs) / Hobs
    dH_db = th2 * (C + th * D[:, None] * du_db)
    dH_dt = 2.0 * th * S + th2 * D * (u + th * du_dt)
    return du_dt, du_db, dH_dt, dH_db


def laplace_gradient(
    H: np.ndarray,
    u: np.ndarray,
    zd1: np.ndarray,
    dH_dt: np.ndarray,
    dH_db: np.ndarray,
    xd1: np.ndarray,
) -> np.ndarray:
    """``d deviance / d [theta, beta]`` of the Laplace deviance (``xd1 = X' d1``)."""
    g_t = float((dH_dt / H).sum() - 2.0 * (u * zd1).sum())
    g_b = (dH_db / H[:, None]).sum(axis=0) - 2.0 * xd1
    return np.concatenate([[g_t], g_b])


def agq_gradient(
    th: float,
    H: np.ndarray,
    U: np.ndarray,
    T: np.ndarray,
    pi: np.ndarray,
    nodes: np.ndarray,
    du_dt: np.ndarray,
    du_db: np.ndarray,
    dH_dt: np.ndarray,
    dH_db: np.ndarray,
    xr: np.ndarray,
) -> np.ndarray:
    """``d deviance / d [theta, beta]`` of the AGQ deviance.

    ``U`` (L, K) the nodes ``u + z_k / sqrt(H)``, ``T`` (L, K) the per-group ``sum z d1``
    at each node, ``pi`` (L, K) the nodes' posterior weights and ``xr = X' r`` with
    ``r_i = sum_k pi[g, k] d1(eta_i at node k)``.
    """
    G = th * T - U
    P = (pi * G).sum(axis=1)
    R = (pi * G * nodes[None, :]).sum(axis=1)
    At = (pi * U * T).sum(axis=1)
    fac = (1.0 + R / np.sqrt(H)) / H
    g_t = float((dH_dt * fac).sum() - 2.0 * At.sum() - 2.0 * (P * du_dt).sum())
    g_b = (dH_db * fac[:, None]).sum(axis=0) - 2.0 * xr - 2.0 * (P[:, None] * du_db).sum(axis=0)
    return np.concatenate([[g_t], g_b])
