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

The mode search is :mod:`~bayesglmm.engines.ml.vector_mode`, the gradient algebra
:mod:`~bayesglmm.engines.ml.vector_gradient`; this module drives them.
"""

from __future__ import annotations

import math

import numpy as np

from bayesglmm.design.types import RandomBlock
from bayesglmm.engines.ml.scalar_laplace import KIND_CODES
from bayesglmm.engines.ml.vector_gradient import (
    _grad_sums,
    _grad_sums2,
    _group_gradient,
    _group_gradient2,
)
from bayesglmm.engines.ml.vector_mode import _apply_lambda, _logdet_sum, _mode

__all__ = ["VectorLaplace"]


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
