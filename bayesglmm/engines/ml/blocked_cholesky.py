"""One positive-definite factorization of ``M = A' W A + I`` for any random-effect structure.

lme4's spherical form: with ``A = Z Lambda(theta)`` and diagonal row weights ``W >= 0``,
``M`` is symmetric positive definite at every ``theta`` (``M >= I``), including
``theta = 0``, so a Cholesky factorization ``M = L L'`` always exists; no pivoting, no LU.

The structure is that of MixedModels.jl (``src/linalg/``, ``BlockedSparse``): the grouping
factors are ordered by number of levels, largest first.  Writing ``1`` for the first
(largest) factor and ``2`` for all the others together,

    M = [[D,   M21'],        L = [[L11,  0  ],
         [M21, M22 ]],            [L21,  L22]],

* ``D`` is block diagonal (one ``p1 x p1`` block per level of the first factor), so
  ``L11`` is a stack of small Cholesky factors (batched);
* ``M21`` is sparse: level ``j`` of factor 1 touches only the levels of the other factors
  that share a row with it.  Its pattern is stored by level of factor 1 (a short list of
  rows per level), and so is ``L21 = M21 L11^-T``, which has the same pattern;
* the Schur complement ``M22 - L21 L21'`` is small (the other factors' levels) and dense;
  LAPACK factors it (``L22``).  With two factors, the larger nested in the other
  (``(1 | a / b)``: every level of ``b:a`` meets one level of ``a``), it stays block
  diagonal and is factored as a ``(levels, p2, p2)`` stack, whatever its size.  Beyond
  :data:`MAX_DENSE_SCHUR` otherwise, a clear error (no sparse Cholesky of the Schur
  complement yet: three or more factors with two large ones).

The sparsity analysis (the pattern of ``M21``, and for each row of the data and each pair
of random-effect terms the slot of ``M`` it adds to) runs once, when the structure is
built; each PIRLS step is then one pass over the rows (Numba) that adds ``w a a'`` into
those slots, a batched small Cholesky, one sweep over the ``M21`` pattern and a dense
Cholesky of the Schur complement.

The same slots give the selected inverse (``M^-1`` on the pattern of ``M``: the diagonal
blocks of factor 1, the ``M21`` pattern and the dense ``M22`` block), which is all the
analytic gradient of the Laplace deviance needs
(:meth:`BlockedFactor.selected_inverse`).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import linalg, sparse

from bayesglmm.design.types import RandomBlock
from bayesglmm.engines.ml.scalar_laplace import KIND_CODES, _row
from bayesglmm.errors import InferenceError

__all__ = ["MAX_DENSE_SCHUR", "BlockedFactor", "BlockedStructure"]

#: largest Schur complement (sum of levels x terms of all but the largest factor) factored
#: densely: 4000^2 doubles are 128 MB, and its Cholesky ~2e10 flops per PIRLS step
MAX_DENSE_SCHUR = 4000


# ---------------------------------------------------------------------------- kernels
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
    ne = X.shape[0]
    Y = np.empty((ne, p))
    for e in range(ne):
        Lj = L11[lev[e]]
        # Y[e] L = X[e]  <=>  L' Y[e]' = X[e]'  (back substitution)
        for k in range(p - 1, -1, -1):
            s = X[e, k]
            for i in range(k + 1, p):
                s -= Lj[i, k] * Y[e, i]
            Y[e, k] = s / Lj[k, k]
    Linv = np.empty((p, p))
    for j in range(nlev):
        Lj = L11[j]
        # Linv = L^-1 (lower), D^-1 = Linv' Linv
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
def _rows(kind, y, ntr, ef, a, cols, u, eta, ll, d1, w):  # pragma: no cover - numba
    """``eta = ef + A u`` and the row log-likelihood, score and Fisher weight, in one pass."""
    n, P = a.shape
    for i in range(n):
        e = ef[i]
        for T in range(P):
            e += a[i, T] * u[cols[i, T]]
        eta[i] = e
        ll[i], d1[i], w[i], _ = _row(kind, y[i], ntr[i], e)


@njit(cache=True, nogil=True)
def _rows_accumulate(
    kind, y, ntr, ef, a, cols, u, slots, pair_t, pair_u, eta, ll, d1, w, buf, atd
):  # pragma: no cover - numba
    """:func:`_rows` fused with :func:`_accumulate` (at the new weights) and ``A' d1``:
    one pass over the rows gives everything a Newton step of PIRLS needs."""
    buf[:] = 0.0
    atd[:] = 0.0
    n, P = a.shape
    npair = pair_t.size
    for i in range(n):
        e = ef[i]
        for T in range(P):
            e += a[i, T] * u[cols[i, T]]
        eta[i] = e
        lli, di, wi, _ = _row(kind, y[i], ntr[i], e)
        ll[i] = lli
        d1[i] = di
        w[i] = wi
        for k in range(npair):
            buf[slots[i, k]] += wi * a[i, pair_t[k]] * a[i, pair_u[k]]
        for T in range(P):
            atd[cols[i, T]] += a[i, T] * di


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


# ---------------------------------------------------------------------------- structure
class BlockedStructure:
    """``A = Z Lambda`` for any number of random-effect blocks, with a blocked Cholesky.

    Same interface as the other structures of :mod:`bayesglmm.engines.ml.pirls`
    (``set_factors``, ``au``, ``atv``, ``unit_sum``, ``unit_sum_u``, ``factor``).  The
    random effects ``u`` are in the design's block order (each block level-major); the
    factorization works internally with the blocks ordered by number of levels.

    With one block (a vector-valued term) the Schur complement is empty and the groups are
    independent units (per-group step halving in PIRLS); otherwise there is one unit.

    Parameters
    ----------
    blocks : tuple of RandomBlock
    n : int
        Number of rows.

    Raises
    ------
    InferenceError
        The Schur complement (levels times terms of all factors but the largest) is larger
        than :data:`MAX_DENSE_SCHUR`.
    """

    kind = "blocked"

    def __init__(self, blocks: tuple[RandomBlock, ...], n: int) -> None:
        self.blocks = tuple(blocks)
        self.n = int(n)
        nb = len(blocks)
        ps = [b.n_terms for b in blocks]
        Ls = [b.n_levels for b in blocks]
        ext_off = np.concatenate([[0], np.cumsum([p * L for p, L in zip(ps, Ls, strict=True)])])
        self.q = int(ext_off[-1])
        self.ext_offsets = ext_off[:-1].astype(np.intp)
        # internal order: most levels first (stable, so ties keep the formula's order)
        order = sorted(range(nb), key=lambda b: -Ls[b])
        self.order = order
        b1 = order[0]
        self.p1, self.L1 = ps[b1], Ls[b1]
        self.q1 = self.p1 * self.L1
        self.q2 = self.q - self.q1
        # internal -> external permutation of u
        perm = [ext_off[b1] + np.arange(self.q1)]
        int_off2 = {}
        pos = 0
        for b in order[1:]:
            int_off2[b] = pos
            perm.append(ext_off[b] + np.arange(ps[b] * Ls[b]))
            pos += ps[b] * Ls[b]
        self.perm = np.concatenate(perm).astype(np.intp)
        # terms in internal order: (block, column)
        terms = [(b, t) for b in order for t in range(ps[b])]
        self.terms = terms
        P = len(terms)
        self.P = P
        idx = [np.ascontiguousarray(blocks[b].index, dtype=np.intp) for b in range(nb)]
        self.Zraw = [np.asarray(b.Z, dtype=float) for b in blocks]
        # external u column of every row and term; internal remainder column (-1 in block 1)
        cols_ext = np.empty((n, P), dtype=np.int32 if self.q < 2**31 else np.int64)
        r2cols = np.full((n, P), -1, dtype=np.intp)
        for T, (b, t) in enumerate(terms):
            cols_ext[:, T] = ext_off[b] + idx[b] * ps[b] + t
            if b != b1:
                r2cols[:, T] = int_off2[b] + idx[b] * ps[b] + t
        self.cols_ext = cols_ext
        lev1 = idx[b1]
        self.lev1 = lev1
        # M21 pattern: unique (level of factor 1, remainder row), sorted by level then row
        if self.q2:
            r2_rows = r2cols[:, self.p1 :]
            keys = (lev1[:, None] * self.q2 + r2_rows).ravel()
            ukeys, inv = np.unique(keys, return_inverse=True)
            ent_of = inv.reshape(n, P - self.p1)
            self.e_lev = (ukeys // self.q2).astype(np.intp)
            self.e_r2 = (ukeys % self.q2).astype(np.intp)
        else:
            ent_of = np.zeros((n, 0), dtype=np.intp)
            self.e_lev = np.zeros(0, dtype=np.intp)
            self.e_r2 = np.zeros(0, dtype=np.intp)
        self.ne = self.e_lev.size
        self.e_ptr = np.searchsorted(self.e_lev, np.arange(self.L1 + 1)).astype(np.intp)
        # two factors, the largest nested in the other (every level of factor 1 meets one
        # level of factor 2): the Schur complement stays block diagonal, (L2, p2, p2)
        self.bs = 0
        if len(order) == 2 and self.q2:
            p2 = ps[order[1]]
            lv2 = self.e_r2 // p2
            lo = np.full(self.L1, np.iinfo(np.intp).max)
            hi = np.full(self.L1, -1)
            np.minimum.at(lo, self.e_lev, lv2)
            np.maximum.at(hi, self.e_lev, lv2)
            if np.array_equal(lo[self.e_lev], hi[self.e_lev]):
                self.bs = p2
        if self.q2 > MAX_DENSE_SCHUR and not self.bs:
            names = ", ".join(f"`{blocks[b].group}` ({Ls[b]} levels)" for b in order[1:])
            raise InferenceError(
                f"the random-effect structure couples {self.q2} random effects of {names} to "
                f"those of the largest factor `{blocks[b1].group}`; the dense Schur complement "
                f"is limited to {MAX_DENSE_SCHUR} (x terms). Use fewer levels in the smaller "
                "grouping factors or another method (e.g. NUTS)"
            )
        # slots of M in the buffer [D (L1 p1 p1) | V21 (ne p1) | S (q2 q2, or q2 bs)]
        self.offV = self.L1 * self.p1 * self.p1
        self.offS = self.offV + self.ne * self.p1
        self.nbuf = self.offS + self.q2 * (self.bs or self.q2)
        pairs = [(T, U) for T in range(P) for U in range(T + 1)]
        self.pair_t = np.array([t for t, _ in pairs], dtype=np.intp)
        self.pair_u = np.array([u for _, u in pairs], dtype=np.intp)
        slots = np.empty((n, len(pairs)), dtype=np.int64)
        p1 = self.p1
        for k, (T, U) in enumerate(pairs):
            if T < p1:  # both in factor 1 (U <= T)
                slots[:, k] = lev1 * p1 * p1 + T * p1 + U
            elif U < p1:  # M21 entry: remainder term T, factor-1 term U
                slots[:, k] = self.offV + ent_of[:, T - p1] * p1 + U
            else:
                r, c = (
                    np.maximum(r2cols[:, T], r2cols[:, U]),
                    np.minimum(r2cols[:, T], r2cols[:, U]),
                )
                if self.bs:
                    slots[:, k] = self.offS + r * self.bs + c % self.bs
                else:
                    slots[:, k] = self.offS + r * self.q2 + c
        self.slots = slots.astype(np.int32) if self.nbuf < 2**31 else slots  # less memory traffic
        # units for per-group step halving: the levels when there is one block
        if nb == 1:
            self.n_units = self.L1
            self.unit_of_u = np.repeat(np.arange(self.L1), self.p1)
        else:
            self.n_units = 1
            self.unit_of_u = np.zeros(self.q, dtype=np.intp)
        self._buf = np.empty(self.nbuf)
        self.a = np.empty((n, P))
        # rows_at accumulates M's slots in its pass over the rows when the slot buffer is
        # small next to that pass (zeroing a large dense Schur buffer at every step-halving
        # trial would cost more than the separate pass it saves)
        self._fuse = self.nbuf <= 4 * n * P
        self._fused: tuple | None = None
        self.set_factors([np.eye(p) for p in ps])

    # ------------------------------------------------------------------ A products
    def set_factors(self, factors: list[np.ndarray]) -> None:
        """Set the per-block relative Cholesky factors ``Lambda_b``; recomputes ``A``'s rows."""
        self.factors = [np.asarray(F, dtype=float) for F in factors]
        self._fused = None  # A changes: the slots accumulated by rows_at are stale
        T = 0
        for b in self.order:
            Zl = self.Zraw[b] @ self.factors[b]
            p = Zl.shape[1]
            self.a[:, T : T + p] = Zl
            T += p

    def au(self, u: np.ndarray) -> np.ndarray:
        """``A u`` (n,)."""
        return np.einsum("ij,ij->i", self.a, u[self.cols_ext])

    def atv(self, v: np.ndarray) -> np.ndarray:
        """``A' v`` for ``v`` of shape (n,) or (n, m)."""
        fz = self._fused
        if fz is not None and v is fz[1]:  # A' d1, computed by rows_at
            return fz[2]
        if v.ndim == 1:
            return np.bincount(
                self.cols_ext.ravel(), weights=(self.a * v[:, None]).ravel(), minlength=self.q
            )
        return np.stack([self.atv(v[:, j]) for j in range(v.shape[1])], axis=1)

    def rows_at(self, fam, eta_fixed: np.ndarray, u: np.ndarray) -> tuple | None:  # noqa: ANN001
        """``(eta, ll, d1, w)`` at ``eta_fixed + A u`` in one Numba pass over the rows, for
        the canonical links of :data:`~bayesglmm.engines.ml.scalar_laplace.KIND_CODES`
        (the same values as ``fam.full``); None for other families."""
        code = KIND_CODES.get(fam.kind)
        if code is None:
            return None
        if getattr(fam, "_ntr", None) is None:
            t = fam.trials
            fam._ntr = np.ones(fam.y.size) if t is None else np.ascontiguousarray(t, float)
        n = fam.y.size
        eta, ll, d1, w = (np.empty(n) for _ in range(4))
        ef = np.ascontiguousarray(eta_fixed, dtype=float)
        u = np.ascontiguousarray(u, dtype=float)
        if not self._fuse:
            _rows(code, fam.y, fam._ntr, ef, self.a, self.cols_ext, u, eta, ll, d1, w)
            return eta, ll, d1, w
        # one pass: the rows, M's slots at the new weights and A' d1, which factor(w) and
        # atv(d1) then reuse (PIRLS asks for both at every accepted point)
        atd = np.empty(self.q)
        _rows_accumulate(
            code,
            fam.y,
            fam._ntr,
            ef,
            self.a,
            self.cols_ext,
            u,
            self.slots,
            self.pair_t,
            self.pair_u,
            eta,
            ll,
            d1,
            w,
            self._buf,
            atd,
        )
        self._fused = (w, d1, atd)
        return eta, ll, d1, w

    def unit_sum(self, rows: np.ndarray) -> np.ndarray:
        """Per-unit sums of a per-row vector."""
        if self.n_units == 1:
            return np.array([rows.sum()])
        return np.bincount(self.lev1, weights=rows, minlength=self.L1)

    def unit_sum_u(self, uu: np.ndarray) -> np.ndarray:
        """Per-unit sums of a per-``u`` vector."""
        if self.n_units == 1:
            return np.array([uu.sum()])
        return uu.reshape(self.L1, self.p1).sum(axis=1)

    def sparse_a(self) -> sparse.csr_matrix:
        """``A`` as a SciPy CSR matrix (n x q), columns in the design's order."""
        n, P = self.a.shape
        return sparse.csr_matrix(
            (self.a.ravel(), self.cols_ext.ravel(), np.arange(0, n * P + 1, P)),
            shape=(n, self.q),
        )

    # ------------------------------------------------------------------ factorization
    def factor(self, w: np.ndarray) -> BlockedFactor:
        """Factor ``M = A' W A + I`` for row weights ``w >= 0``."""
        fz = self._fused
        buf = self._buf
        if fz is None or w is not fz[0]:  # else rows_at accumulated these very weights
            w = np.ascontiguousarray(w, dtype=float)
            _accumulate(self.slots, self.pair_t, self.pair_u, self.a, w, buf)
            self._fused = None
        return BlockedFactor(self, buf, w)


