"""Maximum likelihood by Laplace approximation and adaptive Gauss-Hermite quadrature
(lme4's ``glmer(nAGQ = 1)`` and ``glmer(nAGQ = Q)``), in NumPy/SciPy, with a fused Numba
kernel for the commonest case.

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

The outer problem, minimizing the deviance over ``(theta, beta)`` jointly (lme4's second
stage), is solved by L-BFGS-B with the analytic gradient (one scalar term, Laplace or AGQ:
:mod:`bayesglmm.engines.ml.agq`; for a canonical link the same formulas fused with the mode
search in :mod:`bayesglmm.engines.ml.scalar_laplace`; one vector-valued term with a canonical
link likewise, per-group ``p x p`` algebra in closed form, in
:mod:`bayesglmm.engines.ml.vector_laplace`; otherwise, a vector term or several blocks:
:meth:`LaplaceObjective._blocked_gradient`, from the selected inverse of the blocked
Cholesky; AGQ on one grouping factor with 2 or 3 terms,
:func:`~bayesglmm.engines.ml.agq.vector_deviance`: central differences), then polished by bounded Newton steps on the finite-difference Hessian (of the
gradient); a polish that ends with a projected gradient above 1e-3 (it can leave a
boundary face along negative curvature and run out of Newton rounds) hands back to L-BFGS-B.
Where that ends with a variance of 0 or a correlation of +-1, it restarts off
the boundary while an interior point is better (:mod:`bayesglmm.engines.ml.boundary`: the
deviance is even in each Cholesky diagonal, so a gradient method can stall there).  A
correlated vector term on few groups or on a boundary face gets a screened multi-start from
correlations +-0.9 (:func:`~bayesglmm.engines.ml.boundary.vector_multistart`), reported in
the fit's messages.
Measured on the issue-14 bench shapes at 1e4 rows and grouseticks
(``benchmarks/ml_structures.py --optimizers --quick``, L-BFGS-B stage): the analytic
gradient needs 9-16x fewer deviance evaluations than central differences (1-15x less
time: a difference evaluation is only a warm-started mode search) and 10-40x fewer than a
derivative-free search (SciPy's bounded Powell; 4-18x less time).  Standard errors come from that
Hessian of the deviance over ``(theta, beta)``, as lme4 computes them
(``vcov = 2 H^-1``, fixed-effect block).

lme4 quirk reproduced: for ``nAGQ > 1`` glmer's deviance sums deviance residuals instead of
``-2 log f(y | mu)`` (``glmerAGQ`` in lme4's ``external.cpp``), so its reported
log-likelihood is the properly normalized one minus the saturated model's log-likelihood
(``sum_i log f(y_i | mu_i = y_i)``).  That constant is 0 for Bernoulli data (toenail: both
agree), -530.64 for the epilepsy counts (glmer: -480.04 at nAGQ = 20 against -1010.68 at
Laplace).  :attr:`MLEstimate.loglik` follows glmer (so AIC/BIC/LRTs match glmer's output);
:attr:`MLEstimate.loglik_normalized` is always the properly normalized value, which is the
one to compare across ``nagq`` values or with other software.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from bayesglmm.design.separation import ML_UNRELIABLE, detect_separation
from bayesglmm.design.types import Design
from bayesglmm.engines.blas_threads import one_blas_thread
from bayesglmm.engines.ml.agq import MAX_NAGQ_VECTOR, scalar_deviance, vector_deviance
from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure, grad_pass1, grad_pass2
from bayesglmm.engines.ml.boundary import (
    correlated_probes,
    optimize_off_boundary,
    theta_scales,
    vector_multistart,
)
from bayesglmm.engines.ml.estimate import SINGULAR_MSG, MLEstimate
from bayesglmm.engines.ml.pirls import (
    FamilyKernel,
    ModeResult,
    ScalarStructure,
    ThetaLayout,
    glm_start,
    make_structure,
    pirls,
    saturated_loglik,
    weighted_lmm_fit,
)
from bayesglmm.engines.ml.quadrature import group_colsums
from bayesglmm.engines.ml.scalar_laplace import KIND_CODES, scalar_laplace
from bayesglmm.engines.ml.vector_laplace import VectorLaplace
from bayesglmm.engines.scaling import standardization, standardized_ml
from bayesglmm.errors import (
    ConvergenceWarning,
    IdentifiabilityWarning,
    InferenceError,
)

__all__ = ["AGQError", "LaplaceEval", "LaplaceObjective", "fit_ml", "saturated_loglik"]

_SEPARATION_MSG = ML_UNRELIABLE  # every separation message starts so


_MAX_CYCLES = 4
"""L-BFGS-B + Newton polish cycles at most per local optimization (:func:`fit_ml`)."""

_CYCLE_GTOL = 1e-3
"""A polished point with a larger projected gradient goes back to L-BFGS-B (half lme4's
``check.conv.grad`` tolerance of 2e-3, below which a fit counts as converged)."""


_PREDICT_TRUST = 3.0
"""Largest change of a spherical mode the first-order warm start may predict
(:meth:`LaplaceObjective._predicted_start`); beyond it the search starts from the last mode."""

_SCREEN_ITER = 15
"""L-BFGS-B iterations of the short search that screens each multi-start point."""


class AGQError(InferenceError, ValueError):
    """``nagq > 1`` was asked for a model adaptive quadrature does not cover (see
    :meth:`LaplaceObjective.check_nagq`)."""


@dataclass
class LaplaceEval:
    """One evaluation of the integrated likelihood at ``(beta, theta)``.

    Attributes
    ----------
    deviance : float
        ``-2 log L`` (properly normalized) under the Laplace (``nagq = 1``) or AGQ rule.
    gradient : ndarray or None
        ``d deviance / d (theta, beta)`` when requested.
    u : ndarray (q,)
        Spherical conditional modes (``b = Lambda u``), blocks concatenated level-major.
    modes : tuple of ndarray (levels, p)
        Conditional modes ``b`` per block.
    mode : ModeResult or None
        Inner-solver state at the mode: ``eta``, weights, the factor of ``A'WA + I``.
        None from the fused scalar and vector paths (ask :meth:`LaplaceObjective.evaluate` for
        ``keep_mode=True``).
    """

    deviance: float
    gradient: np.ndarray | None
    u: np.ndarray
    modes: tuple[np.ndarray, ...]
    mode: ModeResult | None
    n_inner: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def loglik(self) -> float:
        """Approximate log-likelihood, ``-deviance / 2``."""
        return -0.5 * self.deviance


class LaplaceObjective:
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
            self._theta_terms = _theta_terms(self.layout, self.blocked_st)
        self.q = self.st.q
        self.L = design.blocks[0].n_levels if self.scalar else None
        self.vector_agq = len(design.blocks) == 1 and design.blocks[0].n_terms in MAX_NAGQ_VECTOR
        self.fam = FamilyKernel(design.family, design.y, design.trials, sigma, design.weights)
        self.u = np.zeros(self.q)
        self.n_evals = 0
        self._last: tuple | None = None
        # the fused Numba path (one scalar term, canonical link, Laplace)
        self._kind_code = KIND_CODES.get(self.fam.kind) if self.scalar else None
        if self._kind_code is not None:
            t = self.fam.trials
            self._n = np.ones(self.fam.y.size) if t is None else np.ascontiguousarray(t, float)
        # the fused Numba path for one vector-valued term (canonical link, Laplace)
        self._vector = VectorLaplace.for_design(design, self.fam, self.layout, self.X, self.offset)

    # ------------------------------------------------------------------ helpers
    def reset(self) -> None:
        """Forget the warm start (modes restart from 0)."""
        self.u = np.zeros(self.q)
        self._last = None

    def chol_factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-block lower-triangular factors ``Lambda_b`` of the covariances."""
        return self.layout.factors(np.asarray(theta, dtype=float))

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(theta, beta)`` from the flat vector ``[theta, beta]``."""
        params = np.asarray(params, dtype=float)
        return params[: self.n_theta], params[self.n_theta : self.n_theta + self.k]

    def check_nagq(self, nagq: int) -> None:
        """Raise :class:`AGQError` unless AGQ is possible for this design.

        ``nagq > 1`` needs one grouping factor: one scalar term (any ``nagq``), or 2 or 3
        terms with ``nagq`` at most :data:`~bayesglmm.engines.ml.agq.MAX_NAGQ_VECTOR`
        (25 for 2 terms, 11 for 3: ``nagq^q`` nodes per level).
        """
        if nagq < 1:
            raise AGQError(f"nagq must be >= 1, got {nagq}")
        if nagq == 1 or self.scalar:
            return
        blocks = self.design.blocks
        desc = ", ".join(f"({b.name})" for b in blocks)
        if not self.vector_agq:
            raise AGQError(
                "nagq > 1 needs one grouping factor with at most 3 random-effect terms "
                f"(e.g. (1 | g), (1 + x | g), (1 + x + z | g)); this model has {len(blocks)} "
                f"block(s): {desc}. Use nagq=1 (Laplace)"
            )
        q = blocks[0].n_terms
        cap = MAX_NAGQ_VECTOR[q]
        if nagq > cap:
            raise AGQError(
                f"nagq={nagq} with {q} random-effect terms in {desc} needs {nagq}^{q} = "
                f"{nagq**q} quadrature nodes per level; the limits are nagq <= "
                f"{MAX_NAGQ_VECTOR[2]} for 2 terms and nagq <= {MAX_NAGQ_VECTOR[3]} for 3 terms. "
                f"Use nagq <= {cap}"
            )

    # ------------------------------------------------------------------ evaluation
    def _predicted_start(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Warm start of the mode search: the last mode, moved to ``(theta, beta)`` to first
        order by its sensitivities (implicit-function theorem) when they are known, which
        saves inner iterations along the optimizer's path.

        A prediction that moves some mode by more than :data:`_PREDICT_TRUST` (spherical
        units: prior SDs) is past where a first-order step can be trusted (a long
        line-search trial): the last mode is the start then.  On grouseticks (three
        factors, Poisson, an observation-level effect) such predictions cost 20-25 Newton
        steps where the last mode needed 7-8: 119 -> 89 inner steps per fit.
        """
        last = self._last
        if last is None or last[0] is not self.u:
            return self.u
        _, th0, b0, du_dt, du_db = last
        if du_dt.ndim == 2:  # blocked structure: (q, n_theta)
            step = du_dt @ (theta - th0) + du_db @ (beta - b0)
        else:
            step = du_dt * (theta[0] - th0[0]) + du_db @ (beta - b0)
        if not np.max(np.abs(step), initial=0.0) <= _PREDICT_TRUST:
            return self.u
        return self.u + step

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
        )
        grad = r.get("gradient")
        modes = ((self.u * theta[0])[:, None],)
        extra = {k: r[k] for k in ("H", "du_dtheta", "du_dbeta") if k in r}
        return LaplaceEval(dev, grad, self.u, modes, None, r["n_iter"], extra)

    def _mode_search(
        self,
        u0: np.ndarray,
        theta: np.ndarray,
        beta: np.ndarray,
        gradient: bool,
        run: Callable[[np.ndarray], dict[str, Any]],
    ) -> tuple[dict[str, Any], float]:
        """A fused path's mode search, ``run(start)``, from the predicted warm start ``u0``,
        else the last mode, else zeros (a far-off start, a long optimiser step with a log
        link, can need hundreds of Newton steps, and an unconverged mode would give a wrong
        deviance); keeps the mode and its sensitivities for the next warm start.  Returns the
        kernel's record and the deviance."""
        starts = [u0, self.u, np.zeros(self.q)] if u0 is not self.u else [u0, np.zeros(self.q)]
        for start in starts:
            r = run(start)
            if r["ok"] and r["converged"] and np.all(np.isfinite(r["u"])):
                break
        else:
            self.reset()
            what = "produced non-finite values" if not r["ok"] else "did not converge"
            raise InferenceError(f"the conditional-mode search {what} at these parameters")
        self.u = r["u"]
        self._last = None
        dev = r["deviance"] - 2.0 * self.fam.const
        if not np.isfinite(dev):
            raise InferenceError("the Laplace deviance is not finite at these parameters")
        if gradient and np.all(np.isfinite(r["du_dtheta"])):
            self._last = (self.u, theta.copy(), beta.copy(), r["du_dtheta"], r["du_dbeta"])
        return r, float(dev)

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
        Returns None when ``H`` is not positive definite (a non-canonical link far from the
        mode); the caller then differences.
        """
        st, fam = self.blocked_st, self.fam
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
        G, wh, v = np.empty((n, P)), np.empty(n), np.empty(self.q)
        grad_pass1(st.a, st.cols_ext, st.slots, st.pair_t, st.pair_u, sel, dw, G, wh, v)
        z = H.solve(v)
        Zt, tt = self._theta_terms
        nt = tt.size
        c_u, g_theta = np.empty(n), np.empty(nt)
        rhs = np.empty((self.q, nt + self.k))
        grad_pass2(st.a, st.cols_ext, u, z, d1, w, w_obs, wh, G, Zt, tt, self.X, c_u, g_theta, rhs)
        g_beta = self.X.T @ c_u
        # mode sensitivities du/d[theta, beta] = H^-1 (dg/d[theta, beta]) for the next warm
        # start (first-order prediction of the mode, as the scalar path does)
        du = H.solve(rhs)
        self._sens = (du[:, :nt], du[:, nt:])
        return np.concatenate([g_theta, g_beta])

    def _fd_gradient(self, x: np.ndarray, nagq: int, h: float = 1e-5) -> np.ndarray:
        u0 = self.u.copy()
        g = np.empty_like(x)
        for i in range(x.size):
            step = h * max(1.0, abs(x[i]))
            xp, xm = x.copy(), x.copy()
            xp[i] += step
            xm[i] -= step
            self.u = u0.copy()
            fp = self.deviance(xp, nagq)
            self.u = u0.copy()
            fm = self.deviance(xm, nagq)
            g[i] = (fp - fm) / (2 * step)
        self.u = u0
        return g

    def hessian(
        self, params: np.ndarray, nagq: int = 1, h: float = 1e-4, g0: np.ndarray | None = None
    ) -> np.ndarray:
        """Finite-difference Hessian of the deviance over ``[theta, beta]``.

        One scalar term or a blocked structure at ``nagq = 1``: forward differences (step
        ``1e-5``) of the analytic gradient, symmetrized, reusing ``g0`` (the gradient at
        ``params``) when given.  Otherwise (AGQ on a vector term, whose gradient is itself
        differenced) second differences of the deviance, as lme4's ``deriv12`` (step
        ``h = 1e-4``).
        """
        x = np.asarray(params, dtype=float)
        n = x.size
        u0 = self.u.copy()
        steps = h * np.maximum(1.0, np.abs(x))
        H = np.empty((n, n))
        if self.scalar or (self.analytic and nagq == 1):
            if g0 is None:
                g0 = self.deviance_grad(x, nagq)[1]
            steps = 1e-5 * np.maximum(1.0, np.abs(x))
            for i in range(n):
                xp = x.copy()
                xp[i] += steps[i]
                self.u = u0.copy()
                gp = self.deviance_grad(xp, nagq)[1]
                H[i] = (gp - g0) / steps[i]
            H = 0.5 * (H + H.T)
        else:
            self.u = u0.copy()
            f0 = self.deviance(x, nagq)
            fp, fm = np.empty(n), np.empty(n)
            for i in range(n):
                e = np.zeros(n)
                e[i] = steps[i]
                self.u = u0.copy()
                fp[i] = self.deviance(x + e, nagq)
                self.u = u0.copy()
                fm[i] = self.deviance(x - e, nagq)
                H[i, i] = (fp[i] - 2 * f0 + fm[i]) / steps[i] ** 2
            for i in range(n):
                for j in range(i + 1, n):
                    e = np.zeros(n)
                    e[i], e[j] = steps[i], steps[j]
                    self.u = u0.copy()
                    fpp = self.deviance(x + e, nagq)
                    self.u = u0.copy()
                    fmm = self.deviance(x - e, nagq)
                    H[i, j] = H[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (
                        2 * steps[i] * steps[j]
                    )
        self.u = u0
        return H

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


# ---------------------------------------------------------------------------- FD helpers
def _theta_terms(layout: ThetaLayout, st: BlockedStructure) -> tuple[np.ndarray, np.ndarray]:
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


# ---------------------------------------------------------------------------- fitting
def _projected_grad(x: np.ndarray, g: np.ndarray, lower: np.ndarray) -> np.ndarray:
    pg = g.copy()
    at = (x <= lower + 1e-12) & (g > 0)
    pg[at] = 0.0
    return pg


def newton_polish(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    hessian: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    lower: np.ndarray,
    max_rounds: int = 20,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Bounded Newton steps with backtracking from ``x``; returns ``(x, H, f, g)`` at the end.

    Parameters
    ----------
    fg : callable
        ``x -> (f, gradient)``.
    hessian : callable
        ``(x, gradient at x) -> Hessian`` (finite differences in the callers).
    x : ndarray
    lower : ndarray
        Lower bounds (``-inf`` where there is none); coordinates at their bound with a
        gradient pushing outwards stay fixed.
    max_rounds : int
        Newton steps at most (they stop earlier once the Newton decrement is below 1e-10:
        20, not 6, let a flat optimum of tiny SDs finish, a ``(1 + x1 + x2 | g)`` fit ended
        with max|grad| 0.11 after 6); the Hessian is recomputed after a step that moved
        > 1e-3.
        Where the Hessian is not positive definite the step uses ``H + lambda I``.
    """
    f, g = fg(x)
    H = hessian(x, g)
    for _ in range(max_rounds):
        free = ~((x <= lower + 1e-10) & (g > 0))
        if not free.any():
            break
        Hf = H[np.ix_(free, free)]
        ev = np.linalg.eigvalsh(0.5 * (Hf + Hf.T)) if np.all(np.isfinite(Hf)) else None
        if ev is None:
            break
        if ev[0] <= 1e-8 * max(1.0, abs(ev[-1])):
            # indefinite: a Levenberg shift makes the step a descent direction
            Hf = Hf + (1e-3 * max(1.0, abs(ev[-1])) - ev[0]) * np.eye(Hf.shape[0])
        try:
            step_f = -np.linalg.solve(Hf, g[free])
        except np.linalg.LinAlgError:
            break
        dec = float(-g[free] @ step_f)
        if not np.isfinite(dec) or dec < 1e-10:
            break
        step = np.zeros_like(x)
        step[free] = step_f
        t, accepted = 1.0, False
        for _ in range(20):
            xn = np.maximum(x + t * step, lower)
            fn, gn = fg(xn)
            if fn <= f + 1e-12:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        moved = float(np.max(np.abs(xn - x)))
        x, f, g = xn, fn, gn
        if moved > 1e-3:
            H = hessian(x, g)
    return x, H, f, g


