"""Passes over the data rows of the blocked structure (Numba), one loop over rows each.

:func:`_accumulate` adds ``w_i a_i a_i'`` into the slots of ``M = A' W A + I``;
:func:`_rows` gives ``eta``, the row log-likelihood, score and Fisher weight, and
:func:`_rows_accumulate` fuses the two (and ``A' d1``) for a PIRLS step; ``grad_pass1`` and
``grad_pass2`` are the two passes of the analytic Laplace gradient
(:class:`~bayesglmm.engines.ml.laplace.LaplaceObjective`); :func:`_level_node_ll` sums the
row log-likelihood per level at quadrature nodes (AGQ).  The slot layout is
:class:`~bayesglmm.engines.ml.blocked_cholesky.BlockedStructure`'s.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bayesglmm.engines.ml.scalar_laplace import _row, _row_at

__all__ = ["grad_pass1", "grad_pass2"]


@njit(cache=True, nogil=True)
def _accumulate(slots, pair_t, pair_u, a, w, buf):  # pragma: no cover - numba
    """``buf[slots[i, k]] += w_i a[i, T_k] a[i, U_k]`` for every row and term pair."""
    buf[:] = 0.0
    n, npair = slots.shape
    for i in range(n):
        wi = w[i]
        for k in range(npair):
            buf[slots[i, k]] += wi * a[i, pair_t[k]] * a[i, pair_u[k]]


@njit(cache=True, nogil=True)
def _eta(ef, a, cols, u, eta):  # pragma: no cover - numba
    """``eta = ef + A u``."""
    n, P = a.shape
    for i in range(n):
        e = ef[i]
        for T in range(P):
            e += a[i, T] * u[cols[i, T]]
        eta[i] = e


@njit(cache=True, nogil=True)
def _rows(kind, y, ntr, ef, a, cols, u, eta, ll, d1, w):  # pragma: no cover - numba
    """``eta = ef + A u`` and the row log-likelihood, score and Fisher weight."""
    _eta(ef, a, cols, u, eta)
    for i in range(eta.size):
        ll[i], d1[i], w[i], _ = _row(kind, y[i], ntr[i], eta[i])


@njit(cache=True, nogil=True)
def _rows_accumulate(
    kind, y, ntr, eta, ex, ex2, a, cols, slots, pair_t, pair_u, ll, d1, w, buf, atd
):  # pragma: no cover - numba
    """The rows at ``eta`` (their ``ex, ex2 = row_exps(kind, eta)`` computed beforehand,
    vectorized) fused with :func:`_accumulate` (at the new weights) and ``A' d1``: one
    pass over the rows gives everything a Newton step of PIRLS needs."""
    buf[:] = 0.0
    atd[:] = 0.0
    n, P = a.shape
    npair = pair_t.size
    for i in range(n):
        lli, di, wi, _ = _row_at(kind, y[i], ntr[i], eta[i], ex[i], ex2[i])
        ll[i] = lli
        d1[i] = di
        w[i] = wi
        for k in range(npair):
            buf[slots[i, k]] += wi * a[i, pair_t[k]] * a[i, pair_u[k]]
        for T in range(P):
            atd[cols[i, T]] += a[i, T] * di


@njit(cache=True, nogil=True)
def grad_pass1(a, cols, slots, pair_t, pair_u, sel, dw, G, wh, v):  # pragma: no cover - numba
    """Per row: ``G[i, T] = sum_s a_is (M^-1)[col(i,T), col(i,s)]``,
    ``wh_i = dw_i a_i' M^-1 a_i`` and ``v = A' wh`` (zeroed here)."""
    n, P = a.shape
    v[:] = 0.0
    for i in range(n):
        for T in range(P):
            G[i, T] = 0.0
        for k in range(pair_t.size):
            T, U = pair_t[k], pair_u[k]
            m = sel[slots[i, k]]
            G[i, T] += a[i, U] * m
            if T != U:
                G[i, U] += a[i, T] * m
        h = 0.0
        for T in range(P):
            h += a[i, T] * G[i, T]
        wh[i] = dw[i] * h
        for T in range(P):
            v[cols[i, T]] += a[i, T] * wh[i]


@njit(cache=True, nogil=True)
def grad_pass2(
    a, cols, u, z, d1, w, w_obs, wh, G, Zt, tt, X, c_u, g_theta, rhs
):  # pragma: no cover
    """Per row: the ``theta`` gradient, the ``beta`` multiplier ``c_u`` and the right-hand
    sides ``dg/d[theta, beta]`` of the mode sensitivities (see ``LaplaceObjective``)."""
    n, P = a.shape
    nt = tt.size
    k = X.shape[1]
    g_theta[:] = 0.0
    rhs[:] = 0.0
    s = np.empty(nt + k)
    for i in range(n):
        az = 0.0
        for T in range(P):
            az += a[i, T] * z[cols[i, T]]
        c = -2.0 * d1[i] + wh[i] - az * w_obs[i]
        c_u[i] = c
        for j in range(nt):
            T = tt[j]
            cT = cols[i, T]
            zj = Zt[i, j]
            g_theta[j] += zj * (c * u[cT] + 2.0 * w[i] * G[i, T] + d1[i] * z[cT])
            rhs[cT, j] += zj * d1[i]
            s[j] = -w_obs[i] * zj * u[cT]
        for jb in range(k):
            s[nt + jb] = -w_obs[i] * X[i, jb]
        for U in range(P):  # one row of rhs at a time (contiguous)
            cU = cols[i, U]
            aU = a[i, U]
            for j in range(nt + k):
                rhs[cU, j] += aU * s[j]


@njit(cache=True, nogil=True)
def _level_node_ll(kind, y, ntr, eta, c, lev, nodes, out):  # pragma: no cover - numba
    """``out[lev_i, k] += ll(eta_i + c_i' z_k)`` for every row and node (canonical link,
    :data:`~bayesglmm.engines.ml.scalar_laplace.KIND_CODES`; ``out`` zeroed by the caller)."""
    n, q = c.shape
    K = nodes.shape[0]
    for i in range(n):
        j = lev[i]
        for k in range(K):
            e = eta[i]
            for t in range(q):
                e += c[i, t] * nodes[k, t]
            out[j, k] += _row(kind, y[i], ntr[i], e)[0]
