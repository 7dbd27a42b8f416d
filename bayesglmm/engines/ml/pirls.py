"""Random-effect structures, family kernels and the penalized (IR)LS inner solvers.

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

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from bayesglmm.design.types import Design, RandomBlock
from bayesglmm.errors import InferenceError
from bayesglmm.families import Family, cloglog_ratios, log_choose, probit_ratios, softplus

__all__ = [
    "FamilyKernel",
    "ScalarStructure",
    "ThetaLayout",
    "glm_start",
    "make_structure",
    "pirls",
    "saturated_loglik",
]


# ---------------------------------------------------------------------------- theta layout
@dataclass(frozen=True)
class ThetaLayout:
    """Where each block's covariance parameters live in the flat ``theta`` vector.

    Per block: the column-major lower-triangular elements of the relative Cholesky factor
    (lme4's order), or only the diagonal for an uncorrelated (``||``) block.
    """

    sizes: tuple[int, ...]
    n_terms: tuple[int, ...]
    correlated: tuple[bool, ...]

    @classmethod
    def from_blocks(cls, blocks: tuple[RandomBlock, ...]) -> ThetaLayout:
        """Layout for a design's blocks."""
        sizes, ps, cors = [], [], []
        for b in blocks:
            p = b.n_terms
            corr = bool(b.correlated) and p > 1
            sizes.append(p * (p + 1) // 2 if corr else p)
            ps.append(p)
            cors.append(corr)
        return cls(tuple(sizes), tuple(ps), tuple(cors))

    @property
    def size(self) -> int:
        """Total number of theta elements."""
        return int(sum(self.sizes))

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        """A Cholesky diagonal below ``tol``: a boundary fit (lme4's ``isSingular``)."""
        diag = self.lower_bounds() == 0.0
        return bool(np.any(np.abs(np.asarray(theta)[diag]) < tol))

    def lower_bounds(self) -> np.ndarray:
        """0 for diagonal elements, ``-inf`` for off-diagonal ones (lme4's ``lower``)."""
        out = []
        for p, corr in zip(self.n_terms, self.correlated, strict=True):
            if corr:
                L = np.full((p, p), -np.inf)
                np.fill_diagonal(L, 0.0)
                out.append(L.T[np.triu_indices(p)])
            else:
                out.append(np.zeros(p))
        return np.concatenate(out) if out else np.zeros(0)

    def default(self) -> np.ndarray:
        """lme4's start: identity factors (1 on the diagonal, 0 elsewhere)."""
        lo = self.lower_bounds()
        return np.where(lo == 0.0, 1.0, 0.0)

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-block lower-triangular factors ``Lambda_b`` (``p x p``)."""
        out, pos = [], 0
        for s, p, corr in zip(self.sizes, self.n_terms, self.correlated, strict=True):
            t = np.asarray(theta[pos : pos + s], dtype=float)
            if corr:
                L = np.zeros((p, p))
                L.T[np.triu_indices(p)] = t
            else:
                L = np.diag(t)
            out.append(L)
            pos += s
        return out

    def from_factors(self, factors: list[np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`factors`."""
        out = []
        for L, corr in zip(factors, self.correlated, strict=True):
            p = L.shape[0]
            out.append(L.T[np.triu_indices(p)] if corr else np.diag(L).copy())
        return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------------------- family kernel
#: the row kernels :class:`FamilyKernel` inlines; other families use their NumPy methods
_INLINED = ("logit", "poisson", "gaussian")


class FamilyKernel:
    """Per-row log-likelihood, score and weights of a family, with the fast paths inlined.

    ``ll`` omits per-row constants that do not depend on ``eta`` (``log y!``,
    ``log choose(n, y)``); their sum is :attr:`const`, so the full log-likelihood is
    ``ll.sum() + const``.  Gaussian rows are scaled by ``sigma`` and optional prior
    ``weights`` (used by the PQL working model).

    Parameters
    ----------
    family : Family
    y, trials : ndarray
        Response and binomial trials (None for 1).
    sigma : float
        Gaussian residual SD.
    weights : ndarray, optional
        Prior weights (:attr:`Design.weights`).  Case weights (non-gaussian) are folded
        into the kernel: every binomial and Poisson kernel is linear in ``(y, n)`` apart
        from the ``eta``-free constant, so ``y`` and ``trials`` become ``w y`` and ``w n``
        (Poisson: ``trials`` is then the multiplier ``w`` of the mean) and every engine that
        reads them (the Numba fast paths too) sees the weighted likelihood.  Gaussian:
        precision weights, ``N(y | eta, sigma^2 / w)``.
    """

    def __init__(
        self,
        family: Family,
        y: np.ndarray,
        trials: np.ndarray | None = None,
        sigma: float = 1.0,
        weights: np.ndarray | None = None,
    ) -> None:
        self.family = family
        self.y = np.ascontiguousarray(y, dtype=float)
        self.trials = None if trials is None else np.asarray(trials, dtype=float)
        self.sigma = float(sigma)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        wt = self.weights
        # the family's row kernel names the inlined fast path; others use the family's
        # NumPy loglik / score (``generic``)
        self.kind = family.row_kernel or "generic"
        if self.kind not in _INLINED:  # a row kernel of the fused engines only
            self.kind = "generic"
        # a generic family with a dispersion gets it in its score too (Beta, Student-t)
        self._disp_score = self.kind == "generic" and family.has_dispersion
        self._fisher = family.spec.laplace_information == "fisher"
        self._case_w = None  # case weights multiplying a generic family's rows
        if wt is not None and self.kind == "generic" and not family.spec.case_weights_fold:
            self._case_w = wt
            self._lc = None
            self.const = 0.0
        elif wt is not None and self.kind != "gaussian":
            lc0: float | np.ndarray = 0.0
            if self.kind == "poisson" or self.trials is not None:
                n1 = np.ones_like(self.y) if self.trials is None else self.trials
                lc0 = family.spec.row_constants(self.y, n1)
            self.const = float(np.sum(wt * lc0))
            n0 = np.ones_like(self.y) if self.trials is None else self.trials
            self.y = np.ascontiguousarray(wt * self.y)
            self.trials = np.ascontiguousarray(wt * n0)
            if self.kind == "generic":
                self._lc = log_choose(self.trials, self.y)
        elif self.kind == "logit":
            self.const = 0.0 if self.trials is None else float(log_choose(self.trials, y).sum())
        elif self.kind == "poisson":
            self.const = float(family.spec.row_constants(self.y, self.y).sum())
        elif self.kind == "gaussian":
            self.const = 0.0
            if wt is not None:  # 0.5 sum log w over the rows that count
                self.const = 0.5 * float(np.log(wt[wt > 0]).sum())
                self._n_obs = int((wt > 0).sum())
        else:
            self._lc = None if self.trials is None else log_choose(self.trials, self.y)
            self.const = 0.0 if self._lc is None else float(self._lc.sum())

    def set_dispersion(self, values: np.ndarray) -> None:
        """Set the family's dispersion parameter(s) (natural scale; gaussian: ``sigma``).

        One value is kept as the float ``sigma`` (every one-dispersion family); several
        become the family's own argument (``FamilySpec.dispersion_arg``, Student-t:
        ``(sigma, nu)``), which its ``loglik`` and ``score_weights`` receive."""
        if len(values) == 1:
            self.sigma = float(values[0])
        elif len(values) > 1:
            names = [d.name for d in self.family.dispersion]
            self.sigma = self.family.spec.dispersion_arg(
                {n: float(v) for n, v in zip(names, values, strict=True)}
            )

    def _pmu(self, mu: np.ndarray) -> np.ndarray:
        """Poisson mean times the case weight (``trials`` holds it when weighted)."""
        return mu if self.trials is None else self.trials * mu

    @property
    def canonical(self) -> bool:
        """Observed and Fisher information coincide (canonical link)."""
        return self.kind != "generic"

    def ll(self, eta: np.ndarray) -> np.ndarray:
        """Per-row log-likelihood without the ``eta``-free constants."""
        y = self.y
        if self.kind == "logit":
            n = 1.0 if self.trials is None else self.trials
            return y * eta - n * softplus(eta)
        if self.kind == "poisson":
            e = np.minimum(eta, 700.0)
            return y * e - self._pmu(np.exp(e))
        if self.kind == "gaussian":
            r = y - eta
            s2 = self.sigma**2
            if self.weights is not None:
                wt = self.weights
                return np.where(
                    wt > 0, -0.5 * wt * r * r / s2 - 0.5 * math.log(2 * math.pi * s2), 0.0
                )
            return -0.5 * r * r / s2 - 0.5 * math.log(2 * math.pi * s2)
        if self._case_w is not None:  # full rows (constants included) times the case weight
            return self.family.loglik(y, eta, self.trials, self.sigma, self._case_w)
        if self.trials is None:
            return self.family.loglik(y, eta, None, self.sigma)
        # binomial kernel with n trials, without the choose term (that is in ``const``)
        return self.family.loglik(y, eta, self.trials, self.sigma) - self._lc

    def score(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(d ll / d eta, Fisher weight)`` per row."""
        if self.kind == "logit":
            p = special.expit(eta)
            n = 1.0 if self.trials is None else self.trials
            return self.y - n * p, n * p * (1.0 - p)
        if self.kind == "poisson":
            mu = self._pmu(np.exp(np.minimum(eta, 700.0)))
            return self.y - mu, mu
        if self.kind == "gaussian":
            s2 = self.sigma**2
            wt = 1.0 if self.weights is None else self.weights
            return wt * (self.y - eta) / s2, wt * np.full_like(eta, 1.0 / s2)
        sig = self.sigma if self._disp_score else None
        if self._case_w is not None:
            d1, w = self.family.score_weights(self.y, eta, self.trials, sig)
            return self._case_w * d1, self._case_w * w
        return self.family.score_weights(self.y, eta, self.trials, sig)

    def full(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ll, d1, w)`` in one pass (shares the exponentials for logit and log links)."""
        if self.kind == "logit":
            y = self.y
            n = 1.0 if self.trials is None else self.trials
            e = np.exp(-np.abs(eta))
            ope = 1.0 + e
            # log(1 + e) for e in (0, 1]: log1p's gain for tiny e is < 1e-16 absolute, and
            # NumPy's log is ~2x faster than log1p here (the hot path of every fit)
            ll = y * eta - n * (np.maximum(eta, 0.0) + np.log(ope))
            p = np.where(eta >= 0.0, 1.0, e) / ope
            w = n * e / (ope * ope)  # n p (1 - p)
            return ll, y - n * p, w
        if self.kind == "poisson":
            e = np.minimum(eta, 700.0)
            mu = self._pmu(np.exp(e))
            return self.y * e - mu, self.y - mu, mu
        d1, w = self.score(eta)
        return self.ll(eta), d1, w

    def curvature_at(
        self, eta: np.ndarray, d1: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`curvature` reusing ``d1`` and ``w`` already computed at ``eta``."""
        if self.kind == "logit":
            if self.weights is not None:  # a zero weight makes n = 0
                p = special.expit(eta)
            else:
                n = 1.0 if self.trials is None else self.trials
                p = (self.y - d1) / n
            return w, w * (1.0 - 2.0 * p)
        if self.kind == "poisson":
            return w, w
        return self.curvature(eta)

    def laplace_curvature(
        self, eta: np.ndarray, d1: np.ndarray, w: np.ndarray, order: int = 2
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(observed information, its derivative d / d eta)`` per row, for the Laplace
        determinant.

        The Laplace approximation expands the log-integrand to second order at the mode, so
        its determinant holds the observed information ``-d2 ll / d eta2``, which for a
        non-canonical link (probit, cloglog) differs from the Fisher weight.  (lme4 puts
        the Fisher weight there; glmm the observed one, whose approximation is the closer
        one: issue 14, ``tests/test_peer_examples.py``.)  :func:`pirls` also steps with it
        (Newton rather than Fisher scoring), so the mode it returns is exact.
        Canonical links: ``curvature_at``; binomial probit and cloglog: analytic
        (:meth:`_binomial_observed`).  Otherwise central differences of the score, first
        (step ``1e-5``) and second (step ``1e-4``) order, ~1e-9 / ~1e-7 relative;
        ``order=1`` skips the derivative (returns None for it).
        """
        if self.canonical:
            return self.curvature_at(eta, d1, w)
        if self._fisher:  # a log-likelihood not concave in eta (Student-t): Fisher weight
            if order == 1:
                return w, None
            _, wp = self.score(eta + 1e-5)
            _, wm = self.score(eta - 1e-5)
            return w, (wp - wm) / 2e-5
        if self.family.is_binomial and self.family.link in ("probit", "cloglog"):
            return self._binomial_observed(np.asarray(eta, dtype=float))
        sig = self.sigma if self.family.has_dispersion else None
        obs = self.family.spec.observed_information(
            self.family.link_fn, self.y, np.asarray(eta, dtype=float), self.trials, sig
        )
        if obs is not None:  # the family's analytic one (negative binomial)
            wo, dwo = obs
            if self._case_w is not None:
                wo, dwo = self._case_w * wo, self._case_w * dwo
            return wo, (dwo if order != 1 else None)
        h, h2 = 1e-5, 1e-4
        d1p, _ = self.score(eta + h)
        d1m, _ = self.score(eta - h)
        if order == 1:
            return -(d1p - d1m) / (2 * h), None
        d1pp, _ = self.score(eta + h2)
        d1mm, _ = self.score(eta - h2)
        return -(d1p - d1m) / (2 * h), -(d1pp - 2.0 * d1 + d1mm) / (h2 * h2)

    def _binomial_observed(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed information ``-d2 ll / d eta2`` and its ``eta``-derivative for the
        binomial probit and cloglog links (``y`` successes of ``n``).

        probit, with ``l1 = phi / Phi(eta)``, ``l0 = phi / Phi(-eta)``:
        ``w = y l1 (eta + l1) + (n - y) l0 (l0 - eta)`` (both terms >= 0).
        cloglog, with ``m = exp(eta)``, ``r = m / expm1(m)``, ``s = m / -expm1(-m)``:
        ``w = y r (s - 1) + (n - y) m`` and ``dw = y r (s (1 - r) - (s - 1)^2) + (n - y) m``.
        """
        y = self.y
        n = 1.0 if self.trials is None else self.trials
        if self.family.link == "probit":
            l1, l0 = probit_ratios(eta)
            a1 = l1 * (eta + l1)
            a0 = l0 * (l0 - eta)
            da1 = -a1 * (eta + l1) + l1 * (1.0 - a1)
            da0 = a0 * (l0 - eta) + l0 * (a0 - 1.0)
            return y * a1 + (n - y) * a0, y * da1 + (n - y) * da0
        m, r, s = cloglog_ratios(eta)
        w = y * r * (s - 1.0) + (n - y) * m
        dw = y * r * (s * (1.0 - r) - (s - 1.0) ** 2) + (n - y) * m
        return w, dw

    def curvature(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(observed information -d2 ll / d eta2, d Fisher weight / d eta)`` per row.

        Analytic for canonical links; central differences of :meth:`score` otherwise
        (elementwise, so accurate to ~1e-9 relative).
        """
        if self.kind == "logit":
            p = special.expit(eta)
            n = 1.0 if self.trials is None else self.trials
            w = n * p * (1.0 - p)
            return w, w * (1.0 - 2.0 * p)
        if self.kind == "poisson":
            mu = self._pmu(np.exp(np.minimum(eta, 700.0)))
            return mu, mu
        if self.kind == "gaussian":
            wt = 1.0 if self.weights is None else self.weights
            return wt * np.full_like(eta, 1.0 / self.sigma**2), np.zeros_like(eta)
        h = 1e-5
        d1p, wp = self.score(eta + h)
        d1m, wm = self.score(eta - h)
        return -(d1p - d1m) / (2 * h), (wp - wm) / (2 * h)


def saturated_loglik(design: Design) -> float:
    """Log-likelihood of the saturated model (``mu = y``); 0 for Bernoulli data.

    glmer's AGQ deviance sums deviance residuals, so for ``nAGQ > 1`` it reports the
    log-likelihood minus this constant.
    """
    y = np.asarray(design.y, dtype=float)
    wt = 1.0 if design.weights is None else np.asarray(design.weights, dtype=float)
    return float((wt * design.family.spec.saturated_loglik(y, design.trials)).sum())


# ---------------------------------------------------------------------------- structures
class ScalarStructure:
    """One block with one term: ``A = z * theta`` per row, ``M`` diagonal (a vector).

    Independent units (for per-group step halving and AGQ) are the levels.
    """

    kind = "scalar"

    def __init__(self, block: RandomBlock, n: int) -> None:
        self.index = np.ascontiguousarray(block.index, dtype=np.intp)
        self.z = np.ascontiguousarray(block.Z[:, 0], dtype=float)
        self.ones_z = bool(np.all(self.z == 1.0))
        self.L = block.n_levels
        self.q = self.L
        self.n_units = self.L
        self.unit_of_u = np.arange(self.L)
        self.row_unit = self.index
        self.blocks = (block,)
        self.zl = self.z
        self.theta = 1.0

    def set_factors(self, factors: list[np.ndarray]) -> None:
        """Set ``Lambda`` (a 1 x 1 factor)."""
        self.theta = float(factors[0][0, 0])
        self.zl = self.z * self.theta

    def au(self, u: np.ndarray) -> np.ndarray:
        """``A u`` (n,)."""
        if self.ones_z:
            return (self.theta * u)[self.index]
        return self.zl * u[self.index]

    def atv(self, v: np.ndarray) -> np.ndarray:
        """``A' v`` for v of shape (n,) or (n, m)."""
        if v.ndim == 1:
            if self.ones_z:
                return self.theta * np.bincount(self.index, weights=v, minlength=self.L)
            return np.bincount(self.index, weights=self.zl * v, minlength=self.L)
        return np.stack(
            [
                np.bincount(self.index, weights=self.zl * v[:, j], minlength=self.L)
                for j in range(v.shape[1])
            ],
            axis=1,
        )

    def unit_sum(self, rows: np.ndarray) -> np.ndarray:
        """Per-unit sums of a per-row vector."""
        return np.bincount(self.index, weights=rows, minlength=self.L)

    def unit_sum_u(self, uu: np.ndarray) -> np.ndarray:
        """Per-unit sums of a per-u vector."""
        return uu

    def factor(self, w: np.ndarray) -> _DiagFactor:
        """Factor ``M = A' W A + I``."""
        zz = self.zl * self.zl if not self.ones_z else None
        s = np.bincount(self.index, weights=w if zz is None else zz * w, minlength=self.L)
        if zz is None:
            s *= self.theta * self.theta
        return _DiagFactor(1.0 + s)


class _DiagFactor:
    def __init__(self, d: np.ndarray) -> None:
        self.d = d

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return rhs / self.d if rhs.ndim == 1 else rhs / self.d[:, None]

    def logdet(self) -> float:
        return float(np.log(self.d).sum())

    def unit_logdet(self) -> np.ndarray:
        return np.log(self.d)

    def inv_blocks(self) -> list[np.ndarray]:
        return [(1.0 / self.d)[:, None, None]]


if TYPE_CHECKING:
    from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure

type Structure = ScalarStructure | BlockedStructure  # evaluated lazily (PEP 695)


def make_structure(design: Design) -> Structure:
    """The cheapest structure that represents the design's random effects."""
    blocks = design.blocks
    if not blocks:
        raise InferenceError("the model has no random effects; fit a GLM instead")
    if len(blocks) == 1:
        if blocks[0].n_terms == 1:
            return ScalarStructure(blocks[0], design.n)
    # (imported here: blocked_cholesky uses the row kernels of scalar_laplace, which
    # imports this module)
    from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure

    # one vector-valued term or several blocks: the blocked Cholesky (for one block it is
    # the (levels, p, p) stack, built in one pass over the rows, with the analytic gradient)
    return BlockedStructure(blocks, design.n)


# ---------------------------------------------------------------------------- PIRLS
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
        concave in ``eta``, so the observed information is never negative.)
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
        F = st.factor(w if fam.canonical else fam.laplace_curvature(eta, d1, w, order=1)[0])
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


# ---------------------------------------------------------------------------- weighted LMM
@dataclass
class LMMFit:
    """Result of :func:`weighted_lmm_fit` (profiled ML of a weighted linear mixed model)."""

    beta: np.ndarray
    vcov_beta: np.ndarray
    theta: np.ndarray
    covariances: tuple
    sigma: float
    loglik: float
    modes: tuple
    cond_var: tuple
    eta: np.ndarray
    converged: bool
    grad_norm: float
    n_iter: int


class WeightedLMM:
    """Profiled ML deviance of ``y = offset + X beta + Z b + e``, ``e ~ N(0, sigma^2 / w)``.

    ``b = Lambda(theta) u`` with ``u ~ N(0, sigma^2 I)`` (relative factor, as lme4), so for
    given ``theta`` the penalized least squares give ``beta`` and ``u`` in closed form and
    ``sigma^2 = r^2 / n``; with ``sigma`` fixed, ``theta`` is the absolute factor divided by
    ``sigma``.  Uses the same structures (vector / block stack / blocked Cholesky) as the GLMM
    engine.
    """

    def __init__(
        self,
        design: Design,
        y: np.ndarray,
        w: np.ndarray,
        sigma: float | None = None,
    ) -> None:
        self.design = design
        self.st = make_structure(design)
        self.layout = ThetaLayout.from_blocks(design.blocks)
        self.X = np.asarray(design.X, dtype=float)
        self.yo = np.asarray(y, dtype=float) - np.asarray(design.offset, dtype=float)
        self.w = np.asarray(w, dtype=float)
        self.sigma = sigma
        # a zero prior weight removes the row from the likelihood (lme4's ldW skips it too)
        pos = self.w > 0
        self.n = int(pos.sum())
        self.sum_logw = float(np.log(self.w[pos]).sum())
        Xw = self.X * self.w[:, None]
        self.XtWX = self.X.T @ Xw
        self.XtWy = Xw.T @ self.yo
        self.Wcols = np.column_stack([self.w * self.yo, Xw])

    def solve(self, theta: np.ndarray) -> dict:
        """PLS solution and profiled deviance at ``theta``."""
        st = self.st
        st.set_factors(self.layout.factors(np.asarray(theta, dtype=float)))
        F = st.factor(self.w)
        B = st.atv(self.Wcols)
        C = F.solve(B)
        Bx = B[:, 1:]
        S = self.XtWX - Bx.T @ C[:, 1:]
        rhs = self.XtWy - Bx.T @ C[:, 0]
        beta = np.linalg.solve(S, rhs)
        u = C[:, 0] - C[:, 1:] @ beta
        fitted_re = st.au(u)
        r = self.yo - self.X @ beta - fitted_re
        r2 = float(self.w @ (r * r) + u @ u)
        ld = F.logdet()
        n = self.n
        if self.sigma is None:
            s2 = r2 / n
            dev = ld + n * (1.0 + np.log(2 * np.pi * s2)) - self.sum_logw
        else:
            s2 = self.sigma**2
            dev = ld + r2 / s2 + n * np.log(2 * np.pi * s2) - self.sum_logw
        return {
            "dev": float(dev),
            "beta": beta,
            "u": u,
            "S": S,
            "s2": s2,
            "F": F,
            "eta_re": fitted_re,
        }

    def deviance(self, theta: np.ndarray) -> float:
        """Profiled ``-2 log L`` at ``theta``."""
        return self.solve(theta)["dev"]


def _fd_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        s = h * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = s
        g[i] = (f(x + e) - f(x - e)) / (2 * s)
    return g


def weighted_lmm_fit(
    design: Design,
    w: np.ndarray,
    *,
    y: np.ndarray | None = None,
    sigma: float | None = None,
    theta0: np.ndarray | None = None,
) -> LMMFit:
    """ML fit of a (weighted) linear mixed model with the design's random effects.

    Parameters
    ----------
    design : Design
        Supplies ``X``, ``offset`` and the random-effect blocks (and ``y`` by default).
    w : ndarray (n,)
        Prior weights (residual variance ``sigma^2 / w``).
    y : ndarray, optional
        Response to use instead of ``design.y`` (the PQL working response).
    sigma : float, optional
        Fixed residual SD; ``None`` estimates it (ML).
    theta0 : ndarray, optional
        Start for the relative Cholesky parameters (default identity).
    """
    from scipy import optimize

    from bayesglmm.engines.ml.boundary import (
        correlated_probes,
        optimize_off_boundary,
        theta_scales,
    )

    model = WeightedLMM(design, design.y if y is None else y, w, sigma)
    layout = model.layout
    lower = layout.lower_bounds()
    x0 = layout.default() if theta0 is None else np.asarray(theta0, dtype=float)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]

    def fg(t: np.ndarray) -> tuple[float, np.ndarray]:
        t = np.maximum(t, lower)
        return model.deviance(t), _fd_grad(model.deviance, t)

    def run(t0: np.ndarray) -> tuple:
        r = optimize.minimize(
            fg,
            t0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-14, "gtol": 1e-8, "maxiter": 500},
        )
        return r.x, r.fun, r

    # restart off a zero variance while an interior point is better (L-BFGS-B stalls
    # there: the deviance is even in theta); see bayesglmm.engines.ml.boundary
    scales = theta_scales(design.blocks, layout.size)
    (_, _, res), _ = optimize_off_boundary(
        run,
        model.deviance,
        x0,
        lower == 0.0,
        scales,
        extra=correlated_probes(layout, scales, model.deviance),
    )
    theta = np.maximum(res.x, lower)
    g = _fd_grad(model.deviance, theta)
    pg = np.where((theta <= lower + 1e-12) & (g > 0), 0.0, g)
    sol = model.solve(theta)
    s2 = sol["s2"]
    factors = layout.factors(theta)
    inv = sol["F"].inv_blocks()
    cond_var = tuple(
        s2 * np.einsum("ij,gjk,lk->gil", Fb, Minv, Fb)
        for Fb, Minv in zip(factors, inv, strict=True)
    )
    modes, pos = [], 0
    for b, Fb in zip(design.blocks, factors, strict=True):
        size = b.n_levels * b.n_terms
        modes.append(sol["u"][pos : pos + size].reshape(b.n_levels, b.n_terms) @ Fb.T)
        pos += size
    vcov = s2 * np.linalg.inv(sol["S"])
    eta = design.offset + model.X @ sol["beta"] + sol["eta_re"]
    return LMMFit(
        beta=sol["beta"],
        vcov_beta=0.5 * (vcov + vcov.T),
        theta=theta,
        covariances=tuple(s2 * (Fb @ Fb.T) for Fb in factors),
        sigma=float(np.sqrt(s2)),
        loglik=-0.5 * sol["dev"],
        modes=tuple(modes),
        cond_var=cond_var,
        eta=eta,
        converged=bool(np.max(np.abs(pg), initial=0.0) < 1e-3),
        grad_norm=float(np.max(np.abs(pg), initial=0.0)),
        n_iter=int(res.nit),
    )
