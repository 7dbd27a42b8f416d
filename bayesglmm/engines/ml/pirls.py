"""The penalized IRLS inner solver: the conditional mode of the spherical random effects
(:func:`pirls`) and the GLM start of the fixed effects (:func:`glm_start`).  The pieces it
works on live beside it: :mod:`~bayesglmm.engines.ml.theta_layout`,
:mod:`~bayesglmm.engines.ml.family_kernel`, :mod:`~bayesglmm.engines.ml.scalar_structure`
(with :func:`make_structure`); the weighted LMM is :mod:`~bayesglmm.engines.ml.weighted_lmm`.

The random effects are ``b = Lambda(theta) u`` with ``u ~ N(0, I)``.  Writing
``A = Z Lambda`` (never formed densely), everything the engines need is

* ``A u`` and ``A' v`` (products with per-row vectors),
* a factorization of ``M = A' W A + I`` for diagonal row weights ``W``: solves, the log
  determinant and the diagonal blocks of ``M^-1``.

Two structures implement this, picked by :func:`make_structure`:

* :class:`ScalarStructure` -- one block with one term (random intercept or a single slope):
  ``M`` is diagonal, every per-group sum is one ``np.bincount``;
* :class:`~bayesglmm.engines.ml.blocked_cholesky.BlockedStructure` -- a vector-valued term
  or several blocks (crossed or nested factors): the blocked Cholesky of MixedModels.jl
  (block-diagonal block of the factor with most levels -- the ``(levels, p, p)`` stack for
  one block --, sparse coupling, dense Schur complement of the others), positive definite
  at every ``theta``; sparsity analysed once per model, Numba passes over the rows.

No Python loop over rows or groups; loops run over terms, blocks or quadrature nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.family_kernel import FamilyKernel, saturated_loglik
from bayesglmm.engines.ml.scalar_structure import ScalarStructure, Structure, make_structure
from bayesglmm.engines.ml.theta_layout import ThetaLayout
from bayesglmm.engines.ml.weighted_lmm import LMMFit, WeightedLMM, weighted_lmm_fit
from bayesglmm.errors import InferenceError

# the names callers import from here (moved beside it, re-exported)
__all__ = [
    "FamilyKernel",
    "LMMFit",
    "ModeResult",
    "ScalarStructure",
    "Structure",
    "ThetaLayout",
    "WeightedLMM",
    "glm_start",
    "make_structure",
    "pirls",
    "saturated_loglik",
    "weighted_lmm_fit",
]


@dataclass
class ModeResult:
    """Conditional mode of ``u`` and what was computed at it."""

    u: np.ndarray
    eta: np.ndarray
    ll: np.ndarray
    d1: np.ndarray
    w: np.ndarray
    factor: Any  # the structure's factorization: ScalarFactor (d) or BlockedFactor (L11, ...)
    n_iter: int
    converged: bool
    sens: tuple | None = None  # (du/dtheta, du/dbeta) when the gradient was computed


def _step_weight(fam: FamilyKernel, eta: np.ndarray, d1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The row weights of a Newton step: the observed information, and the Fisher weight
    ``w`` on rows where the observed one is not positive (a log-likelihood not concave in
    ``eta``: the gaussian with a log link where ``y > 2 mu``).  So ``A' W A + I`` stays
    positive definite, every step is an ascent direction and a decrement is never negative:
    a search started where the curvature is negative no longer stops at once, far from the
    mode.  Near the mode, where the observed information is positive, the steps are
    Newton's (quadratic convergence); at the mode the gradient is 0 whichever weight."""
    if fam.canonical:
        return w
    w_obs = fam.laplace_curvature(eta, d1, w, order=1)[0]
    return np.where(w_obs > 0.0, w_obs, w)


