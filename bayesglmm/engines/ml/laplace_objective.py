"""The Laplace/AGQ integrated likelihood of a GLMM as a function of ``(theta, beta)``
(:class:`LaplaceObjective`), the object every ML engine, the Bayesian integrated Laplace and
the profile intervals evaluate.

The random effects are ``b = Lambda(theta) u`` with ``u ~ N(0, I)``; ``theta`` holds, per
block, the column-major lower-triangular elements of the Cholesky factor of the block's
covariance (lme4's parameterization; diagonal elements bounded below by 0).  For given
``(theta, beta)`` the conditional mode ``u*`` comes from penalized IRLS
(:func:`~bayesglmm.engines.ml.pirls.pirls`), warm-started from the previous call, and the
Laplace deviance is

    -2 log L ~= -2 sum_i log f(y_i | eta_i*) + |u*|^2 + log det(A' W A + I),

with ``A = Z Lambda`` and ``W`` the observed information ``-d2 log f / d eta2`` at the mode
(the Fisher weight for a canonical link; for probit and cloglog the observed one, as the
``glmm`` package, where lme4 keeps the Fisher weight: the observed one is the Laplace
approximation proper and the closer one to the integral, see
``tests/test_peer_examples.py``).  The structure is exploited
(:mod:`bayesglmm.engines.ml.pirls`): a vector for one scalar term, the blocked Cholesky of
:mod:`bayesglmm.engines.ml.blocked_cholesky` for a vector-valued term or several blocks.

Gradients: one scalar term, Laplace or AGQ: :mod:`bayesglmm.engines.ml.agq`; for a
canonical link the same formulas fused with the mode search in
:mod:`bayesglmm.engines.ml.scalar_laplace`; one vector-valued term with a canonical link
likewise, per-group ``p x p`` algebra in closed form, in
:mod:`bayesglmm.engines.ml.vector_laplace`; otherwise, a vector term or several blocks:
:func:`~bayesglmm.engines.ml.laplace_derivatives.blocked_gradient`, from the selected
inverse of the blocked Cholesky; AGQ on one grouping factor with 2 or 3 terms,
:func:`~bayesglmm.engines.ml.agq.vector_deviance`: central differences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.agq import MAX_NAGQ_VECTOR, scalar_deviance, vector_deviance
from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure
from bayesglmm.engines.ml.laplace_derivatives import (
    blocked_gradient,
    central_gradient,
    difference_hessian,
    theta_terms,
)
from bayesglmm.engines.ml.laplace_eval import AGQError, LaplaceEval
from bayesglmm.engines.ml.nagq_limits import check_nagq
from bayesglmm.engines.ml.pirls import (
    FamilyKernel,
    ModeResult,
    ScalarStructure,
    ThetaLayout,
    make_structure,
    pirls,
)
from bayesglmm.engines.ml.quadrature import group_colsums
from bayesglmm.engines.ml.scalar_laplace import KIND_CODES, scalar_laplace
from bayesglmm.engines.ml.vector_laplace import VectorLaplace
from bayesglmm.engines.ml.warm_start import WarmStartedModes
from bayesglmm.errors import InferenceError

__all__ = ["AGQError", "LaplaceEval", "LaplaceObjective"]


class LaplaceObjective(WarmStartedModes):
    """The Laplace/AGQ integrated likelihood of a design as a function of ``(theta, beta)``.

    Reusable by other engines (e.g. a Bayesian integrated-Laplace engine with priors on
    ``beta`` and ``log theta``): :meth:`evaluate` returns the deviance, the conditional
    modes and curvature and, cheaply, the gradient; the inner mode search is warm-started
    from the previous call (:attr:`u`; reset with :meth:`reset`).

    Parameters
    ----------
    design : Design
    sigma : float, optional
        Gaussian residual SD (gaussian family only; default 1).

    Attributes
    ----------
    layout : ThetaLayout
    n_theta, k : int
        Sizes of ``theta`` and ``beta``; the flat parameter vector is ``[theta, beta]``.
    lower : ndarray
        Lower bounds of the flat vector (0 for Cholesky diagonals, ``-inf`` elsewhere).
    scalar : bool
        One random-effect term with one column: analytic gradients and AGQ available.
    vector_agq : bool
        One grouping factor with 2 or 3 terms: AGQ on the tensor-product rule available
        (gradient by central differences).
    """

    def __init__(self, design: Design, *, sigma: float = 1.0) -> None:
        if not design.blocks:
            raise InferenceError("the model has no random-effect terms; use a GLM")
        self.design = design
        self.X = np.ascontiguousarray(design.X, dtype=float)
        self.offset = np.ascontiguousarray(design.offset, dtype=float)
        self.layout = ThetaLayout.from_blocks(design.blocks)
        self.n_theta = self.layout.size
        self.k = design.k
        self.lower = np.concatenate([self.layout.lower_bounds(), np.full(self.k, -np.inf)])
        self.st = make_structure(design)
        self.scalar = self.st.kind == "scalar"
        # the analytic gradient of the blocked structure (several blocks or a vector term)
        self.analytic = self.st.kind == "blocked"
        if self.analytic:
            self._theta_terms = theta_terms(self.layout, self.blocked_st)
        self.q = self.st.q
        self.L = design.blocks[0].n_levels if self.scalar else None
        self.vector_agq = len(design.blocks) == 1 and design.blocks[0].n_terms in MAX_NAGQ_VECTOR
        self.fam = FamilyKernel(design.family, design.y, design.trials, sigma, design.weights)
        WarmStartedModes.__init__(self, self.q)
        self.n_evals = 0
        # the fused Numba path (one scalar term, canonical link, Laplace)
        self._kind_code = KIND_CODES.get(self.fam.kind) if self.scalar else None
        if self._kind_code is not None:
            t = self.fam.trials
            self._n = np.ones(self.fam.y.size) if t is None else np.ascontiguousarray(t, float)
        # the fused Numba path for one vector-valued term (canonical link, Laplace)
        self._vector = VectorLaplace.for_design(design, self.fam, self.layout, self.X, self.offset)

    # ------------------------------------------------------------------ helpers
    def check_nagq(self, nagq: int) -> None:
        """Raise :class:`AGQError` unless AGQ is possible for this design
        (:func:`~bayesglmm.engines.ml.nagq_limits.check_nagq`)."""
        check_nagq(self.design, nagq)

    def chol_factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-block lower-triangular factors ``Lambda_b`` of the covariances."""
        return self.layout.factors(np.asarray(theta, dtype=float))

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(theta, beta)`` from the flat vector ``[theta, beta]``."""
        params = np.asarray(params, dtype=float)
        return params[: self.n_theta], params[self.n_theta : self.n_theta + self.k]

    # ------------------------------------------------------------------ evaluation
    def mode_at(self, theta: np.ndarray, beta: np.ndarray) -> ModeResult:
        """Conditional mode of ``u`` at ``(theta, beta)`` (warm-started; updates :attr:`u`)."""
        theta = np.asarray(theta, dtype=float)
        beta = np.asarray(beta, dtype=float)
        self.st.set_factors(self.chol_factors(theta))
        eta_fixed = self.offset + self.X @ beta
        u0 = self._predicted_start(theta, beta)
        try:
            m = pirls(self.st, self.fam, eta_fixed, u0)
        except InferenceError:
            # a far-off warm start can put the weights out of floating-point range (exp of
            # a huge eta): start again from zero
            if not np.any(u0):
                raise
            self.reset()
            m = pirls(self.st, self.fam, eta_fixed, self.u)
        if not (m.converged and np.all(np.isfinite(m.u))):
            # a far-off warm start (a long optimiser step with a log link) can need more
            # Newton steps than allowed: start again from zero
            self.reset()
            m0 = pirls(self.st, self.fam, eta_fixed, self.u)
            if m0.converged or not np.all(np.isfinite(m.u)):
                m = m0
        self.u = m.u
        self._last = None
        return m

    def evaluate(
        self,
        beta: np.ndarray,
        theta: np.ndarray,
        nagq: int = 1,
        *,
        gradient: bool = False,
        keep_mode: bool = False,
    ) -> LaplaceEval:
        """Integrated deviance at ``(beta, theta)``, with modes, curvature and gradient.

        Parameters
        ----------
        beta : ndarray (k,)
        theta : ndarray (n_theta,)
        nagq : int
            1 = Laplace; ``> 1`` = adaptive Gauss-Hermite (one grouping factor with up to
            3 terms, see :meth:`check_nagq`).
        gradient : bool
            Also compute ``d deviance / d [theta, beta]`` (analytic for one scalar term and
            for Laplace on a blocked structure; central differences for AGQ with a vector
            term: ``2 (n_theta + k)`` extra evaluations).
        keep_mode : bool
            Return the inner solver's state (:attr:`LaplaceEval.mode`).  Otherwise one
            scalar term with a canonical link takes the fused Numba path
            (:mod:`~bayesglmm.engines.ml.scalar_laplace`), and so does one vector-valued
            term at ``nagq = 1`` (:mod:`~bayesglmm.engines.ml.vector_laplace`); their
            ``mode`` is None.
        """
        self.check_nagq(nagq)
        beta = np.asarray(beta, dtype=float)
        theta = np.asarray(theta, dtype=float)
        self.n_evals += 1
        if self._kind_code is not None and not keep_mode:
            return self._evaluate_fused(beta, theta, gradient, nagq)
        if self._vector is not None and not keep_mode and nagq == 1:
            return self._evaluate_vector(beta, theta, gradient)
        m = self.mode_at(theta, beta)
        if self.scalar:
            eta_fixed = self.offset + self.X @ beta
            dev, grad, _ = scalar_deviance(
                self.scalar_st, self.fam, self.X, eta_fixed, m, nagq, grad=gradient
            )
            if m.sens is not None and np.all(np.isfinite(m.sens[0])):
                self._last = (self.u, theta.copy(), beta.copy(), m.sens[0], m.sens[1])
        else:
            if nagq > 1:  # one factor with 2-3 terms (check_nagq): tensor-product AGQ
                dev = vector_deviance(self.st, self.fam, self.offset + self.X @ beta, m, nagq)[0]
            else:
                dev = float(-2.0 * (m.ll.sum() + self.fam.const) + m.u @ m.u + m.factor.logdet())
            grad = None
            if gradient:
                grad = self._blocked_gradient(m, beta) if self.analytic and nagq == 1 else None
                if grad is not None and np.all(np.isfinite(self._sens[0])):
                    self._last = (self.u, theta.copy(), beta.copy(), *self._sens)
                if grad is None:
                    grad = self._fd_gradient(np.concatenate([theta, beta]), nagq)
                    self.st.set_factors(self.chol_factors(theta))
                    self.u = m.u
        if not np.isfinite(dev):
            raise InferenceError("the Laplace deviance is not finite at these parameters")
        return LaplaceEval(dev, grad, m.u, self._modes(theta, m.u), m, m.n_iter)

    def _evaluate_fused(
        self, beta: np.ndarray, theta: np.ndarray, gradient: bool, nagq: int = 1
    ) -> LaplaceEval:
        """:meth:`evaluate` for one scalar term with a canonical link (Numba)."""
        st = self.scalar_st
        assert self._kind_code is not None  # set for a scalar term with a row kernel
        eta_fixed = self.offset + self.X @ beta
        u0 = self._predicted_start(theta, beta)
        args = (self._kind_code, self.fam.y, self._n, eta_fixed, self.X, st.z, st.index)
        r, dev = self._mode_search(
            u0,
            theta,
            beta,
            gradient,
            lambda start: scalar_laplace(
                *args, float(theta[0]), start, gradient=gradient, nagq=nagq
            ),
            self.fam.const,
        )
        grad = r.get("gradient")
        modes = ((self.u * theta[0])[:, None],)
        extra = {k: r[k] for k in ("H", "du_dtheta", "du_dbeta") if k in r}
        return LaplaceEval(dev, grad, self.u, modes, None, r["n_iter"], extra)

    def _evaluate_vector(self, beta: np.ndarray, theta: np.ndarray, gradient: bool) -> LaplaceEval:
        """:meth:`evaluate` for one vector-valued term with a canonical link at ``nagq = 1``
        (:mod:`~bayesglmm.engines.ml.vector_laplace`)."""
        Lam = self.chol_factors(theta)[0]
        u0 = self._predicted_start(theta, beta)
        r, dev = self._mode_search(
            u0,
            theta,
            beta,
            gradient,
            lambda start: self._vector.evaluate(beta, Lam, start, gradient=gradient),
            self.fam.const,
        )
        grad = r.get("gradient")
        extra = {k: r[k] for k in ("du_dtheta", "du_dbeta", "cond_var") if k in r}
        return LaplaceEval(dev, grad, self.u, self._modes(theta, self.u), None, r["n_iter"], extra)

    def scalar_mode_sensitivities(
        self, theta: np.ndarray, beta: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One scalar term: the mode ``u``, the curvature ``H`` and ``du/dtheta``, ``du/dbeta``.

        From ``theta sum_i z_i d1_i = u`` at the mode (implicit-function theorem):
        ``du/dbeta = -theta sum_i z_i w_i x_i / H`` and ``du/dtheta = u (2 - H) / (theta H)``.

        Returns
        -------
        u, H : ndarray (L,)
        du_dtheta : ndarray (L,)
        du_dbeta : ndarray (L, k)
        """
        if not self.scalar:
            raise InferenceError("mode sensitivities are for one scalar random-effect term")
        theta = np.asarray(theta, dtype=float)
        if self._kind_code is not None:
            ev = self.evaluate(beta, theta, 1, gradient=True)
            x = ev.extra
            return ev.u, x["H"], x["du_dtheta"], x["du_dbeta"]
        m = self.mode_at(theta, beta)
        th, st = float(theta[0]), self.scalar_st
        H = np.asarray(m.factor.d, dtype=float)
        w_obs = self.fam.laplace_curvature(m.eta, m.d1, m.w)[0]
        a = group_colsums(st.index, st.z * w_obs, self.X, st.L)
        return m.u, H, m.u * (2.0 - H) / (th * H), -th * a / H[:, None]

    def deviance(self, params: np.ndarray, nagq: int = 1) -> float:
        """Deviance at the flat vector ``[theta, beta]``."""
        theta, beta = self.split(params)
        return self.evaluate(beta, theta, nagq).deviance

    def deviance_grad(self, params: np.ndarray, nagq: int = 1) -> tuple[float, np.ndarray]:
        """Deviance and its gradient at ``[theta, beta]``."""
        theta, beta = self.split(params)
        ev = self.evaluate(beta, theta, nagq, gradient=True)
        assert ev.gradient is not None  # asked for
        return ev.deviance, ev.gradient

    @property
    def scalar_st(self) -> ScalarStructure:
        """The structure, on the paths of one scalar term."""
        assert isinstance(self.st, ScalarStructure)
        return self.st

    @property
    def blocked_st(self) -> BlockedStructure:
        """The structure, on the paths of the blocked factorization."""
        assert isinstance(self.st, BlockedStructure)
        return self.st

    def _blocked_gradient(self, m: ModeResult, beta: np.ndarray) -> np.ndarray | None:
        """Analytic gradient of the blocked structure
        (:func:`~bayesglmm.engines.ml.laplace_derivatives.blocked_gradient`); keeps the mode
        sensitivities for the next warm start."""
        out = blocked_gradient(
            self.blocked_st, self.fam, m, beta, self.X, self.q, self._theta_terms
        )
        if out is None:
            return None
        grad, self._sens = out
        return grad

    def _restarting(self, u0: np.ndarray, f: Callable[[np.ndarray], Any]) -> Callable:
        """``f`` with the warm start reset to ``u0`` before each call (difference quotients
        must not depend on the order of their evaluations)."""

        def call(x: np.ndarray) -> Any:
            self.u = u0.copy()
            return f(x)

        return call

    def _fd_gradient(self, x: np.ndarray, nagq: int, h: float = 1e-5) -> np.ndarray:
        """Central-difference gradient of the deviance at ``[theta, beta]``."""
        u0 = self.u.copy()
        try:
            return central_gradient(self._restarting(u0, lambda p: self.deviance(p, nagq)), x, h)
        finally:
            self.u = u0

    def hessian(
        self, params: np.ndarray, nagq: int = 1, h: float = 1e-4, g0: np.ndarray | None = None
    ) -> np.ndarray:
        """Finite-difference Hessian of the deviance over ``[theta, beta]``
        (:func:`~bayesglmm.engines.ml.laplace_derivatives.difference_hessian`): of the analytic
        gradient for one scalar term or a blocked structure at ``nagq = 1``, else second
        differences of the deviance (lme4's ``deriv12``)."""
        x = np.asarray(params, dtype=float)
        u0 = self.u.copy()
        try:
            return difference_hessian(
                self._restarting(u0, lambda p: self.deviance_grad(p, nagq)[1]),
                self._restarting(u0, lambda p: self.deviance(p, nagq)),
                x,
                from_gradient=bool(self.scalar or (self.analytic and nagq == 1)),
                h=h,
                g0=g0,
            )
        finally:
            self.u = u0

    # ------------------------------------------------------------------ modes
    def _modes(self, theta: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, ...]:
        out, pos = [], 0
        for b, F in zip(self.design.blocks, self.chol_factors(theta), strict=True):
            size = b.n_levels * b.n_terms
            out.append(u[pos : pos + size].reshape(b.n_levels, b.n_terms) @ F.T)
            pos += size
        return tuple(out)

    def conditional(self, beta: np.ndarray, theta: np.ndarray) -> tuple[tuple, tuple]:
        """Conditional modes ``b`` and conditional covariances ``Lambda M^-1 Lambda'`` per block.

        Returns
        -------
        modes : tuple of (levels, p)
        cond_var : tuple of (levels, p, p)
        """
        if self._vector is not None:  # the fused path: Lambda M^-1 Lambda' per group
            ev = self.evaluate(beta, theta, 1, gradient=True)
            return ev.modes, (ev.extra["cond_var"],)
        ev = self.evaluate(beta, theta, 1, keep_mode=True)
        assert ev.mode is not None  # keep_mode
        inv = ev.mode.factor.inv_blocks()
        cv = tuple(
            np.einsum("ij,gjk,lk->gil", F, Minv, F)
            for F, Minv in zip(self.chol_factors(theta), inv, strict=True)
        )
        return ev.modes, cv
