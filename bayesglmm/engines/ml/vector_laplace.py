"""Fused Laplace deviance and gradient for one vector-valued random-effect term (Numba).

The same computation as :func:`~bayesglmm.engines.ml.pirls.pirls` on the blocked structure
(:mod:`~bayesglmm.engines.ml.blocked_cholesky`) followed by
:meth:`~bayesglmm.engines.ml.laplace.LaplaceObjective._blocked_gradient`, for one grouping
factor with ``p >= 2`` terms (``(1 + x | g)``) and the canonical links of
:data:`~bayesglmm.engines.ml.scalar_laplace.KIND_CODES`, but in a few passes over the rows
and with the per-group ``p x p`` algebra in closed form, as
:mod:`~bayesglmm.engines.ml.scalar_laplace` does for one scalar term.

With ``z_i`` the row's random-effect columns, ``Lambda`` the relative Cholesky factor and
``b_g = Lambda u_g``, each group has ``eta_i = eta_fixed_i + z_i' b_g`` and

    M_g = I + Lambda' S_g Lambda,   S_g = sum_i w_i z_i z_i',
    mode: Lambda' sum_i z_i d1_i = u_g,
    deviance = sum_g (-2 sum_i ll_i + |u_g|^2 + log det M_g).

One pass over the rows accumulates ``S_g`` and ``sum z d1`` in the ``z`` space (``Lambda``
is applied per group, not per row); the mode search takes per-group Newton steps with step
halving, as ``pirls``.  The gradient (canonical link: observed = Fisher information) needs,
beyond those, ``R_g = sum dw z z z``, ``Q_g = sum dw z z x'`` and ``B_g = sum w z x'``
(``dw = dw/d eta``), from one more pass at the mode.  With ``K = Lambda M^-1 Lambda'``,
``T = sum_ab K_ab R[a, b, :]`` and, for ``theta`` element ``Lambda[r, c]``,

    du/dtheta = M^-1 (e_c (sum z d1)_r - Lambda' S_{:, r} u_c),
    d dev/dtheta = -2 (sum z d1)_r u_c + 2 (M^-1 Lambda' S)_{c r} + T_r u_c + T' Lambda du,
    du/dbeta = -M^-1 Lambda' B,
    d dev/dbeta = -2 X' d1 + sum_ab K_ab Q[a, b, :] + T' Lambda du/dbeta

(the envelope theorem removes the mode's effect on ``-2 ll + |u|^2``; the log-determinant
sees it through the weights).  Rows may come in any order (scatter-adds over the group
index).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesglmm.design.types import RandomBlock
from bayesglmm.engines.ml.scalar_laplace import KIND_CODES, _row

__all__ = ["VectorLaplace"]


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
def _group_gradient2(Lam, u, acc, k, rr, cc, du_dt, du_db, Kout):  # pragma: no cover
    """:func:`_group_gradient` for ``p = 2``: the 2 x 2 algebra in closed form."""
    L = u.shape[0]
    nt = rr.size
    oR = 6
    oB = 12
    oQ = oB + 2 * k
    l00 = Lam[0, 0]
    l10 = Lam[1, 0]
    l11 = Lam[1, 1]
    LS = np.empty((2, 2))
    Mi = np.empty((2, 2))
    MLS = np.empty((2, 2))
    T = np.empty(2)
    dF = np.empty(2)
    g_theta = np.zeros(nt)
    g_beta = np.zeros(k)
    logdet = 0.0
    for g in range(L):
        row = acc[g]
        M00, M10, M11, LS[0, 0], LS[0, 1], LS[1, 0], LS[1, 1] = _m2(Lam, row, 3)
        det = M00 * M11 - M10 * M10
        if not (M00 > 0.0 and det > 0.0):
            return math.nan, g_theta, g_beta
        logdet += math.log(det)
        Mi[0, 0] = M11 / det
        Mi[1, 1] = M00 / det
        Mi[0, 1] = Mi[1, 0] = -M10 / det
        # K = Lambda Minv Lambda'
        LM00 = l00 * Mi[0, 0]
        LM01 = l00 * Mi[0, 1]
        LM10 = l10 * Mi[0, 0] + l11 * Mi[1, 0]
        LM11 = l10 * Mi[0, 1] + l11 * Mi[1, 1]
        K00 = LM00 * l00
        K10 = LM10 * l00
        K11 = LM10 * l10 + LM11 * l11
        Kout[g, 0, 0] = K00
        Kout[g, 1, 0] = K10
        Kout[g, 0, 1] = LM00 * l10 + LM01 * l11
        Kout[g, 1, 1] = K11
        for a in range(2):
            for b in range(2):
                MLS[a, b] = Mi[a, 0] * LS[0, b] + Mi[a, 1] * LS[1, b]
        # T_c = sum_ab K_ab R[a, b, c]; R packed (0,0), (1,0), (1,1) then c
        T[0] = K00 * row[oR] + 2.0 * K10 * row[oR + 2] + K11 * row[oR + 4]
        T[1] = K00 * row[oR + 1] + 2.0 * K10 * row[oR + 3] + K11 * row[oR + 5]
        LT0 = l00 * T[0] + l10 * T[1]
        LT1 = l11 * T[1]
        for t in range(nt):
            r, c = rr[t], cc[t]
            uc = u[g, c]
            zr = row[1 + r]
            dF[0] = -LS[0, r] * uc
            dF[1] = -LS[1, r] * uc
            dF[c] += zr
            v0 = Mi[0, 0] * dF[0] + Mi[0, 1] * dF[1]
            v1 = Mi[1, 0] * dF[0] + Mi[1, 1] * dF[1]
            du_dt[g, 0, t] = v0
            du_dt[g, 1, t] = v1
            g_theta[t] += -2.0 * zr * uc + 2.0 * MLS[c, r] + T[r] * uc + LT0 * v0 + LT1 * v1
        for j in range(k):
            q = K00 * row[oQ + j] + 2.0 * K10 * row[oQ + k + j] + K11 * row[oQ + 2 * k + j]
            bw0 = row[oB + j]
            bw1 = row[oB + k + j]
            f0 = -(l00 * bw0 + l10 * bw1)
            f1 = -l11 * bw1
            v0 = Mi[0, 0] * f0 + Mi[0, 1] * f1
            v1 = Mi[1, 0] * f0 + Mi[1, 1] * f1
            du_db[g, 0, j] = v0
            du_db[g, 1, j] = v1
            g_beta[j] += q + LT0 * v0 + LT1 * v1
    return logdet, g_theta, g_beta


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
def _grad_sums(kind, y, n, ef, X, Z, ptr, B):  # pragma: no cover - numba
    """Per group at the mode, packed in ``acc[g]``: ``ll``,
    ``sum z d1``, ``S = sum w z z'``, ``R = sum dw z z z``, ``Bw = sum w z x'``,
    ``Q = sum dw z z x'`` (``S``, ``R``, ``Q`` on the lower triangle of their first two
    indices); and ``X' d1``."""
    k = X.shape[1]
    L, p = B.shape
    tri = p * (p + 1) // 2
    oS = 1 + p
    oR = oS + tri
    oB = oR + tri * p
    oQ = oB + p * k
    acc = np.zeros((L, oQ + tri * k))
    xd1 = np.zeros(k)
    for g in range(L):
        row = acc[g]
        for i in range(ptr[g], ptr[g + 1]):
            e = ef[i]
            for a in range(p):
                e += Z[i, a] * B[g, a]
            ll, d1, w, dw = _row(kind, y[i], n[i], e)
            row[0] += ll
            for j in range(k):
                xd1[j] += X[i, j] * d1
            m = 0
            for a in range(p):
                za = Z[i, a]
                row[1 + a] += za * d1
                wa = w * za
                for j in range(k):
                    row[oB + a * k + j] += wa * X[i, j]
                for b in range(a + 1):
                    zab = za * Z[i, b]
                    row[oS + m] += w * zab
                    dz = dw * zab
                    for c in range(p):
                        row[oR + m * p + c] += dz * Z[i, c]
                    for j in range(k):
                        row[oQ + m * k + j] += dz * X[i, j]
                    m += 1
    return acc, xd1