class BlockedFactor:
    """Cholesky factor ``L`` of ``M = A' W A + I`` in the blocked form of
    :class:`BlockedStructure`; solves, log determinant, diagonal blocks of ``M^-1`` and the
    selected inverse."""

    def __init__(self, st: BlockedStructure, buf: np.ndarray, w: np.ndarray) -> None:
        self.st = st
        self.w = w
        p1, L1, q2 = st.p1, st.L1, st.q2
        if p1 <= 4:
            # small blocks: a Numba loop, not LAPACK's per-matrix call overhead
            self.L11 = np.empty((L1, p1, p1))
            if not _chol_blocks(buf, L1, p1, self.L11):
                D = buf[: st.offV]
                if not np.all(np.isfinite(D)):
                    raise InferenceError("penalized IRLS produced non-finite values")
                raise InferenceError(
                    "the random-effect cross-product is numerically singular (weights or "
                    "variance parameters out of floating-point range)"
                )
        else:
            D = buf[: st.offV].reshape(L1, p1, p1).copy()
            D[:, np.arange(p1), np.arange(p1)] += 1.0
            if not np.all(np.isfinite(D)):
                raise InferenceError("penalized IRLS produced non-finite values")
            iu = np.triu_indices(p1, 1)
            D[:, iu[0], iu[1]] = D[:, iu[1], iu[0]]
            try:
                self.L11 = np.linalg.cholesky(D)
            except np.linalg.LinAlgError as err:  # rounding at extreme trial parameters
                raise InferenceError(
                    "the random-effect cross-product is numerically singular (weights or "
                    "variance parameters out of floating-point range)"
                ) from err
        self.X = np.empty((st.ne, p1))
        if q2:
            V = buf[st.offV : st.offS].reshape(st.ne, p1)
            _l21(self.L11, st.e_lev, V, self.X)
            Sf = buf[st.offS :].copy()
            _schur(Sf, self.X, st.e_r2, st.e_ptr, q2, st.bs)
        if q2 and st.bs:
            bs = st.bs
            Sb = Sf.reshape(q2 // bs, bs, bs)
            Sb[:, np.arange(bs), np.arange(bs)] += 1.0
            iu = np.triu_indices(bs, 1)
            Sb[:, iu[0], iu[1]] = Sb[:, iu[1], iu[0]]
            try:
                if not np.all(np.isfinite(Sb)):
                    raise np.linalg.LinAlgError
                self.L22b = np.linalg.cholesky(Sb)
            except np.linalg.LinAlgError as err:
                raise InferenceError(
                    "the random-effect cross-product is numerically singular (weights or "
                    "variance parameters too large)"
                ) from err
            self.L22 = np.zeros((0, 0))
        elif q2:
            S = Sf.reshape(q2, q2)
            S[np.arange(q2), np.arange(q2)] += 1.0
            L22, info = (
                linalg.lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
                if np.all(np.isfinite(S))
                else (S, -1)
            )
            if info != 0:
                raise InferenceError(
                    "the random-effect cross-product is numerically singular (weights or "
                    "variance parameters too large)"
                )
            self.L22 = L22
        else:
            self.L22 = np.zeros((0, 0))
            # one block: the (levels, p, p) stack M = C C', as _BlockFactor exposes it
            self.C, self.L, self.p = self.L11, L1, p1

    def solve_lt(self, rhs: np.ndarray) -> np.ndarray:
        """``L^-T rhs`` (q,): maps standard normal draws to draws from ``N(0, M^-1)``."""
        st = self.st
        B = np.asarray(rhs, dtype=float)[st.perm].reshape(st.q, 1).copy()
        B1, B2 = B[: st.q1], B[st.q1 :]
        if st.bs:
            Lb = self.L22b
            B2[:] = np.linalg.solve(
                np.swapaxes(Lb, 1, 2), B2.reshape(Lb.shape[0], st.bs, 1)
            ).reshape(-1, 1)
        elif st.q2:
            B2[:] = linalg.solve_triangular(self.L22, B2, lower=True, trans="T")
        _backward(self.L11, B1, self.X, st.e_lev, st.e_r2, B2)
        out = np.empty(st.q)
        out[st.perm] = B[:, 0]
        return out

    # ------------------------------------------------------------------ solves
    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``M^-1 rhs`` for ``rhs`` of shape (q,) or (q, m)."""
        st = self.st
        rhs = np.asarray(rhs, dtype=float)
        one = rhs.ndim == 1
        B = rhs[st.perm].reshape(st.q, -1).copy()
        B1, B2 = B[: st.q1], B[st.q1 :]
        _forward(self.L11, B1, self.X, st.e_lev, st.e_r2, B2)
        if st.bs:
            Lb = self.L22b
            Y = np.linalg.solve(Lb, B2.reshape(Lb.shape[0], st.bs, -1))
            B2[:] = np.linalg.solve(np.swapaxes(Lb, 1, 2), Y).reshape(B2.shape)
        elif st.q2:
            B2[:] = linalg.lapack.dpotrs(self.L22, B2, lower=1)[0]
        _backward(self.L11, B1, self.X, st.e_lev, st.e_r2, B2)
        out = np.empty_like(B)
        out[st.perm] = B
        return out[:, 0] if one else out

    def logdet(self) -> float:
        """``log det M``."""
        ld = 2.0 * float(np.log(np.diagonal(self.L11, axis1=1, axis2=2)).sum())
        if self.st.bs:
            ld += 2.0 * float(np.log(np.diagonal(self.L22b, axis1=1, axis2=2)).sum())
        elif self.st.q2:
            ld += 2.0 * float(np.log(np.diag(self.L22)).sum())
        return ld

    def unit_logdet(self) -> np.ndarray:
        """``log det`` per independent unit (per level with one block)."""
        if self.st.n_units == 1:
            return np.array([self.logdet()])
        return 2.0 * np.log(np.diagonal(self.L11, axis1=1, axis2=2)).sum(axis=1)

    # ------------------------------------------------------------------ inverse
    def _sinv(self) -> np.ndarray:
        """``S^-1``, flat: dense (q2 x q2) or the (L2, bs, bs) blocks."""
        q2, bs = self.st.q2, self.st.bs
        if not q2:
            return np.zeros(0)
        if bs:
            Lb = self.L22b
            Linv = np.linalg.solve(Lb, np.broadcast_to(np.eye(bs), Lb.shape))
            return np.einsum("gki,gkj->gij", Linv, Linv).ravel()
        inv, info = linalg.lapack.dpotri(self.L22, lower=1)
        if info != 0:
            raise InferenceError("could not invert the random-effect cross-product")
        return (np.tril(inv) + np.tril(inv, -1).T).ravel()

    def selected_inverse(self) -> np.ndarray:
        """``M^-1`` on the pattern of ``M``, in the slot buffer layout of the structure.

        ``[diagonal p1 x p1 blocks of factor 1 | M21 pattern (entries x p1) | M22]`` (M22
        dense, or its diagonal blocks when the Schur complement is block diagonal);
        ``buf[st.slots]`` gives, for every row and term pair, the matching element.
        """
        st = self.st
        Sinv = self._sinv()
        selD = np.empty((st.L1, st.p1, st.p1))
        selV = np.empty((st.ne, st.p1))
        _selinv_12(self.L11, self.X, st.e_lev, st.e_r2, st.e_ptr, Sinv, st.q2, st.bs, selD, selV)
        return np.concatenate([selD.ravel(), selV.ravel(), Sinv])

    def inv_blocks(self) -> list[np.ndarray]:
        """Diagonal ``p x p`` blocks of ``M^-1``, per block (design order) and level."""
        st = self.st
        sel = self.selected_inverse()
        out: list[np.ndarray | None] = [None] * len(st.blocks)
        b1 = st.order[0]
        out[b1] = sel[: st.offV].reshape(st.L1, st.p1, st.p1)
        if st.bs:
            b2 = st.order[1]
            out[b2] = sel[st.offS :].reshape(-1, st.bs, st.bs)
            return out  # type: ignore[return-value]
        Sinv = sel[st.offS :].reshape(st.q2, st.q2)
        pos = 0
        for b in st.order[1:]:
            p, L = st.blocks[b].n_terms, st.blocks[b].n_levels
            ix = pos + np.arange(L)[:, None] * p + np.arange(p)[None, :]  # (L, p)
            out[b] = Sinv[ix[:, :, None], ix[:, None, :]]
            pos += p * L
        return out  # type: ignore[return-value]

    @property
    def M(self) -> sparse.csc_matrix:
        """``M = A' W A + I`` as a SciPy sparse matrix (design order; built on demand)."""
        A = self.st.sparse_a()
        return (A.T @ sparse.diags(self.w) @ A + sparse.identity(self.st.q)).tocsc()
