"""Conditional modes of one vector-valued random-effect term: per-group Newton (Numba).

The row passes and the per-group ``p x p`` algebra of
:mod:`~bayesglmm.engines.ml.vector_laplace` up to the mode: one pass over the rows (sorted
by group) accumulates, per group, the log-likelihood, ``sum z d1`` and ``S_g = sum w z z'``
in the ``z`` space; ``M_g = I + Lambda' S_g Lambda`` is factored in closed form (``p = 2``)
or by a small Cholesky, and :func:`_mode` takes per-group Newton steps with step halving,
as :func:`~bayesglmm.engines.ml.pirls.pirls` does.  :func:`_logdet_sum` gives
``sum_g log det M_g`` at the mode.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesglmm.engines.ml.scalar_laplace import _row


# ---------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _apply_lambda(Lam, u, B):  # pragma: no cover - numba
    """``B[g] = Lambda u[g]`` for every group."""
    L, p = u.shape
    for g in range(L):
        for a in range(p):
            s = 0.0
            for c in range(a + 1):
                s += Lam[a, c] * u[g, c]
            B[g, a] = s


@njit(cache=True, nogil=True)
def _pass(kind, y, n, ef, Z, ptr, B, acc):  # pragma: no cover - numba
    """Per group at ``eta = ef + z' b_g`` (rows sorted by group, group ``g`` in rows
    ``ptr[g]:ptr[g + 1]``), packed in ``acc[g]``:
    ``[sum ll | sum z d1 (p) | sum w z z' (lower triangle, row-major)]``."""
    L, p = B.shape
    acc[:] = 0.0
    for g in range(L):
        row = acc[g]
        for i in range(ptr[g], ptr[g + 1]):
            e = ef[i]
            for a in range(p):
                e += Z[i, a] * B[g, a]
            ll, d1, w, _ = _row(kind, y[i], n[i], e)
            row[0] += ll
            m = 1 + p
            for a in range(p):
                za = Z[i, a]
                row[1 + a] += za * d1
                wa = w * za
                for b in range(a + 1):
                    row[m] += wa * Z[i, b]
                    m += 1


@njit(cache=True, nogil=True)
def _pass2(kind, y, n, ef, Z, ptr, B, acc):  # pragma: no cover - numba
    """:func:`_pass` for ``p = 2`` (``(1 + x | g)``), the sums in registers."""
    for g in range(B.shape[0]):
        b0 = B[g, 0]
        b1 = B[g, 1]
        s0 = s1 = s2 = s3 = s4 = s5 = 0.0
        for i in range(ptr[g], ptr[g + 1]):
            z0 = Z[i, 0]
            z1 = Z[i, 1]
            ll, d1, w, _ = _row(kind, y[i], n[i], ef[i] + z0 * b0 + z1 * b1)
            s0 += ll
            s1 += z0 * d1
            s2 += z1 * d1
            w0 = w * z0
            s3 += w0 * z0
            s4 += w * z1 * z0
            s5 += w * z1 * z1
        row = acc[g]
        row[0] = s0
        row[1] = s1
        row[2] = s2
        row[3] = s3
        row[4] = s4
        row[5] = s5


@njit(cache=True, nogil=True)
def _sums(kind, y, n, ef, Z, ptr, B, acc):  # pragma: no cover - numba
    """:func:`_pass`, or :func:`_pass2` for ``p = 2``."""
    if B.shape[1] == 2:
        _pass2(kind, y, n, ef, Z, ptr, B, acc)
    else:
        _pass(kind, y, n, ef, Z, ptr, B, acc)


@njit(cache=True, nogil=True, inline="always")
def _unpack_sym(row, off, S):  # pragma: no cover - numba
    """Symmetric ``S`` (p x p) from the packed lower triangle ``row[off:]``."""
    p = S.shape[0]
    m = off
    for a in range(p):
        for b in range(a + 1):
            S[a, b] = row[m]
            S[b, a] = row[m]
            m += 1


@njit(cache=True, nogil=True, inline="always")
def _build_m(Lam, S, M, LS):  # pragma: no cover - numba
    """``M = I + Lambda' S Lambda`` and ``LS = Lambda' S`` (``S`` symmetric, full)."""
    p = Lam.shape[0]
    for a in range(p):  # LS[a, j] = sum_r Lam[r, a] S[r, j]
        for j in range(p):
            s = 0.0
            for r in range(a, p):
                s += Lam[r, a] * S[r, j]
            LS[a, j] = s
    for a in range(p):
        for b in range(a + 1):
            s = 0.0
            for j in range(b, p):
                s += LS[a, j] * Lam[j, b]
            if a == b:
                s += 1.0
            M[a, b] = s
            M[b, a] = s


@njit(cache=True, nogil=True, inline="always")
def _chol(M, C):  # pragma: no cover - numba
    """Lower Cholesky factor ``C`` of ``M``; returns ``log det M`` (NaN if not PD)."""
    p = M.shape[0]
    logdet = 0.0
    for j in range(p):
        s = M[j, j]
        for k in range(j):
            s -= C[j, k] * C[j, k]
        if not (s > 0.0):
            return math.nan
        d = math.sqrt(s)
        C[j, j] = d
        logdet += 2.0 * math.log(d)
        for i in range(j + 1, p):
            t = M[i, j]
            for k in range(j):
                t -= C[i, k] * C[j, k]
            C[i, j] = t / d
        for i in range(j):
            C[i, j] = 0.0
    return logdet


@njit(cache=True, nogil=True, inline="always")
def _chol_solve(C, v, out):  # pragma: no cover - numba
    """``out = (C C')^-1 v``."""
    p = C.shape[0]
    for i in range(p):
        s = v[i]
        for k in range(i):
            s -= C[i, k] * out[k]
        out[i] = s / C[i, i]
    for i in range(p - 1, -1, -1):
        s = out[i]
        for k in range(i + 1, p):
            s -= C[k, i] * out[k]
        out[i] = s / C[i, i]


@njit(cache=True, nogil=True)
def _newton_dirs(Lam, u, acc, delta):  # pragma: no cover - numba
    """Per group: the Newton step ``M^-1 (Lambda' zd - u)``; returns the largest decrement
    (NaN on a non-finite one or a curvature that is not positive definite)."""
    L, p = u.shape
    S = np.empty((p, p))
    M = np.empty((p, p))
    LS = np.empty((p, p))
    C = np.empty((p, p))
    gr = np.empty(p)
    dv = np.empty(p)
    dmax = 0.0
    for g in range(L):
        row = acc[g]
        _unpack_sym(row, 1 + p, S)
        _build_m(Lam, S, M, LS)
        if math.isnan(_chol(M, C)):
            return math.nan
        for a in range(p):
            s = -u[g, a]
            for r in range(a, p):
                s += Lam[r, a] * row[1 + r]
            gr[a] = s
        _chol_solve(C, gr, dv)
        dec = 0.0
        for a in range(p):
            delta[g, a] = dv[a]
            dec += gr[a] * dv[a]
        if not math.isfinite(dec):
            return math.nan
        dmax = max(dmax, dec)
    return dmax


@njit(cache=True, nogil=True, inline="always")
def _m2(Lam, row, oS):  # pragma: no cover - numba
    """``p = 2``: ``M = I + Lambda' S Lambda`` in closed form, ``S`` packed at ``row[oS:]``;
    returns ``(M00, M10, M11, LS00, LS01, LS10, LS11)`` (``LS = Lambda' S``)."""
    l00 = Lam[0, 0]
    l10 = Lam[1, 0]
    l11 = Lam[1, 1]
    s00 = row[oS]
    s10 = row[oS + 1]
    s11 = row[oS + 2]
    LS00 = l00 * s00 + l10 * s10
    LS01 = l00 * s10 + l10 * s11
    LS10 = l11 * s10
    LS11 = l11 * s11
    M00 = 1.0 + LS00 * l00 + LS01 * l10
    M10 = LS10 * l00 + LS11 * l10
    M11 = 1.0 + LS11 * l11
    return M00, M10, M11, LS00, LS01, LS10, LS11


@njit(cache=True, nogil=True)
def _newton_dirs2(Lam, u, acc, delta):  # pragma: no cover - numba
    """:func:`_newton_dirs` for ``p = 2`` in closed form."""
    l00 = Lam[0, 0]
    l10 = Lam[1, 0]
    l11 = Lam[1, 1]
    dmax = 0.0
    for g in range(u.shape[0]):
        row = acc[g]
        M00, M10, M11, _, _, _, _ = _m2(Lam, row, 3)
        det = M00 * M11 - M10 * M10
        if not (M00 > 0.0 and det > 0.0):
            return math.nan
        g0 = l00 * row[1] + l10 * row[2] - u[g, 0]
        g1 = l11 * row[2] - u[g, 1]
        d0 = (M11 * g0 - M10 * g1) / det
        d1 = (M00 * g1 - M10 * g0) / det
        delta[g, 0] = d0
        delta[g, 1] = d1
        dec = g0 * d0 + g1 * d1
        if not math.isfinite(dec):
            return math.nan
        dmax = max(dmax, dec)
    return dmax


@njit(cache=True, nogil=True)
def _dirs(Lam, u, acc, delta):  # pragma: no cover - numba
    """:func:`_newton_dirs`, or :func:`_newton_dirs2` for ``p = 2``."""
    if u.shape[1] == 2:
        return _newton_dirs2(Lam, u, acc, delta)
    return _newton_dirs(Lam, u, acc, delta)


@njit(cache=True, nogil=True)
def _objective(u, acc, obj):  # pragma: no cover - numba
    """``obj[g] = -sum ll + |u_g|^2 / 2``."""
    L, p = u.shape
    for g in range(L):
        o = -acc[g, 0]
        for a in range(p):
            o += 0.5 * u[g, a] * u[g, a]
        obj[g] = o


@njit(cache=True, nogil=True)
def _mode(kind, y, n, ef, Z, ptr, Lam, u0, tol, maxit, final_pass):  # pragma: no cover
    """Conditional modes by per-group Newton with step halving (as ``pirls``).

    Returns ``(u, acc, converged, n_iter, ok)`` (``acc``: :func:`_pass`'s sums at ``u``);
    without ``final_pass`` a converged search skips the pass after its last (tiny,
    unchecked) step, and ``acc`` is then stale (the caller's gradient pass recomputes it).
    """
    L, p = u0.shape
    m1 = 1 + p + p * (p + 1) // 2
    u = u0.copy()
    B = np.empty((L, p))
    acc = np.empty((L, m1))
    _apply_lambda(Lam, u, B)
    _sums(kind, y, n, ef, Z, ptr, B, acc)
    obj = np.empty(L)
    _objective(u, acc, obj)
    delta = np.empty((L, p))
    u_new = np.empty((L, p))
    acc_new = np.empty((L, m1))
    obj_new = np.empty(L)
    step = np.empty(L)
    active = np.empty(L, dtype=np.bool_)
    converged = False
    it = 0
    for it in range(1, maxit + 1):
        dmax = _dirs(Lam, u, acc, delta)
        if not math.isfinite(dmax):
            return u, acc, False, it, False
        if dmax < tol:
            # the (tiny) final Newton step, unchecked: the Laplace log-determinant is
            # first-order sensitive to u, so u must be exact, not just the objective
            for g in range(L):
                for a in range(p):
                    u[g, a] += delta[g, a]
            if final_pass:
                _apply_lambda(Lam, u, B)
                _sums(kind, y, n, ef, Z, ptr, B, acc)
            converged = True
            break
        step[:] = 1.0
        active[:] = True
        for _ in range(30):
            for g in range(L):
                for a in range(p):
                    u_new[g, a] = u[g, a] + step[g] * delta[g, a]
            _apply_lambda(Lam, u_new, B)
            _sums(kind, y, n, ef, Z, ptr, B, acc_new)
            _objective(u_new, acc_new, obj_new)
            any_bad = False
            for g in range(L):
                if not active[g]:
                    continue
                bad = not (obj_new[g] <= obj[g] + 1e-10 * (1.0 + abs(obj[g])))
                active[g] = bad
                if bad:
                    step[g] *= 0.5
                    any_bad = True
            if not any_bad:
                break
        u, u_new = u_new, u
        acc, acc_new = acc_new, acc
        obj, obj_new = obj_new, obj
    return u, acc, converged, it, True


@njit(cache=True, nogil=True)
def _logdet_sum(Lam, acc):  # pragma: no cover - numba
    """``sum_g log det M_g`` from :func:`_pass`'s sums (NaN if some ``M_g`` is not PD)."""
    p = Lam.shape[0]
    S = np.empty((p, p))
    M = np.empty((p, p))
    LS = np.empty((p, p))
    C = np.empty((p, p))
    out = 0.0
    for g in range(acc.shape[0]):
        _unpack_sym(acc[g], 1 + p, S)
        _build_m(Lam, S, M, LS)
        out += _chol(M, C)
    return out