@njit(cache=True, nogil=True)
def _grad_sums2(kind, y, n, ef, X, Z, ptr, B):  # pragma: no cover - numba
    """:func:`_grad_sums` for ``p = 2``, the ``z``-only sums in registers (the same layout)."""
    k = X.shape[1]
    L = B.shape[0]
    oB = 12
    oQ = oB + 2 * k
    acc = np.zeros((L, oQ + 3 * k))
    xd1 = np.zeros(k)
    for g in range(L):
        b0 = B[g, 0]
        b1 = B[g, 1]
        row = acc[g]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = s11 = 0.0
        for i in range(ptr[g], ptr[g + 1]):
            z0 = Z[i, 0]
            z1 = Z[i, 1]
            ll, d1, w, dw = _row(kind, y[i], n[i], ef[i] + z0 * b0 + z1 * b1)
            s0 += ll
            s1 += z0 * d1
            s2 += z1 * d1
            w0 = w * z0
            w1 = w * z1
            s3 += w0 * z0
            s4 += w1 * z0
            s5 += w1 * z1
            d00 = dw * z0 * z0
            d10 = dw * z1 * z0
            d11 = dw * z1 * z1
            s6 += d00 * z0  # R: (a, b) in (0, 0), (1, 0), (1, 1), then c
            s7 += d00 * z1
            s8 += d10 * z0
            s9 += d10 * z1
            s10 += d11 * z0
            s11 += d11 * z1
            for j in range(k):
                xj = X[i, j]
                xd1[j] += d1 * xj
                row[oB + j] += w0 * xj
                row[oB + k + j] += w1 * xj
                row[oQ + j] += d00 * xj
                row[oQ + k + j] += d10 * xj
                row[oQ + 2 * k + j] += d11 * xj
        row[0] = s0
        row[1] = s1
        row[2] = s2
        row[3] = s3
        row[4] = s4
        row[5] = s5
        row[6] = s6
        row[7] = s7
        row[8] = s8
        row[9] = s9
        row[10] = s10
        row[11] = s11
    return acc, xd1


