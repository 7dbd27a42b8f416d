"""The Laplace gradient of one vector-valued random-effect term at its mode (Numba).

The formulas of :mod:`~bayesglmm.engines.ml.vector_laplace`'s docstring: one more pass over
the rows at the mode (:func:`_grad_sums`, :func:`_grad_sums2` for ``p = 2``) accumulates
``R_g = sum dw z z z``, ``B_g = sum w z x'`` and ``Q_g = sum dw z z x'`` beside the mode's
sums, and the per-group algebra (:func:`_group_gradient`, :func:`_group_gradient2`) turns
them into the gradient over ``(theta, beta)``, the mode sensitivities and the conditional
covariances.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesglmm.engines.ml.scalar_laplace import _row
from bayesglmm.engines.ml.vector_mode import _build_m, _chol, _chol_solve, _m2, _unpack_sym


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
