"""Laplace and adaptive Gauss-Hermite deviance, with analytic gradient, for one scalar term.

For one random-effect block with one term (``eta_i = o_i + x_i' beta + theta z_i u_g``) the
integral factorizes over groups.  With the conditional mode ``u_g`` and the curvature
``H_g = 1 + theta^2 sum_i z_i^2 w_i`` (``w`` the observed information, which is the Fisher
weight lme4 keeps in ``L`` for a canonical link), the per-group deviance is

    F_g = log H_g - 2 log sum_k w_k exp(z_k^2 / 2 - dev_g(u_g + z_k / sqrt(H_g)) / 2),

``dev_g(u) = -2 sum_i log f(y_i | eta_i(u)) + u^2`` and ``(z_k, w_k)`` the Gauss-Hermite
rule for ``N(0, 1)``.  With one node (``z = 0, w = 1``) this is exactly the Laplace
deviance ``dev_g(u_g) + log H_g``.

The gradient in ``(theta, beta)`` is analytic: the mode's sensitivity follows from the
implicit-function theorem (per group a scalar, as the observed curvature is diagonal),
and the curvature's derivative needs ``d w / d eta``.  Every sum over rows of a group is
one ``np.bincount``; the only Python loops run over fixed-effect columns and nodes.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from bayesglmm.inference.pirls import FamilyKernel, ModeResult, ScalarStructure

__all__ = [
    "agq_gradient",
    "curvature_terms",
    "gh_rule",
    "group_colsums",
    "laplace_gradient",
    "scalar_deviance",
]


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


_CHUNK_ELEMS = 2_000_000  # rows x nodes evaluated at once (bounds the temporary memory)


def _node_chunks(nagq: int, idx: np.ndarray, L: int):
    """Slices of the node list with the flattened (node, group) index for each chunk."""
    n = idx.size
    m = max(1, min(nagq, _CHUNK_ELEMS // max(n, 1)))
    flat_full = None
    for start in range(0, nagq, m):
        stop = min(nagq, start + m)
        k = stop - start
        if flat_full is None or flat_full.shape[0] != k * n:
            flat_full = (idx[None, :] + L * np.arange(k)[:, None]).ravel()
        yield slice(start, stop), flat_full


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


def scalar_deviance(
    st: ScalarStructure,
    fam: FamilyKernel,
    X: np.ndarray,
    eta_fixed: np.ndarray,
    mode: ModeResult,
    nagq: int = 1,
    *,
    grad: bool = True,
    quadrature: bool = False,
) -> tuple[float, np.ndarray | None, np.ndarray]:
    """Deviance (normalized, ``-2 log L``) and its gradient in ``(theta, beta)``.

    Parameters
    ----------
    st : ScalarStructure
        With ``theta`` set.
    fam : FamilyKernel
    X : ndarray (n, k)
    eta_fixed : ndarray (n,)
        ``offset + X beta``.
    mode : ModeResult
        Conditional mode at these parameters (from :func:`~bayesglmm.inference.pirls.pirls`).
    nagq : int
        Quadrature nodes (1 = Laplace).
    grad : bool
        Also return the gradient ``[d/dtheta, d/dbeta]``.
    quadrature : bool
        Use the general quadrature code even for ``nagq = 1`` (for testing that the
        one-node rule reproduces the Laplace deviance).

    Returns
    -------
    deviance : float
    gradient : ndarray (1 + k,) or None
    group_deviance : ndarray (L,)
        Per-group contributions (without the data constants).
    """
    idx, L, z, th = st.index, st.L, st.z, st.theta
    u = mode.u
    H = mode.factor.d  # observed curvature at the mode, 1 + theta^2 S (Fisher = observed
    # for a canonical link)
    logH = np.log(H)
    laplace = nagq == 1 and not quadrature
    if laplace:
        dev_g = -2.0 * st.unit_sum(mode.ll) + u * u + logH
        dev = float(dev_g.sum()) - 2.0 * fam.const
    else:
        nodes, logw = gh_rule(nagq)
        s = 1.0 / np.sqrt(H)
        zt = z * th
        Lmat = np.empty((L, nagq))
        for sl, flat in _node_chunks(nagq, idx, L):
            Uk = u[None, :] + nodes[sl, None] * s[None, :]  # (m, L)
            llk = fam.ll(eta_fixed[None, :] + zt[None, :] * Uk[:, idx])
            m = Uk.shape[0]
            devk = -2.0 * np.bincount(flat, weights=llk.ravel(), minlength=m * L).reshape(m, L)
            devk += Uk * Uk
            Lmat[:, sl] = (logw[sl, None] + 0.5 * nodes[sl, None] ** 2 - 0.5 * devk).T
        lse = logsumexp(Lmat, axis=1)
        dev_g = logH - 2.0 * lse
        dev = float(dev_g.sum()) - 2.0 * fam.const
    if not grad:
        return dev, None, dev_g

    # ---- sensitivities of the mode and of the curvature (shared by Laplace and AGQ)
    eta, d1, w = mode.eta, mode.d1, mode.w
    # observed information and its derivative: H is built from them (pirls' factor)
    w_obs, dw = fam.laplace_curvature(eta, d1, w)
    z2 = z * z
    c = z2 * dw
    Sobs = np.bincount(idx, weights=z2 * w_obs, minlength=L)
    zd1 = np.bincount(idx, weights=z * d1, minlength=L)
    du_dt, du_db, dH_dt, dH_db = curvature_terms(
        th,
        u,
        Sobs,
        Sobs,
        zd1,
        np.bincount(idx, weights=c * z, minlength=L),
        group_colsums(idx, z * w_obs, X, L),
        group_colsums(idx, c, X, L),
    )
    mode.sens = (du_dt, du_db)
    if laplace:
        return dev, laplace_gradient(H, u, zd1, dH_dt, dH_db, X.T @ d1), dev_g

    pi = np.exp(Lmat - lse[:, None])
    r = np.zeros_like(eta_fixed)
    T = np.empty((L, nagq))
    U = u[:, None] + nodes[None, :] * s[:, None]
    for sl, flat in _node_chunks(nagq, idx, L):
        d1k, _ = fam.score(eta_fixed[None, :] + zt[None, :] * U[:, sl].T[:, idx])
        m = d1k.shape[0]
        r += (pi[:, sl].T[:, idx] * d1k).sum(axis=0)
        Tk = np.bincount(flat, weights=(z[None, :] * d1k).ravel(), minlength=m * L)
        T[:, sl] = Tk.reshape(m, L).T
    grad = agq_gradient(th, H, U, T, pi, nodes, du_dt, du_db, dH_dt, dH_db, X.T @ r)
    return dev, grad, dev_g