@njit(cache=True, nogil=True)
def _group_gradient(Lam, u, acc, k, rr, cc, du_dt, du_db, Kout):  # pragma: no cover
    """Per group algebra of the module docstring on :func:`_grad_sums`'s ``acc``; returns
    ``(log det sum, g_theta, g_beta without -2 X'd1)`` and fills the mode sensitivities
    ``du_dt`` (L, p, nt), ``du_db`` (L, p, k) and ``Kout[g] = Lambda M_g^-1 Lambda'`` (the
    conditional covariance of ``b_g``).  NaN log-determinant when some ``M_g`` is not
    positive definite."""
    L, p = u.shape
    nt = rr.size
    tri = p * (p + 1) // 2
    oS = 1 + p
    oR = oS + tri
    oB = oR + tri * p
    oQ = oB + p * k
    S = np.empty((p, p))
    M = np.empty((p, p))
    LS = np.empty((p, p))
    C = np.empty((p, p))
    Minv = np.empty((p, p))
    K = np.empty((p, p))
    LM = np.empty((p, p))
    MLS = np.empty((p, p))
    T = np.empty(p)
    LT = np.empty(p)
    e = np.zeros(p)
    col = np.empty(p)
    dF = np.empty(p)
    g_theta = np.zeros(nt)
    g_beta = np.zeros(k)
    logdet = 0.0
    for g in range(L):
        row = acc[g]
        _unpack_sym(row, oS, S)
        _build_m(Lam, S, M, LS)
        ld = _chol(M, C)
        if math.isnan(ld):
            return math.nan, g_theta, g_beta
        logdet += ld
        for j in range(p):  # Minv by columns
            e[:] = 0.0
            e[j] = 1.0
            _chol_solve(C, e, col)
            for a in range(p):
                Minv[a, j] = col[a]
        for a in range(p):  # LM = Lambda Minv
            for b in range(p):
                s = 0.0
                for c in range(a + 1):
                    s += Lam[a, c] * Minv[c, b]
                LM[a, b] = s
        for a in range(p):  # K = Lambda Minv Lambda'
            for b in range(p):
                s = 0.0
                for c in range(b + 1):
                    s += LM[a, c] * Lam[b, c]
                K[a, b] = s
                Kout[g, a, b] = s
        for a in range(p):  # MLS = Minv Lambda' S
            for b in range(p):
                s = 0.0
                for c in range(p):
                    s += Minv[a, c] * LS[c, b]
                MLS[a, b] = s
        for c in range(p):  # T_c = sum_ab K_ab R[a, b, c] (R symmetric in a, b)
            s = 0.0
            m = 0
            for a in range(p):
                for b in range(a + 1):
                    f = K[a, b] if a == b else K[a, b] + K[b, a]
                    s += f * row[oR + m * p + c]
                    m += 1
            T[c] = s
        for a in range(p):  # LT = Lambda' T
            s = 0.0
            for r in range(a, p):
                s += Lam[r, a] * T[r]
            LT[a] = s
        for t in range(nt):
            r, c = rr[t], cc[t]
            uc = u[g, c]
            zr = row[1 + r]
            for a in range(p):  # dF = e_c zd_r - Lambda' S[:, r] u_c
                dF[a] = -LS[a, r] * uc
            dF[c] += zr
            s = -2.0 * zr * uc + 2.0 * MLS[c, r] + T[r] * uc
            for a in range(p):
                v = 0.0
                for b in range(p):
                    v += Minv[a, b] * dF[b]
                du_dt[g, a, t] = v
                s += LT[a] * v
            g_theta[t] += s
        for j in range(k):
            s = 0.0
            m = 0
            for a in range(p):
                for b in range(a + 1):
                    f = K[a, b] if a == b else K[a, b] + K[b, a]
                    s += f * row[oQ + m * k + j]
                    m += 1
            for a in range(p):  # dF = -Lambda' Bw[:, j]
                v = 0.0
                for r in range(a, p):
                    v -= Lam[r, a] * row[oB + r * k + j]
                dF[a] = v
            for a in range(p):
                v = 0.0
                for b in range(p):
                    v += Minv[a, b] * dF[b]
                du_db[g, a, j] = v
                s += LT[a] * v
            g_beta[j] += s
    return logdet, g_theta, g_beta


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