@standardized_ml(finish=lambda design, est: _separation_check(design, est))
def fit_ml(
    design: Design,
    nagq: int = 1,
    *,
    start: dict | None = None,
    tol: float = 1e-10,
    maxiter: int = 500,
) -> MLEstimate:
    """Maximum-likelihood fit of a GLMM by Laplace (``nagq=1``) or AGQ (``nagq > 1``).

    Gaussian designs are fitted exactly (profiled ML of the linear mixed model).  The fit
    runs on standardized fixed-effect columns and is reported on the user's scale
    (:func:`bayesglmm.engines.scaling.standardized_ml`).

    Parameters
    ----------
    design : Design
    nagq : int
        Gauss-Hermite nodes per group and dimension; ``> 1`` only for one grouping factor:
        one scalar term, or 2 terms (``nagq <= 25``) or 3 (``nagq <= 11``), with
        ``nagq^q`` nodes per level and the gradient by central differences.
    start : dict, optional
        ``{"beta": ..., "theta": ...}`` start values (default: GLM fit and lme4's
        ``theta = 1``, in units of ``1 / rms`` of each term's column of ``Z``).
    tol : float
        Relative function tolerance of the L-BFGS-B stage.
    maxiter : int
        Iteration limit of the L-BFGS-B stage.

    Returns
    -------
    MLEstimate

    Raises
    ------
    AGQError
        ``nagq > 1`` on a model with several blocks or more than 3 terms, or ``nagq``
        beyond the cap for 2 or 3 terms.
    InferenceError
        The deviance became non-finite.
    """
    if not design.blocks:  # a GLM: exact IRLS (bayesglmm.engines.glm)
        from bayesglmm.engines.glm import fit_glm_ml

        return fit_glm_ml(design, nagq=nagq, start=start)
    t0 = time.perf_counter()
    nagq = int(nagq)
    if design.family.is_linear:  # the LMM: profiled ML (fit_ml_dispersion is the general path)
        if nagq != 1:
            raise AGQError("nagq > 1 is not used for the gaussian family (Laplace is exact)")
        return _fit_gaussian(design, start=start, t0=t0)
    obj = LaplaceObjective(design)
    obj.check_nagq(nagq)
    start = start or {}
    scales = np.concatenate([theta_scales(design.blocks, obj.n_theta), np.ones(obj.k)])
    # default start: lme4's theta = 1 (identity), but in units of 1 / rms of each term's
    # column, so a random slope on a covariate in large or small units starts at an effect
    # size of 1 as an intercept does (from raw theta = 1 such a slope starts at a tiny or
    # huge SD, and L-BFGS-B can end in a worse local optimum: a probit slope on a column of
    # scale 0.01 ended 2.9 log-likelihood units below glmm's, tests/test_ml_structures_property)
    default = obj.layout.default() * scales[: obj.n_theta]
    theta0 = np.asarray(start.get("theta", default), dtype=float)
    if "beta" in start:
        beta0 = np.asarray(start["beta"], dtype=float)
    else:
        with one_blas_thread():  # tall-skinny least squares: thread hand-offs, no gain
            beta0 = glm_start(design)
    x0 = np.concatenate([theta0, beta0])
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in obj.lower]

    last: list = [None, 0.0, None]  # the last point evaluated, its deviance and gradient

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        # the polish starts where L-BFGS-B stopped, which it has just evaluated
        if last[0] is not None and np.array_equal(x, last[0]):
            return last[1], last[2].copy()
        # a trial point where the mode search fails (a long step with a log link) is
        # infinitely bad: the line searches back off it; the start itself still raises
        try:
            f, g = obj.deviance_grad(x, nagq)
        except InferenceError:
            if np.array_equal(x, x0):
                raise
            return np.inf, np.zeros_like(x)
        last[:] = [np.array(x, dtype=float, copy=True), f, np.array(g, copy=True)]
        return f, g

    def run(start_x: np.ndarray) -> tuple:
        x, nit, f_prev = start_x, 0, np.inf
        for _ in range(_MAX_CYCLES):
            res = optimize.minimize(
                fg,
                x,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-6, "maxcor": 20},
            )
            nit += int(res.nit)
            x, H, f, g = newton_polish(
                fg, lambda p, g0: obj.hessian(p, nagq, g0=g0), res.x, obj.lower
            )
            # the polish can leave a boundary face L-BFGS-B stopped on (a Levenberg step
            # along negative curvature: the deviance is even in a Cholesky diagonal, so
            # its derivative there is 0) and then run out of Newton rounds far from the
            # optimum: hand back to L-BFGS-B while that still improves the fit
            pg = _projected_grad(x, g, obj.lower)
            if not pg.size or np.max(np.abs(pg)) < _CYCLE_GTOL or not f < f_prev - 1e-9:
                break
            f_prev = f
        return x, f, H, g, nit

    def dev(x: np.ndarray) -> float:
        return obj.deviance(x, nagq)

    # L-BFGS-B can stall on a zero variance (the deviance is even in theta, so its
    # derivative there is 0): restart off the boundary while an interior point is better
    # one BLAS thread: L-BFGS-B's tiny BLAS calls are slowed ~50x by OpenBLAS thread
    # hand-offs, and the engine's own work is vector arithmetic and bincounts anyway
    def screen(start_x: np.ndarray) -> tuple:
        res = optimize.minimize(
            fg,
            start_x,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": _SCREEN_ITER, "ftol": tol, "gtol": 1e-6, "maxcor": 20},
        )
        return res.x, float(res.fun)

    probes = correlated_probes(obj.layout, scales, dev)

    def optimize_from(start_x: np.ndarray) -> tuple:
        return optimize_off_boundary(run, dev, start_x, obj.lower == 0.0, scales, extra=probes)[0]

    with one_blas_thread():
        first = optimize_from(x0)
        # a vector term on few groups or on a boundary face: its covariance can sit in a
        # local optimum; restart from correlations near +-1 and keep the best
        lay = obj.layout
        (x, f, H, g, nit), ms = vector_multistart(
            screen,
            optimize_from,
            first,
            design.blocks,
            lay.factors,
            lay.from_factors,
            lay.correlated,
            obj.n_theta,
        )
        # inside too: the conditional covariances at the end factor and invert small dense
        # blocks, which OpenBLAS thread hand-offs slowed ~25x (grouseticks: 0.45 s of 0.73)
        est = _finish(obj, design, x, H, f, g, nagq, nit, t0)
    msg = ms.message()
    if msg is None:
        return est
    return dataclasses.replace(est, messages=(*est.messages, msg))


