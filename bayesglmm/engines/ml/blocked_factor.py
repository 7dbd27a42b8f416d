"""The Cholesky factor of ``M = A' W A + I`` in the blocked form of
:class:`~bayesglmm.engines.ml.blocked_cholesky.BlockedStructure`: factorization, solves,
log determinant and the selected inverse (see that module's docstring for the layout).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from scipy import linalg, sparse

from bayesglmm.engines.ml.blocked_kernels import (
    _backward,
    _chol_blocks,
    _forward,
    _l21,
    _scatter_levels,
    _schur,
    _selinv_12,
    _selinv_gather,
    _selinv_y,
)
from bayesglmm.errors import InferenceError

__all__ = ["BlockedFactor", "FactorPattern"]


class FactorPattern(Protocol):
    """What the factor reads of its structure
    (:class:`~bayesglmm.engines.ml.blocked_cholesky.BlockedStructure`, which builds the
    pattern once per model): sizes, the permutation, the coupling's sparsity and the
    buffer offsets.  A protocol, so the factor does not import the structure that makes it."""

    blocks: Any
    order: Any
    slots: np.ndarray
    perm: np.ndarray
    e_lev: np.ndarray
    e_r2: np.ndarray
    e_ptr: np.ndarray
    q: int
    q1: int
    q2: int
    p1: int
    L1: int
    ne: int
    bs: int
    bs2: int
    k2: int
    dense_chunk: int
    offV: int
    offS: int
    n_units: int

    def sparse_a(self) -> sparse.csr_matrix: ...


def _chol_leading_blocks(S: np.ndarray, k: int, bs: int) -> tuple[np.ndarray, int]:
    """Lower Cholesky factor of ``S`` (lower triangle read) whose leading ``k x k`` block is
    block diagonal with ``bs x bs`` blocks (zero between blocks), in place; ``(L, info)`` as
    LAPACK's ``dpotrf`` (``info != 0``: not positive definite).

    With ``S = [[A, B'], [B, C]]``: ``A = C1 C1'`` block by block, ``X = B C1^-T``, and
    ``C - X X'`` is the only dense factorization (``(q - k)^3 / 3`` flops, not ``q^3 / 3``).
    """
    A = S[:k, :k]
    if bs == 1:
        d = np.diagonal(A).copy()
        if not np.all(d > 0.0):
            return S, 1
        c = np.sqrt(d)
        X = S[k:, :k] / c
        A[np.arange(k), np.arange(k)] = c
    else:
        ix = np.arange(k).reshape(-1, bs)
        blk = A[ix[:, :, None], ix[:, None, :]]
        iu = np.triu_indices(bs, 1)
        blk[:, iu[0], iu[1]] = blk[:, iu[1], iu[0]]
        try:
            C1 = np.linalg.cholesky(blk)
        except np.linalg.LinAlgError:
            return S, 1
        Cinv = np.linalg.inv(C1)
        X = np.einsum("jlk,lmk->jlm", S[k:, :k].reshape(-1, k // bs, bs), Cinv).reshape(-1, k)
        A[ix[:, :, None], ix[:, None, :]] = C1
    S[k:, :k] = X
    if k < S.shape[0]:
        C = linalg.blas.dsyrk(-1.0, X, beta=1.0, c=S[k:, k:], lower=1)
        C3, info = linalg.lapack.dpotrf(C, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            return S, int(info) + k
        S[k:, k:] = C3
    return S, 0


class BlockedFactor:
    """Cholesky factor ``L`` of ``M = A' W A + I`` in the blocked form of
    :class:`FactorPattern` (a ``BlockedStructure``); solves, log determinant, diagonal
    blocks of ``M^-1`` and the selected inverse."""

    def __init__(self, st: FactorPattern, buf: np.ndarray, w: np.ndarray) -> None:
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
            if st.dense_chunk:
                S2 = Sf.reshape(q2, q2)
                for _, _, C in self._dense_chunks(self.X):
                    S2 -= C.T @ C
            else:
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
            if not np.all(np.isfinite(S)):
                L22, info = S, -1
            elif st.bs2:
                L22, info = _chol_leading_blocks(S, st.k2, st.bs2)
            else:
                L22, info = linalg.lapack.dpotrf(S, lower=1, clean=1, overwrite_a=1)
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

    def _dense_chunks(self, E: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(lo, hi, C)`` per chunk of factor-1 levels ``lo..hi - 1``: ``C`` holds the rows of ``E``
        (an ``(entries, p1)`` array on the ``M21`` pattern, e.g. ``L21``) of those levels as
        a dense ``(levels p1, q2)`` matrix (one buffer, overwritten per chunk)."""
        st = self.st
        n = st.dense_chunk
        buf = np.empty((min(n, st.L1) * st.p1, st.q2))
        for lo in range(0, st.L1, n):
            hi = min(st.L1, lo + n)
            C = buf[: (hi - lo) * st.p1]
            _scatter_levels(E, st.e_lev, st.e_r2, st.e_ptr, lo, hi, C)
            yield lo, hi, C

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
        # dpotri fills the lower triangle; the strict upper one is whatever L22 held there
        # (zeros from dpotrf, the Schur update's values after _chol_leading_blocks)
        inv = np.tril(inv)
        inv += np.tril(inv, -1).T
        return inv.ravel()

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
        if st.dense_chunk:
            # (M^-1)21 = -S^-1 Y on the pattern, by a BLAS product per chunk of levels
            Y = np.empty((st.ne, st.p1))
            _selinv_y(self.L11, self.X, st.e_lev, Y, selD)
            S2 = Sinv.reshape(st.q2, st.q2)
            for lo, hi, C in self._dense_chunks(Y):
                _selinv_gather(C @ S2, Y, st.e_lev, st.e_r2, st.e_ptr, lo, hi, selD, selV)
        else:
            _selinv_12(
                self.L11, self.X, st.e_lev, st.e_r2, st.e_ptr, Sinv, st.q2, st.bs, selD, selV
            )
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