# ---------------------------------------------------------------------------- driver
class VectorLaplace:
    """The fused Laplace deviance of one vector-valued term for a fixed design.

    Parameters
    ----------
    kind : int
        :data:`~bayesglmm.engines.ml.scalar_laplace.KIND_CODES` value.
    y, n : ndarray (N,)
        Response and trials (case weights folded in, as
        :class:`~bayesglmm.engines.ml.pirls.FamilyKernel` holds them).
    X : ndarray (N, k)
    offset : ndarray (N,)
    block : RandomBlock
        The one random-effect block (``p >= 2`` terms).
    correlated : bool
        Whether ``theta`` holds the full lower triangle of ``Lambda`` (column-major, lme4's
        order) or only its diagonal.

    Notes
    -----
    The rows are kept sorted by group (stable), so every pass reads each group's rows in
    one run and its sums stay in cache: with the rows in data order, the scatter-adds into
    per-group sums of ~30 numbers (the gradient pass) missed the cache at most rows.
    """

    def __init__(
        self,
        kind: int,
        y: np.ndarray,
        n: np.ndarray,
        X: np.ndarray,
        offset: np.ndarray,
        block: RandomBlock,
        correlated: bool,
    ) -> None:
        self.kind = int(kind)
        self.L, self.p = block.n_levels, block.n_terms
        idx = np.asarray(block.index, dtype=np.intp)
        order = np.argsort(idx, kind="stable")
        self.ptr = np.searchsorted(idx[order], np.arange(self.L + 1)).astype(np.intp)
        self.y = np.ascontiguousarray(np.asarray(y, dtype=float)[order])
        self.n = np.ascontiguousarray(np.asarray(n, dtype=float)[order])
        self.X = np.ascontiguousarray(np.asarray(X, dtype=float)[order])
        self.offset = np.ascontiguousarray(np.asarray(offset, dtype=float)[order])
        self.Z = np.ascontiguousarray(np.asarray(block.Z, dtype=float)[order])
        p = self.p
        rc = (
            [(r, c) for c in range(p) for r in range(c, p)]
            if correlated
            else [(t, t) for t in range(p)]
        )
        self.rr = np.array([r for r, _ in rc], dtype=np.intp)
        self.cc = np.array([c for _, c in rc], dtype=np.intp)

    @classmethod
    def for_design(  # noqa: ANN206
        cls,
        design,  # noqa: ANN001
        fam,  # noqa: ANN001
        layout,  # noqa: ANN001
        X: np.ndarray,
        offset: np.ndarray,
    ):
        """The kernel for a design with one block of ``p >= 2`` terms and a canonical link
        (:data:`~bayesglmm.engines.ml.scalar_laplace.KIND_CODES`); None otherwise."""
        blocks = design.blocks
        code = KIND_CODES.get(fam.kind)
        if code is None or len(blocks) != 1 or blocks[0].n_terms < 2:
            return None
        t = fam.trials
        n = np.ones(fam.y.size) if t is None else t
        return cls(code, fam.y, n, X, offset, blocks[0], layout.correlated[0])

    def evaluate(
        self,
        beta: np.ndarray,
        Lam: np.ndarray,
        u0: np.ndarray,
        *,
        gradient: bool = True,
        tol: float = 1e-9,
        maxit: int = 60,
    ) -> dict:
        """Laplace deviance (without data constants) at ``(Lambda, beta)`` and its gradient.

        Parameters
        ----------
        beta : ndarray (k,)
            Fixed effects (``eta_fixed = offset + X beta``).
        Lam : ndarray (p, p)
            Lower-triangular relative Cholesky factor.
        u0 : ndarray (L * p,)
            Warm start of the spherical modes (level-major).
        gradient : bool
            Also return ``d/d[theta, beta]`` and the mode sensitivities.
        tol : float
            Newton-decrement tolerance per group (then one more, exact, Newton step), as
            ``pirls``'s ``quad_tol``.
        maxit : int

        Returns
        -------
        dict
            ``deviance`` (``sum(-2 ll_g + |u_g|^2 + log det M_g)``, no data constants),
            ``u`` (L * p), ``converged``, ``n_iter``, ``ok`` (False on non-finite values
            or a curvature that is not positive definite); with ``gradient``:
            ``gradient`` (n_theta + k), ``du_dtheta`` (L * p, n_theta), ``du_dbeta``
            (L * p, k) and ``cond_var`` (L, p, p): ``Lambda M_g^-1 Lambda'``, the
            conditional covariances of the modes ``b_g = Lambda u_g``.
        """
        L, p = self.L, self.p
        ef = self.offset + self.X @ np.asarray(beta, dtype=float)
        Lam = np.ascontiguousarray(Lam, dtype=float)
        u0 = np.ascontiguousarray(u0, dtype=float).reshape(L, p)
        args = (self.kind, self.y, self.n, ef)
        u, acc, converged, n_iter, ok = _mode(
            *args, self.Z, self.ptr, Lam, u0, tol, maxit, not gradient
        )
        out = {"u": u.ravel(), "converged": bool(converged), "n_iter": int(n_iter), "ok": ok}
        if not ok:
            out["deviance"] = math.nan
            return out
        uu = float(np.sum(u * u))
        if not gradient:
            out["deviance"] = float(-2.0 * acc[:, 0].sum() + uu + _logdet_sum(Lam, acc))
            out["ok"] = bool(np.isfinite(out["deviance"]))
            return out
        B = np.empty((L, p))
        _apply_lambda(Lam, u, B)
        sums = _grad_sums2 if p == 2 else _grad_sums
        acc, xd1 = sums(*args, self.X, self.Z, self.ptr, B)
        nt, k = self.rr.size, self.X.shape[1]
        du_dt = np.empty((L, p, nt))
        du_db = np.empty((L, p, k))
        cond_var = np.empty((L, p, p))
        group = _group_gradient2 if p == 2 else _group_gradient
        logdet, g_theta, g_beta = group(Lam, u, acc, k, self.rr, self.cc, du_dt, du_db, cond_var)
        out["deviance"] = float(-2.0 * acc[:, 0].sum() + uu + logdet)
        out["ok"] = bool(np.isfinite(out["deviance"]))
        out["gradient"] = np.concatenate([g_theta, g_beta - 2.0 * xd1])
        out["du_dtheta"] = du_dt.reshape(L * p, nt)
        out["du_dbeta"] = du_db.reshape(L * p, k)
        out["cond_var"] = cond_var
        return out
