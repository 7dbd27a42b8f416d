"""Numba kernels of the blocked Cholesky factor (:mod:`~bayesglmm.engines.ml.blocked_factor`).

The batched ``p1 x p1`` Cholesky of factor 1's diagonal blocks (:func:`_chol_blocks`),
``L21`` on the ``M21`` pattern (:func:`_l21`), the Schur-complement update (:func:`_schur`),
the two triangular sweeps of a solve (:func:`_forward`, :func:`_backward`) and the selected
inverse on factor 1's blocks and the ``M21`` pattern (:func:`_selinv_12`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _l21(L11, lev, V, X):  # pragma: no cover - numba
    """``X[e] = V[e] L11[lev[e]]^-T`` (forward substitution per entry)."""
    ne, p = V.shape
    for e in range(ne):
        Lj = L11[lev[e]]
        for k in range(p):
            s = V[e, k]
            for j in range(k):
                s -= Lj[k, j] * X[e, j]
            X[e, k] = s / Lj[k, k]


@njit(cache=True, nogil=True)
def _schur(S, X, r2, ptr, q2, bs):  # pragma: no cover - numba
    """``S -= L21 L21'`` on the lower triangle; entries of a level sorted by row.

    ``S`` is flat: dense ``(q2, q2)`` when ``bs == 0``, else ``(q2 / bs, bs, bs)`` blocks.
    """
    nlev = ptr.size - 1
    p = X.shape[1]
    for j in range(nlev):
        for a in range(ptr[j], ptr[j + 1]):
            ra = r2[a]
            for b in range(ptr[j], a + 1):
                s = 0.0
                for k in range(p):
                    s += X[a, k] * X[b, k]
                if bs == 0:
                    S[ra * q2 + r2[b]] -= s
                else:
                    S[ra * bs + r2[b] % bs] -= s


@njit(cache=True, nogil=True)
def _forward(L11, B1, X, lev, r2, B2):  # pragma: no cover - numba
    """In place: ``B1 <- L11^-1 B1`` (per level), then ``B2 <- B2 - L21 B1``."""
    nlev, p, _ = L11.shape
    m = B1.shape[1]
    for j in range(nlev):
        Lj = L11[j]
        o = j * p
        for c in range(m):
            for k in range(p):
                s = B1[o + k, c]
                for i in range(k):
                    s -= Lj[k, i] * B1[o + i, c]
                B1[o + k, c] = s / Lj[k, k]
    for e in range(lev.size):
        o = lev[e] * p
        r = r2[e]
        for k in range(p):
            x = X[e, k]
            for c in range(m):
                B2[r, c] -= x * B1[o + k, c]


@njit(cache=True, nogil=True)
def _backward(L11, Y1, X, lev, r2, X2):  # pragma: no cover - numba
    """In place: ``Y1 <- L11^-T (Y1 - L21' X2)``."""
    nlev, p, _ = L11.shape
    m = Y1.shape[1]
    for e in range(lev.size):
        o = lev[e] * p
        r = r2[e]
        for k in range(p):
            x = X[e, k]
            for c in range(m):
                Y1[o + k, c] -= x * X2[r, c]
    for j in range(nlev):
        Lj = L11[j]
        o = j * p
        for c in range(m):
            for k in range(p - 1, -1, -1):
                s = Y1[o + k, c]
                for i in range(k + 1, p):
                    s -= Lj[i, k] * Y1[o + i, c]
                Y1[o + k, c] = s / Lj[k, k]


@njit(cache=True, nogil=True)
def _selinv_12(L11, X, lev, r2, ptr, Sinv, q2, bs, selD, selV):  # pragma: no cover - numba
    """Selected inverse on the factor-1 blocks and the ``M21`` pattern.

    With ``Y = M21 D^-1`` (entry-wise ``Y[e] = X[e] L11^-1``):
    ``(M^-1)21 = -S^-1 Y`` on the pattern and ``(M^-1)11_j = D_j^-1 - Y_j' (M^-1)21_j``.
    ``Sinv`` is flat, dense or in blocks as in :func:`_schur`.
    """
    nlev, p, _ = L11.shape
    Y = np.empty((X.shape[0], p))
    _selinv_y(L11, X, lev, Y, selD)
    for j in range(nlev):
        for e in range(ptr[j], ptr[j + 1]):
            re = r2[e]
            for k in range(p):
                s = 0.0
                for f in range(ptr[j], ptr[j + 1]):
                    if bs == 0:
                        s += Sinv[re * q2 + r2[f]] * Y[f, k]
                    else:
                        s += Sinv[re * bs + r2[f] % bs] * Y[f, k]
                selV[e, k] = -s
        for e in range(ptr[j], ptr[j + 1]):
            for a in range(p):
                for b in range(p):
                    selD[j, a, b] -= Y[e, a] * selV[e, b]


@njit(cache=True, nogil=True)
def _chol_blocks(buf, L1, p, out):  # pragma: no cover - numba
    """Per level ``j``: ``out[j] = chol(D_j + I)``, ``D_j``'s lower triangle read from
    ``buf[j p p : (j + 1) p p]`` (row-major).  Returns False at a non-positive pivot or a
    non-finite value (``out`` then undefined)."""
    for j in range(L1):
        o = j * p * p
        for c in range(p):
            s = buf[o + c * p + c] + 1.0
            for k in range(c):
                s -= out[j, c, k] * out[j, c, k]
            if not (s > 0.0) or not np.isfinite(s):
                return False
            d = np.sqrt(s)
            out[j, c, c] = d
            for r in range(c + 1, p):
                t = buf[o + r * p + c]
                for k in range(c):
                    t -= out[j, r, k] * out[j, c, k]
                out[j, r, c] = t / d
            for r in range(c):
                out[j, r, c] = 0.0
    return True


@njit(cache=True, nogil=True)
def _scatter_levels(X, lev, r2, ptr, lo, hi, out):  # pragma: no cover - numba
    """``out[(lev[e] - lo) p + k, r2[e]] = X[e, k]`` for the entries of levels ``lo..hi - 1``
    of factor 1 (``out`` zeroed here): the coupling block ``L21`` (or ``Y``) of those levels
    as a dense ``((hi - lo) p, q2)`` matrix, for a BLAS product."""
    out[:] = 0.0
    p = X.shape[1]
    for e in range(ptr[lo], ptr[hi]):
        o = (lev[e] - lo) * p
        for k in range(p):
            out[o + k, r2[e]] = X[e, k]


@njit(cache=True, nogil=True)
def _selinv_y(L11, X, lev, Y, selD):  # pragma: no cover - numba
    """``Y[e] = X[e] L11[lev[e]]^-1`` (back substitution) and ``selD[j] = D_j^-1 =
    L_j^-T L_j^-1``: the first two steps of the selected inverse, on the pattern
    (:func:`_selinv_12`) or with a dense coupling block (:func:`_selinv_gather`)."""
    nlev, p, _ = L11.shape
    for e in range(X.shape[0]):
        Lj = L11[lev[e]]
        for k in range(p - 1, -1, -1):
            s = X[e, k]
            for i in range(k + 1, p):
                s -= Lj[i, k] * Y[e, i]
            Y[e, k] = s / Lj[k, k]
    Linv = np.empty((p, p))
    for j in range(nlev):
        Lj = L11[j]
        for c in range(p):
            for k in range(p):
                if k < c:
                    Linv[k, c] = 0.0
                    continue
                s = 1.0 if k == c else 0.0
                for i in range(c, k):
                    s -= Lj[k, i] * Linv[i, c]
                Linv[k, c] = s / Lj[k, k]
        for a in range(p):
            for b in range(p):
                s = 0.0
                for k in range(p):
                    s += Linv[k, a] * Linv[k, b]
                selD[j, a, b] = s


@njit(cache=True, nogil=True)
def _selinv_gather(Z, Y, lev, r2, ptr, lo, hi, selD, selV):  # pragma: no cover - numba
    """Levels ``lo..hi - 1``, with ``Z = Y2 S^-1`` (``Y2``: their ``Y`` as a dense matrix):
    ``selV[e, k] = -Z[(lev[e] - lo) p + k, r2[e]]`` and ``selD[j] -= Y_j' selV_j``."""
    p = Y.shape[1]
    for e in range(ptr[lo], ptr[hi]):
        j = lev[e]
        o = (j - lo) * p
        for k in range(p):
            selV[e, k] = -Z[o + k, r2[e]]
        for a in range(p):
            for b in range(p):
                selD[j, a, b] -= Y[e, a] * selV[e, b]
