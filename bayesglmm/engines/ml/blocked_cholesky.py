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

Where the coupling is dense enough (crossed factors: 5,000 x 50 levels, 1e5 rows), the
Schur-complement update ``L21 L21'`` and the selected inverse's ``S^-1 L21`` take ``L21``
as dense chunks of factor-1 levels for a BLAS product instead of pair by pair on its
pattern (:meth:`BlockedStructure._plan_dense_coupling`).

The same slots give the selected inverse (``M^-1`` on the pattern of ``M``: the diagonal
blocks of factor 1, the ``M21`` pattern and the dense ``M22`` block), which is all the
analytic gradient of the Laplace deviance needs
(:meth:`BlockedFactor.selected_inverse`).

This module holds the structure (the sparsity analysis, once per model, and ``A``'s rows);
the factor is :mod:`~bayesglmm.engines.ml.blocked_factor` (its Numba kernels in
:mod:`~bayesglmm.engines.ml.blocked_kernels`) and the passes over the data rows are
:mod:`~bayesglmm.engines.ml.blocked_rows`.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from bayesglmm.design.types import RandomBlock
from bayesglmm.engines.ml.blocked_factor import BlockedFactor
from bayesglmm.engines.ml.blocked_rows import (  # grad_pass*, _level_node_ll: for laplace, agq
    _accumulate,
    _eta,
    _level_node_ll,
    _rows,
    _rows_accumulate,
    grad_pass1,
    grad_pass2,
)
from bayesglmm.engines.ml.scalar_laplace import KIND_CODES, row_exps
from bayesglmm.errors import InferenceError

__all__ = [
    "DENSE_CHUNK",
    "DENSE_SPEEDUP",
    "MAX_DENSE_SCHUR",
    "BlockedFactor",
    "BlockedStructure",
    "_level_node_ll",
    "grad_pass1",
    "grad_pass2",
]

#: largest Schur complement (sum of levels x terms of all but the largest factor) factored
#: densely: 4000^2 doubles are 128 MB, and its Cholesky ~2e10 flops per PIRLS step
MAX_DENSE_SCHUR = 4000

#: multiply-adds of a dense BLAS product per scattered pair update of the same time
#: (measured on the crossed bench row: see BlockedStructure._plan_dense_coupling)
DENSE_SPEEDUP = 20.0

#: largest dense coupling chunk (elements: levels x p1 x q2), 2 MB of doubles
DENSE_CHUNK = 262_144


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
        # three or more factors, the largest nested in the second (grouseticks: INDEX in
        # BROOD; the 3-factor row: brood in location): the Schur complement's leading block,
        # that of the second factor, stays block diagonal, (L2, bs2, bs2), and the dense
        # Cholesky is needed only for the rest (blocked_factor._chol_leading_blocks)
        self.bs2 = self.k2 = 0
        if len(order) >= 2 and self.q2:
            p2 = ps[order[1]]
            k2 = p2 * Ls[order[1]]
            first = self.e_r2 < k2
            lv2 = self.e_r2[first] // p2
            lev = self.e_lev[first]
            lo = np.full(self.L1, np.iinfo(np.intp).max)
            hi = np.full(self.L1, -1)
            np.minimum.at(lo, lev, lv2)
            np.maximum.at(hi, lev, lv2)
            if np.array_equal(lo[lev], hi[lev]):
                if len(order) == 2:
                    self.bs = p2
                else:
                    self.bs2, self.k2 = p2, k2
        if self.q2 > MAX_DENSE_SCHUR and not self.bs:
            names = ", ".join(f"`{blocks[b].group}` ({Ls[b]} levels)" for b in order[1:])
            raise InferenceError(
                f"the random-effect structure couples {self.q2} random effects of {names} to "
                f"those of the largest factor `{blocks[b1].group}`; the dense Schur complement "
                f"is limited to {MAX_DENSE_SCHUR} (x terms). Use fewer levels in the smaller "
                "grouping factors or another method (e.g. NUTS)"
            )
        self._plan_dense_coupling()
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

    def _plan_dense_coupling(self) -> None:
        """Whether the Schur-complement update ``L21 L21'`` and the selected inverse's
        ``S^-1 Y`` take the coupling block ``L21`` as a dense matrix (a BLAS product, level
        chunks of at most :data:`DENSE_CHUNK` elements) or pair by pair on its pattern.

        Pair by pair costs ``sum_j (k_j p1)^2 / 2`` scattered updates (``k_j``: the
        remainder levels level ``j`` of factor 1 meets); the dense product
        ``L1 p1 q2^2 / 2`` multiply-adds at BLAS speed, some :data:`DENSE_SPEEDUP` times
        faster each.  Crossed ``(1 | g) + (1 | h)`` with 5,000 x 50 levels: 7e5 scattered
        updates (3 ms per factorization) against 6e6 multiply-adds (0.5 ms).  A nested
        structure (block-diagonal Schur complement, ``k_j = 1``) stays on the pattern.
        """
        self.dense_chunk = 0  # levels of factor 1 per dense chunk; 0: on the pattern
        if not self.q2 or self.bs:
            return
        k = np.diff(self.e_ptr).astype(float) * self.p1
        scattered = float(np.sum(k * (k + 1.0) / 2.0))
        dense = self.L1 * self.p1 * self.q2 * self.q2 / 2.0
        if dense <= DENSE_SPEEDUP * scattered:
            self.dense_chunk = max(1, min(self.L1, DENSE_CHUNK // (self.p1 * self.q2)))

    # ------------------------------------------------------------------ A products
    def set_factors(self, factors: list[np.ndarray]) -> None:
        """Set the per-block relative Cholesky factors ``Lambda_b``; recomputes ``A``'s rows."""
        self.factors = [np.asarray(F, dtype=float) for F in factors]
        self._fused = None  # A changes: the slots accumulated by rows_at are stale
        T = 0
        for b in self.order:
            F = self.factors[b]
            p = F.shape[1]
            if p == 1:  # a scalar term: a column times a number (a (n, 1) @ (1, 1) product
                # costs ~5x more, at every deviance evaluation)
                np.multiply(self.Zraw[b][:, 0], F[0, 0], out=self.a[:, T])
            else:
                self.a[:, T : T + p] = self.Zraw[b] @ F
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
        # atv(d1) then reuse (PIRLS asks for both at every accepted point); eta and the
        # rows' exp and log first, vectorized
        _eta(ef, self.a, self.cols_ext, u, eta)
        ex, ex2 = row_exps(code, eta)
        atd = np.empty(self.q)
        _rows_accumulate(
            code,
            fam.y,
            fam._ntr,
            eta,
            ex,
            ex2,
            self.a,
            self.cols_ext,
            self.slots,
            self.pair_t,
            self.pair_u,
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