def _finish(
    obj: LaplaceObjective,
    design: Design,
    x: np.ndarray,
    H: np.ndarray,
    f: float,
    g: np.ndarray,
    nagq: int,
    n_iter: int,
    t0: float,
) -> MLEstimate:
    theta, beta = obj.split(x)
    nt, k = obj.n_theta, obj.k
    messages: list[str] = []
    pg = _projected_grad(x, g, obj.lower)
    grad_norm = float(np.max(np.abs(pg))) if pg.size else 0.0
    converged = grad_norm < 2e-3  # lme4's check.conv.grad tolerance
    if not converged:
        msg = f"Model failed to converge with max|grad| = {grad_norm:.3g} (tol = 0.002)"
        messages.append(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    # standard errors: fixed-effect block of 2 H^-1 (free parameters only)
    free = ~(x <= obj.lower + 1e-10)
    free[nt:] = True
    vcov = np.full((k, k), np.nan)
    try:
        Hf = H[np.ix_(free, free)]
        V = 2.0 * np.linalg.inv(Hf)
        vb = V[-k:, -k:]
        if np.all(np.isfinite(vb)) and np.all(np.diag(vb) > 0):
            vcov = 0.5 * (vb + vb.T)
        else:
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        messages.append("Hessian is not positive definite: standard errors are unavailable")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=3)
    factors = obj.chol_factors(theta)
    singular = obj.layout.is_singular(theta)
    if singular:
        messages.append(SINGULAR_MSG)
        warnings.warn(SINGULAR_MSG, ConvergenceWarning, stacklevel=3)
    modes, cond_var = obj.conditional(beta, theta)
    loglik_norm = -0.5 * f
    loglik = loglik_norm
    if nagq > 1:
        sat = saturated_loglik(design)
        loglik = loglik_norm - sat
        if sat != 0.0:
            messages.append(
                f"loglik follows glmer's nAGQ > 1 convention (relative to the saturated model, "
                f"constant {sat:.4f}); loglik_normalized = {loglik_norm:.4f} is the proper value"
            )
    return MLEstimate(
        method="ml",
        nagq=nagq,
        beta=beta.copy(),
        vcov_beta=vcov,
        theta=theta.copy(),
        covariances=tuple(F @ F.T for F in factors),
        sigma=None,
        loglik=float(loglik),
        modes=modes,
        cond_var=cond_var,
        converged=bool(converged),
        grad_norm=grad_norm,
        n_iter=n_iter,
        singular=bool(singular),
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=float(loglik_norm),
        hessian=H,
        n_obs=design.n,
    )


