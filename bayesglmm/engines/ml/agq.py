"""Laplace and adaptive Gauss-Hermite deviance: one scalar term (with analytic gradient) or
one grouping factor with up to three correlated terms.

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

One grouping factor with ``q = 2`` or ``3`` correlated terms (:func:`vector_deviance`):
the same rule on the tensor product of the ``nagq``-point rule (``nagq^q`` nodes per
level), shifted to each level's mode and scaled by the inverse transpose of the Cholesky
factor of its curvature block (up to :data:`MAX_NAGQ_VECTOR`).  Its gradient is by central
differences of the deviance (the analytic formulas here are for one scalar term).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import logsumexp

from bayesglmm.engines.ml.pirls import FamilyKernel, ModeResult, ScalarStructure
from bayesglmm.engines.ml.quadrature import (
    agq_gradient,
    curvature_terms,
    gh_rule,
    group_colsums,
    laplace_gradient,
)

__all__ = [
    "product_rule",
    "scalar_deviance",
    "vector_deviance",
]


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
        Conditional mode at these parameters (from :func:`~bayesglmm.engines.ml.pirls.pirls`).
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
    # the weight H is built from (pirls' factor) and its derivative: the observed
    # information, or the Fisher weight for a family whose log-likelihood is not concave in
    # eta (Student-t, ``laplace_information = "fisher"``)
    w_H, dw = fam.laplace_curvature(eta, d1, w)
    # the mode's sensitivities (implicit-function theorem) need the observed information
    # whichever weight H holds
    w_obs = fam.curvature(eta)[0] if fam.family.spec.laplace_information == "fisher" else w_H
    z2 = z * z
    c = z2 * dw
    S_H = np.bincount(idx, weights=z2 * w_H, minlength=L)
    Sobs = S_H if w_obs is w_H else np.bincount(idx, weights=z2 * w_obs, minlength=L)
    zd1 = np.bincount(idx, weights=z * d1, minlength=L)
    du_dt, du_db, dH_dt, dH_db = curvature_terms(
        th,
        u,
        S_H,
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
    gradient = agq_gradient(th, H, U, T, pi, nodes, du_dt, du_db, dH_dt, dH_db, X.T @ r)
    return dev, gradient, dev_g


# ---------------------------------------------------------------------------- vector terms
#: largest ``nagq`` per number of correlated terms ``q`` of the one grouping factor (the
#: tensor-product rule has ``nagq ** q`` nodes per level: 625 for q = 2, 1331 for q = 3)
MAX_NAGQ_VECTOR = {2: 25, 3: 11}


@functools.lru_cache(maxsize=16)
def _product_rule(nagq: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    x, logw = gh_rule(nagq)
    grids = np.meshgrid(*([x] * q), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)  # (nagq^q, q)
    lw = np.sum(np.meshgrid(*([logw] * q), indexing="ij"), axis=0).ravel()
    nodes.setflags(write=False)
    lw.setflags(write=False)
    return nodes, lw


def product_rule(nagq: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for ``N(0, I_q)``: nodes ``(nagq^q, q)`` and
    log-weights ``(nagq^q,)`` (cached, read-only)."""
    return _product_rule(int(nagq), int(q))


def vector_deviance(
    st,  # noqa: ANN001 - BlockedStructure with one block (imported lazily, see pirls)
    fam: FamilyKernel,
    eta_fixed: np.ndarray,
    mode: ModeResult,
    nagq: int,
) -> tuple[float, np.ndarray]:
    """AGQ deviance (normalized, ``-2 log L``) for one grouping factor with ``q`` terms.

    Per level ``j``, with the conditional mode ``u_j`` and the Cholesky factor ``L_j`` of
    the level's block ``H_j = L_j L_j'`` of ``A' W A + I`` (observed information, as the
    Laplace determinant), the nodes are ``u_jk = u_j + L_j^-T z_k`` for the tensor-product
    rule ``(z_k, w_k)`` of :func:`product_rule`, and

        F_j = log det H_j - 2 log sum_k w_k exp(|z_k|^2 / 2 - dev_j(u_jk) / 2),

    ``dev_j(u) = -2 sum_{i in j} log f(y_i | eta_i(u)) + |u|^2``: the scalar formula of
    :func:`scalar_deviance` with ``H`` a matrix.  One node (``z = 0``, ``w = 1``) gives
    the Laplace deviance ``dev_j(u_j) + log det H_j``.  With ``c_i = L_j^-1 a_i``
    (``a_i`` the row of ``A = Z Lambda``) the linear predictor at node ``k`` is
    ``eta_i + c_i' z_k``: for a canonical link one Numba pass over rows x nodes summing into
    levels x nodes, otherwise one matrix product per chunk of nodes and one ``np.bincount``;
    the chunks keep rows x nodes below ``_CHUNK_ELEMS``.

    Returns
    -------
    deviance : float
    group_deviance : ndarray (L,)
        Per-level contributions ``F_j`` (without the data constants).
    """
    F = mode.factor
    L11 = F.L11  # (L, q, q) lower
    nlev, q, _ = L11.shape
    idx = st.lev1
    eye = np.broadcast_to(np.eye(q), L11.shape)
    Linv = np.linalg.solve(L11, eye)  # L_j^-1
    c = np.einsum("ipq,iq->ip", Linv[idx], st.a)  # (n, q): L_j^-1 a_i
    U = mode.u.reshape(nlev, q)
    logdet = F.unit_logdet()
    nodes, logw = product_rule(nagq, q)
    K = nodes.shape[0]
    Lmat = np.empty((nlev, K))
    # (imported here: scalar_laplace, which blocked_cholesky imports, imports this module)
    from bayesglmm.engines.ml.blocked_cholesky import _level_node_ll
    from bayesglmm.engines.ml.scalar_laplace import KIND_CODES

    eta = mode.eta
    code = KIND_CODES.get(fam.kind)
    if code is not None:
        ntr = np.ones(eta.size) if fam.trials is None else np.asarray(fam.trials, dtype=float)
        ntr = np.ascontiguousarray(ntr)
        c = np.ascontiguousarray(c)
    for sl, flat in _node_chunks(K, idx, nlev):
        Zk = nodes[sl]  # (m, q)
        m = Zk.shape[0]
        if code is not None:  # canonical link: one Numba pass over rows x nodes
            devk = np.zeros((nlev, m))
            _level_node_ll(code, fam.y, ntr, eta, c, idx, np.ascontiguousarray(Zk), devk)
            devk = -2.0 * devk.T
        else:
            llk = fam.ll(eta[None, :] + Zk @ c.T)  # (m, n)
            devk = -2.0 * np.bincount(flat, weights=llk.ravel(), minlength=m * nlev)
            devk = devk.reshape(m, nlev)
        Uk = U[None, :, :] + np.einsum("lqp,mq->mlp", Linv, Zk)  # u_j + L_j^-T z_k
        devk += np.einsum("mlp,mlp->ml", Uk, Uk)
        zz = np.einsum("mq,mq->m", Zk, Zk)
        Lmat[:, sl] = (logw[sl, None] + 0.5 * zz[:, None] - 0.5 * devk).T
    dev_g = logdet - 2.0 * logsumexp(Lmat, axis=1)
    return float(dev_g.sum()) - 2.0 * fam.const, dev_g
