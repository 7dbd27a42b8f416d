"""Derivatives of the Laplace deviance over ``[theta, beta]`` outside the fused Numba
paths: the analytic gradient of the blocked structure (several grouping factors or a vector
term, from the selected inverse of the blocked Cholesky factor) and difference quotients
(the gradient of AGQ on a vector term, the Hessian behind lme4-style standard errors).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure, grad_pass1, grad_pass2
from bayesglmm.engines.ml.pirls import FamilyKernel, ModeResult, ThetaLayout
from bayesglmm.errors import InferenceError

__all__ = ["blocked_gradient", "central_gradient", "difference_hessian", "theta_terms"]


def theta_terms(layout: ThetaLayout, st: BlockedStructure) -> tuple[np.ndarray, np.ndarray]:
    """Per ``theta`` element: the ``Z`` column it multiplies ``(n, n_theta)`` and the internal
    term it feeds ``(n_theta,)``.

    ``theta`` element ``Lambda_b[r, c]`` changes column ``c`` of block ``b`` of ``A`` by
    ``Z_b[:, r]`` (lme4's column-major lower triangle; the diagonal for ``||`` blocks).
    """
    term_of = {bt: T for T, bt in enumerate(st.terms)}
    zs, ts = [], []
    for b, (p, corr) in enumerate(zip(layout.n_terms, layout.correlated, strict=True)):
        Z = st.Zraw[b]
        rc = [(r, c) for c in range(p) for r in range(c, p)] if corr else [(t, t) for t in range(p)]
        for r, c in rc:
            zs.append(Z[:, r])
            ts.append(term_of[(b, c)])
    return np.ascontiguousarray(np.column_stack(zs)), np.array(ts, dtype=np.intp)


def blocked_gradient(
    st: BlockedStructure,
    fam: FamilyKernel,
    m: ModeResult,
    beta: np.ndarray,
    X: np.ndarray,
    q: int,
    theta_terms: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    """Analytic ``d deviance / d [theta, beta]`` at the mode, any blocked structure.

    With ``M = A' W A + I`` (Fisher weights), ``H = A' W_o A + I`` (observed
    information; ``H = M`` for a canonical link), ``h_i = a_i' M^-1 a_i`` and
    ``w'_i = dW_i / d eta_i``, the deviance ``-2 sum ll + |u|^2 + log det M`` has, by
    the mode condition ``A' d1 = u`` and the implicit-function theorem
    ``du = H^-1 (dA' d1 - A' W_o dA u)``,

        d dev = -2 d1' dA u + 2 tr(M^-1 A' W dA) + (w' h)' (dA u) + z' (dA' d1 - A' W_o dA u)
        d dev / d beta = -2 X' d1 + X' (w' h) - X' W_o A z,     z = H^-1 A' (w' h).

    ``tr(M^-1 A' W dA)`` and ``h`` need ``M^-1`` only on the pattern of ``M`` (the
    selected inverse of the blocked factor).  Where the determinant holds the observed
    information (``FamilyKernel.laplace_curvature``), ``M = H`` and ``W = W_o``.
    Returns the gradient and the mode sensitivities ``(du/dtheta, du/dbeta)`` (for the
    next warm start), or None when ``H`` is not positive definite (a non-canonical link far from the
    mode); the caller then differences.
    """
    F = m.factor
    u, d1, w = m.u, m.d1, m.w
    if fam.canonical:
        w_obs, dw = fam.curvature_at(m.eta, d1, w)
        H = F
    elif hasattr(fam, "laplace_curvature"):
        # the determinant holds the observed information (the factor at the mode):
        # M = H, its weight is w_obs and dw its derivative
        w_lc, dw_lc = fam.laplace_curvature(m.eta, d1, w)
        assert w_lc is not None and dw_lc is not None  # a non-canonical link has them
        w_obs, dw = w_lc, dw_lc
        w, H = w_obs, F
    else:
        w_obs, dw = fam.curvature_at(m.eta, d1, w)
        if np.any(w_obs < 0):
            return None
        try:
            H = st.factor(w_obs)
        except InferenceError:
            return None
    sel = F.selected_inverse()
    n, P = st.a.shape
    G, wh, v = np.empty((n, P)), np.empty(n), np.empty(q)
    grad_pass1(st.a, st.cols_ext, st.slots, st.pair_t, st.pair_u, sel, dw, G, wh, v)
    z = H.solve(v)
    Zt, tt = theta_terms
    nt = tt.size
    c_u, g_theta = np.empty(n), np.empty(nt)
    rhs = np.empty((q, nt + X.shape[1]))
    grad_pass2(st.a, st.cols_ext, u, z, d1, w, w_obs, wh, G, Zt, tt, X, c_u, g_theta, rhs)
    g_beta = X.T @ c_u
    # mode sensitivities du/d[theta, beta] = H^-1 (dg/d[theta, beta]) for the next warm
    # start (first-order prediction of the mode, as the scalar path does)
    du = H.solve(rhs)
    return np.concatenate([g_theta, g_beta]), (du[:, :nt], du[:, nt:])


def central_gradient(
    dev: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Central differences of ``dev`` at ``x`` (step ``h * max(1, |x_i|)``)."""
    g = np.empty_like(x)
    for i in range(x.size):
        step = h * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += step
        xm[i] -= step
        g[i] = (dev(xp) - dev(xm)) / (2 * step)
    return g


def difference_hessian(
    grad: Callable[[np.ndarray], np.ndarray],
    dev: Callable[[np.ndarray], float],
    x: np.ndarray,
    *,
    from_gradient: bool,
    h: float = 1e-4,
    g0: np.ndarray | None = None,
) -> np.ndarray:
    """Finite-difference Hessian at ``x``.

    ``from_gradient``: forward differences (step ``1e-5``) of the analytic gradient,
    symmetrized, reusing ``g0`` (the gradient at ``x``) when given.  Otherwise (AGQ on a
    vector term, whose gradient is itself differenced) second differences of the deviance,
    as lme4's ``deriv12`` (step ``h``).
    """
    n = x.size
    H = np.empty((n, n))
    if from_gradient:
        if g0 is None:
            g0 = grad(x)
        steps = 1e-5 * np.maximum(1.0, np.abs(x))
        for i in range(n):
            xp = x.copy()
            xp[i] += steps[i]
            H[i] = (grad(xp) - g0) / steps[i]
        return 0.5 * (H + H.T)
    steps = h * np.maximum(1.0, np.abs(x))
    f0 = dev(x)
    fp, fm = np.empty(n), np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = steps[i]
        fp[i] = dev(x + e)
        fm[i] = dev(x - e)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / steps[i] ** 2
    for i in range(n):
        for j in range(i + 1, n):
            e = np.zeros(n)
            e[i], e[j] = steps[i], steps[j]
            fpp = dev(x + e)
            fmm = dev(x - e)
            H[i, j] = H[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (
                2 * steps[i] * steps[j]
            )
    return H