def _separation_check(design: Design, est: MLEstimate) -> MLEstimate:
    """:func:`_check_separation` on the user's design and scale (after the standardized fit),
    its message added to the estimate's."""
    if est.method != "ml":
        return est
    messages = list(est.messages)
    _check_separation(design, est.beta, est.vcov_beta, messages)
    if len(messages) == len(est.messages):
        return est
    return dataclasses.replace(est, messages=tuple(messages))


def _check_separation(
    design: Design, beta: np.ndarray, vcov: np.ndarray, messages: list[str]
) -> None:
    """Say that the estimates are unreliable under (quasi-)complete separation.

    Scale-free: the estimates are judged per SD of their column (the intercept at centred
    predictors), so a predictor in other units changes nothing.  When they look separated
    (a standardized ``|estimate| > 8`` or ``SE > 20``), the LP test of
    :mod:`bayesglmm.design.separation` decides and names the columns: Konis' LP for binary and
    binomial data, and for Poisson data the same LP with the zero counts as failures and the
    positive counts on the boundary (a direction with ``x_i' b <= 0`` on every zero and
    ``= 0`` on every positive count: an all-zero level, whose estimate is ``-inf``).  A huge
    standardized estimate or SE (``> 15``, ``> 50``; for Poisson a log-rate intercept below
    ``-15``) that the LP does not explain is the fallback sign, for separation the fixed
    effects alone do not show.
    """
    fam = design.family
    if fam.spec.separation is None:
        return
    msg = None
    std = standardization(design)
    bstd = std.beta_to_std(beta)
    if np.all(np.isfinite(vcov)):
        Ti = std.T_inv
        se = np.sqrt(np.maximum(np.diag(Ti @ vcov @ Ti.T), 0.0))
    else:
        se = np.full(beta.size, np.inf)
    big = np.abs(bstd)
    if fam.spec.separation == "counts" and std.intercept is not None:
        big[std.intercept] = max(-bstd[std.intercept], 0.0)  # a large rate is no problem
    # separation found when the design was built was warned about then: say it once more
    # in the fit's messages, not as a second warning.  Otherwise (none found, or a response
    # swapped in by ``with_response``) the LP runs again only when the estimates look
    # separated: under separation they run off towards infinity, so |beta| or its SE is large
    suspicious = bool(np.any(big > 8.0) or np.any(se > 20.0))
    warn = design.separation is None
    sep = design.separation
    if sep is None and suspicious:
        if fam.spec.separation == "binary":
            sep = detect_separation(design.X, design.y, design.trials, design.x_names)
        else:  # zero counts as failures, positive ones as both (0 < 0.5 < 1)
            y01 = np.where(np.asarray(design.y) > 0, 0.5, 0.0)
            sep = detect_separation(design.X, y01, np.ones(design.n), design.x_names)
    if sep is not None:
        cols = ", ".join(f"`{c}`" for c in sep.columns)
        msg = f"{_SEPARATION_MSG} (infinite): {sep.kind} separation in the fixed effects ({cols})"
    if msg is None:
        if np.any(big > 15.0) or np.any(se > 50.0):
            msg = (
                f"{_SEPARATION_MSG}: an estimate above 15 or SE above 50 per SD of its "
                "predictor, a sign of (quasi-)complete separation"
            )
    if msg is not None:
        messages.append(msg)
        if warn:
            warnings.warn(msg, IdentifiabilityWarning, stacklevel=5)


def _fit_gaussian(design: Design, *, start: dict | None, t0: float) -> MLEstimate:
    """Exact ML for the linear mixed model (profiled over ``beta`` and ``sigma``)."""
    w = np.ones(design.n) if design.weights is None else design.weights
    fit = weighted_lmm_fit(design, w, sigma=None, theta0=(start or {}).get("theta"))
    messages: list[str] = []
    layout = ThetaLayout.from_blocks(design.blocks)
    singular = layout.is_singular(fit.theta)
    if singular:
        messages.append(SINGULAR_MSG)
        warnings.warn(SINGULAR_MSG, ConvergenceWarning, stacklevel=3)
    return MLEstimate(
        method="ml",
        nagq=1,
        beta=fit.beta,
        vcov_beta=fit.vcov_beta,
        theta=fit.theta,
        covariances=fit.covariances,
        sigma=fit.sigma,
        loglik=fit.loglik,
        modes=fit.modes,
        cond_var=fit.cond_var,
        converged=fit.converged,
        grad_norm=fit.grad_norm,
        n_iter=fit.n_iter,
        singular=singular,
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=fit.loglik,
        n_obs=design.n,
    )