def pirls(
    st: Structure,
    fam: FamilyKernel,
    eta_fixed: np.ndarray,
    u0: np.ndarray,
    *,
    tol: float = 1e-11,
    quad_tol: float = 1e-9,
    maxit: int = 60,
) -> ModeResult:
    """Conditional mode of ``u`` by Newton / Fisher scoring with per-unit step halving.

    Maximizes ``sum ll(eta_fixed + A u) - |u|^2 / 2``; independent units (groups, for one
    block) are halved separately so one awkward group does not slow the others down.

    Parameters
    ----------
    st : structure (with ``Lambda`` already set)
    fam : FamilyKernel
    eta_fixed : ndarray (n,)
        ``offset + X beta``.
    u0 : ndarray (q,)
        Warm start.
    tol : float
        Stop when every unit's Newton decrement ``g' M^-1 g`` is below ``tol`` (after
        taking that last step).
    quad_tol : float
        The same for canonical links.  (Every step is a Newton step on the observed
        information; for a non-canonical link it comes from differences of the score, so
        the looser ``tol`` applies.  The binomial probit and cloglog log-likelihoods are
        concave in ``eta``, so the observed information is never negative; where another
        family's is, the step takes the Fisher weight on those rows: :func:`_step_weight`.)
    """
    fused = getattr(st, "rows_at", None)

    def rows(u: np.ndarray) -> tuple:
        """``(eta, ll, d1, w)`` at ``u``: one Numba pass where the structure has one for
        this family (blocked structure, canonical link), else ``au`` and ``fam.full``."""
        r = None if fused is None else fused(fam, eta_fixed, u)
        if r is not None:
            return r
        eta = eta_fixed + st.au(u)
        return (eta, *fam.full(eta))

    u = np.array(u0, dtype=float, copy=True)
    eta, ll, d1, w = rows(u)
    obj = -st.unit_sum(ll) + 0.5 * st.unit_sum_u(u * u)
    uou = st.unit_of_u
    converged = False
    it = 0
    for it in range(1, maxit + 1):  # noqa: B007
        # Newton steps (observed information; = Fisher for a canonical link): quadratic
        # convergence, so the mode is exact for the Laplace determinant
        F = st.factor(_step_weight(fam, eta, d1, w))
        g = st.atv(d1) - u
        delta = F.solve(g)
        dec = st.unit_sum_u(g * delta)
        if not np.all(np.isfinite(dec)):
            raise InferenceError("penalized IRLS produced non-finite values")
        # Newton converges quadratically for canonical links: from a decrement below
        # ``quad_tol`` one more step lands within ~decrement^2 of the mode
        if dec.max() < (quad_tol if fam.canonical else tol):
            # take the (tiny) final Newton step unchecked: the Laplace log-determinant is
            # first-order sensitive to u, so u must be exact, not just the objective
            u = u + delta
            eta, ll, d1, w = rows(u)
            converged = True
            break
        step = np.ones(st.n_units)
        active = np.ones(st.n_units, dtype=bool)
        for _ in range(30):
            u_new = u + step[uou] * delta
            eta_new, ll_new, d1_new, w_new = rows(u_new)
            obj_new = -st.unit_sum(ll_new) + 0.5 * st.unit_sum_u(u_new * u_new)
            bad = ~(obj_new <= obj[:] + 1e-10 * (1.0 + np.abs(obj))) & active
            if not bad.any():
                break
            step = np.where(bad, step * 0.5, step)
            active = bad
        u, eta, ll, obj, d1, w = u_new, eta_new, ll_new, obj_new, d1_new, w_new
    # the factor kept at the mode, for the Laplace determinant and the conditional
    # variances, holds the observed information
    F = st.factor(w if fam.canonical else fam.laplace_curvature(eta, d1, w, order=1)[0])
    return ModeResult(u, eta, ll, d1, w, F, it, converged)


def glm_start(design: Design, maxit: int = 30) -> np.ndarray:
    """Fixed-effect start values: IRLS for the GLM without random effects (deterministic)."""
    d = design
    fam = FamilyKernel(d.family, d.y, d.trials, weights=d.weights)
    X = d.X
    beta = np.zeros(d.k)
    y = np.asarray(d.y, dtype=float)
    if d.family.link == "identity":  # least squares is the identity-link IRLS answer
        return np.linalg.lstsq(X, y - d.offset, rcond=None)[0]
    if "(Intercept)" in d.x_names:
        m = d.family.spec.start_mean(y, d.trials)
        beta[d.x_names.index("(Intercept)")] = float(d.family.linkfun(np.array([m]))[0])
        if d.family.link == "log":  # an offset is a log exposure
            beta[d.x_names.index("(Intercept)")] -= float(np.mean(d.offset))
    for _ in range(maxit):
        eta = X @ beta + d.offset
        d1, w = fam.score(eta)
        H = X.T @ (X * w[:, None]) + 1e-10 * np.eye(d.k)
        step = np.linalg.solve(H, X.T @ d1)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-9:
            break
    return beta
