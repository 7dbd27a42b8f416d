"""Internal standardization of the fixed-effect and random-slope columns: every engine works
on any scale.

A predictor in centimetres instead of metres, or multiplied by ``1e-6``, describes the same
model; only its slope changes, by the same factor.  The engines' numerics do not share that
invariance: a Newton step, an L-BFGS-B tolerance, the ``U(-1, 1)`` jitter of a NUTS start or
a step size adapted to unit scale all assume coefficients of order one.  As rstanarm and brms
do, the engines therefore work on standardized columns and report on the user's scale:

* every non-constant column ``x_j`` becomes ``(x_j - m_j) / s_j`` with ``s_j`` its SD, and
  ``m_j`` its mean when the design has an ``(Intercept)`` column (else ``m_j = 0``: a model
  without an intercept cannot absorb the shift);
* the intercept and any other constant column are left as they are;
* coefficients map back linearly, ``beta_user = T beta_std`` with ``T = diag(1 / s)`` plus, in
  the intercept's row, ``-m_j / s_j``; covariances as ``T V T'``;
* priors on user-scale slopes map exactly to priors on standardized ones: for a location-scale
  family (Normal, StudentT, Cauchy: the only ones allowed on fixed effects) location and scale
  are multiplied by ``s_j``.  The intercept prior is already on the intercept at centred
  predictors (see :mod:`bayesglmm.priors`), which is the standardized intercept.

Random-slope columns of ``Z`` get the same treatment in the likelihood engines
(:func:`random_scaling`): theta is optimized for centred and scaled term columns (centred
only in a correlated block with an intercept, which absorbs the shift), and ``theta``, the
covariances, the conditional modes and variances are mapped back exactly
(``Sigma_user = T^-1 Sigma_std T^-T``).  On the raw columns a slope on an uncentred or
tiny/huge-scale predictor made theta badly conditioned: fits stopped unconverged, up to 180
log-likelihood units below glmm, or raised "random-effect cross-product is numerically
singular" (tests/test_ml_structures_property.py, test_pinned_slope_*).  The Bayesian engines
scale (never centre: the SD and LKJ priors are on the user's terms) a correlated block's
Cholesky factor (:func:`bayesglmm.priors.term_scales`), and the default slope-SD priors are
autoscaled (:mod:`bayesglmm.priors`).

The likelihood engines (:func:`~bayesglmm.engines.ml.laplace.fit_ml`,
:func:`~bayesglmm.engines.ml.pql.fit_pql`) are wrapped with :func:`standardized_ml`; the
Bayesian Laplace engine standardizes its design and priors itself; the PyMC model and the fused
NUTS kernel sample ``beta_scaled`` (slopes per SD of their column) and store ``beta``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.boundary import lower_factor
from bayesglmm.priors import PriorSet

__all__ = [
    "RandomScaling",
    "Standardization",
    "column_scales",
    "random_scaling",
    "standardization",
    "standardized_ml",
]


def column_scales(X: np.ndarray, design: Any = None) -> np.ndarray:
    """SD of every column of ``X`` (weighted by ``design``'s prior weights when given);
    1 for a constant (or non-finite) column."""
    X = np.asarray(X, dtype=float)
    if X.shape[0] == 0:
        return np.ones(X.shape[1])
    sd = X.std(axis=0) if design is None else design.row_std(X)
    const = (np.ptp(X, axis=0) == 0) | ~np.isfinite(sd) | (sd <= 0)
    return np.where(const, 1.0, sd)


@dataclass(frozen=True, eq=False)
class Standardization:
    """The linear map between user-scale and standardized fixed effects of one design.

    Attributes
    ----------
    center : ndarray (k,)
        Column means subtracted (0 for constant columns, and for all columns when the design
        has no intercept).
    scale : ndarray (k,)
        Column SDs divided by (1 for constant columns).
    intercept : int or None
        Position of the ``(Intercept)`` column.
    """

    center: np.ndarray
    scale: np.ndarray
    intercept: int | None

    @property
    def T(self) -> np.ndarray:  # noqa: N802 - the matrix's name in the formulas
        """``beta_user = T @ beta_std``."""
        T = np.diag(1.0 / self.scale)
        if self.intercept is not None:
            T[self.intercept] -= self.center / self.scale
            T[self.intercept, self.intercept] = 1.0
        return T

    @property
    def T_inv(self) -> np.ndarray:  # noqa: N802
        """``beta_std = T_inv @ beta_user``."""
        Ti = np.diag(self.scale)
        if self.intercept is not None:
            Ti[self.intercept] += self.center
            Ti[self.intercept, self.intercept] = 1.0
        return Ti

    @property
    def identity(self) -> bool:
        """True when the map does nothing (already standardized, or only constant columns)."""
        return bool(np.all(self.center == 0.0) and np.all(self.scale == 1.0))

    def design(self, design: Design) -> Design:
        """A copy of ``design`` with standardized fixed-effect columns."""
        if self.identity:
            return design
        X = (np.asarray(design.X, dtype=float) - self.center) / self.scale
        return dataclasses.replace(design, X=X)

    def beta_to_user(self, beta_std: np.ndarray) -> np.ndarray:
        """Map coefficients (last axis) from the standardized to the user's scale."""
        return np.asarray(beta_std, dtype=float) @ self.T.T

    def beta_to_std(self, beta: np.ndarray) -> np.ndarray:
        """Map coefficients (last axis) from the user's to the standardized scale."""
        return np.asarray(beta, dtype=float) @ self.T_inv.T

    def vcov_to_user(self, vcov_std: np.ndarray) -> np.ndarray:
        """``T V T'``."""
        T = self.T
        V = T @ np.asarray(vcov_std, dtype=float) @ T.T
        return 0.5 * (V + V.T)

    def priors(self, priors: PriorSet, design: Design) -> PriorSet:
        """The priors of the standardized coefficients (slope priors scaled by ``s_j``).

        The map is exact for the location-scale families allowed on fixed effects; the
        intercept prior is unchanged (it is on the intercept at centred predictors).
        """
        if self.identity:
            return priors
        fixed = {
            name: p.scaled(float(self.scale[design.x_names.index(name)]))
            for name, p in priors.fixed.items()
        }
        return dataclasses.replace(priors, fixed=fixed)

    def ml_to_user(self, est: Any) -> Any:
        """An :class:`~bayesglmm.engines.ml.estimate.MLEstimate` of the standardized design,
        with ``beta``, ``vcov_beta`` and the ``[theta, beta]`` Hessian on the user's scale."""
        if self.identity:
            return est
        changes: dict[str, Any] = {
            "beta": self.beta_to_user(est.beta),
            "vcov_beta": self.vcov_to_user(est.vcov_beta),
        }
        H = getattr(est, "hessian", None)
        if H is not None:
            k = self.scale.size
            nt = H.shape[0] - k
            A = np.eye(H.shape[0])
            A[nt:, nt:] = self.T_inv  # d beta_std / d beta_user
            changes["hessian"] = A.T @ H @ A
        return dataclasses.replace(est, **changes)


def standardization(design: Design) -> Standardization:
    """The standardization of ``design``'s fixed-effect columns (see the module docstring)."""
    X = np.asarray(design.X, dtype=float)
    scale = column_scales(X)
    const = scale == 1.0
    if X.shape[0]:
        const = const & (np.ptp(X, axis=0) == 0)
    icpt = design.x_names.index("(Intercept)") if "(Intercept)" in design.x_names else None
    center = np.zeros(X.shape[1])
    if icpt is not None and X.shape[0]:
        center = np.where(const, 0.0, X.mean(axis=0))
    return Standardization(center=center, scale=scale, intercept=icpt)


# ---------------------------------------------------------------------------- random effects
@dataclass(frozen=True, eq=False)
class RandomScaling:
    """The linear maps between the user's and standardized random-effect term columns.

    Per block ``Z_user = Z_std T`` (``T`` is ``p x p``): a slope column ``z_j`` becomes
    ``(z_j - m_j) / s_j``, so ``T[j, j] = s_j`` and, in the intercept's row, ``T[0, j] =
    m_j``.  Then ``b_std = T b_user``, ``Sigma_user = T^-1 Sigma_std T^-T`` and the user's
    relative Cholesky factor is the lower-triangular factor of ``T^-1 Lambda_std`` (an exact
    re-expression of the same covariance; a singular one stays singular).

    Attributes
    ----------
    maps : tuple of (ndarray or None)
        Per block, ``T`` (None where the block is left as it is).
    layout : ThetaLayout
        Where each block's ``theta`` elements live.
    """

    maps: tuple[np.ndarray | None, ...]
    layout: Any

    @property
    def identity(self) -> bool:
        """True when no block is changed."""
        return all(T is None for T in self.maps)

    def design(self, design: Design) -> Design:
        """A copy of ``design`` with standardized random-effect term columns."""
        if self.identity:
            return design
        blocks = tuple(
            b if T is None else dataclasses.replace(b, Z=np.asarray(b.Z, float) @ np.linalg.inv(T))
            for b, T in zip(design.blocks, self.maps, strict=True)
        )
        return dataclasses.replace(design, blocks=blocks)

    def _theta_map(self, theta: np.ndarray, to_user: bool) -> np.ndarray:
        factors = self.layout.factors(np.asarray(theta, dtype=float))
        out = []
        for L, T in zip(factors, self.maps, strict=True):
            if T is None:
                out.append(L)
            else:
                A = np.linalg.solve(T, L) if to_user else T @ L
                out.append(lower_factor(A))
        return self.layout.from_factors(out)

    def theta_to_user(self, theta_std: np.ndarray) -> np.ndarray:
        """The user's ``theta`` (relative Cholesky factors of the user-scale covariances)."""
        return self._theta_map(theta_std, True)

    def theta_to_std(self, theta_user: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`theta_to_user`."""
        return self._theta_map(theta_user, False)

    def _per_block(self, arrays: tuple, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]):
        return tuple(
            a if T is None else fn(np.asarray(a, dtype=float), np.linalg.inv(T))
            for a, T in zip(arrays, self.maps, strict=True)
        )

    def theta_jacobian(self, theta_user: np.ndarray) -> np.ndarray:
        """``d theta_std / d theta_user`` by central differences (a cheap algebraic map)."""
        th = np.asarray(theta_user, dtype=float)
        J = np.eye(th.size)
        pos = 0
        for size, T in zip(self.layout.sizes, self.maps, strict=True):
            if T is not None:
                seg = slice(pos, pos + size)
                unit = max(float(np.max(np.abs(th[seg]), initial=0.0)), 1e-300)
                for i in range(pos, pos + size):
                    h = 1e-6 * max(abs(th[i]), 1e-3 * unit)
                    tp, tm = th.copy(), th.copy()
                    tp[i] += h
                    tm[i] -= h
                    J[seg, i] = (self.theta_to_std(tp)[seg] - self.theta_to_std(tm)[seg]) / (2 * h)
            pos += size
        return J

    def ml_to_user(self, est: Any) -> Any:
        """An :class:`~bayesglmm.engines.ml.estimate.MLEstimate` of the standardized design
        with ``theta``, the covariances, the conditional modes and variances and the
        ``theta`` rows of the Hessian on the user's scale (``singular``, ``converged`` and
        the log-likelihood are invariant and kept)."""
        if self.identity:
            return est
        theta = self.theta_to_user(est.theta)
        changes: dict[str, Any] = {
            "theta": theta,
            "covariances": self._per_block(est.covariances, lambda S, Ti: Ti @ S @ Ti.T),
            "modes": self._per_block(est.modes, lambda b, Ti: b @ Ti.T),
            "cond_var": self._per_block(
                est.cond_var, lambda C, Ti: np.einsum("ij,gjk,lk->gil", Ti, C, Ti)
            ),
        }
        H = getattr(est, "hessian", None)
        if H is not None:
            nt = theta.size
            A = np.eye(H.shape[0])
            A[:nt, :nt] = self.theta_jacobian(theta)  # d theta_std / d theta_user
            changes["hessian"] = A.T @ H @ A
        return dataclasses.replace(est, **changes)


def random_scaling(design: Design) -> RandomScaling:
    """The standardization of ``design``'s random-effect term columns.

    Per block, every non-constant column ``z_j`` becomes ``(z_j - m_j) / s_j``: centred
    (``m_j`` its mean, ``s_j`` its SD) when the block is correlated and has an
    ``(Intercept)`` column of ones (the intercept absorbs the shift and the full covariance
    re-expresses it exactly); otherwise only scaled, by its root mean square (an
    uncorrelated ``(1 + x || g)`` block's diagonal covariance, or a block without an
    intercept, would change its model under a shift).  Constant columns are kept.
    """
    from bayesglmm.engines.ml.pirls import ThetaLayout

    maps: list[np.ndarray | None] = []
    for b in design.blocks:
        Z = np.asarray(b.Z, dtype=float)
        p = b.n_terms
        icpt = b.terms.index("(Intercept)") if "(Intercept)" in b.terms else None
        if icpt is not None and not (Z.shape[0] and np.all(Z[:, icpt] == 1.0)):
            icpt = None
        centre = icpt is not None and b.correlated and p > 1
        T = np.eye(p)
        for j in range(p):
            col = Z[:, j]
            if j == icpt or not col.size or not np.all(np.isfinite(col)) or np.ptp(col) == 0:
                continue
            # weighted as the rows count (design.row_mean): weighted and duplicated data
            # get the same internal parameterization, hence the same AGQ nodes
            if centre:
                m = float(design.row_mean(col))
                s = float(design.row_std(col))
                T[icpt, j] = m
            else:
                s = float(np.sqrt(design.row_mean(col * col)))
            if s > 0 and np.isfinite(s):
                T[j, j] = s
        maps.append(None if np.array_equal(T, np.eye(p)) else T)
    return RandomScaling(maps=tuple(maps), layout=ThetaLayout.from_blocks(design.blocks))


def standardized_ml(
    engine: Callable[..., Any] | None = None,
    *,
    finish: Callable[[Design, Any], Any] | None = None,
) -> Any:
    """Decorate a likelihood engine ``engine(design, ..., start=None, ...) -> MLEstimate``:
    it runs on the standardized design, fixed-effect columns (:func:`standardization`) and
    random-effect term columns (:func:`random_scaling`), with a user ``start`` (``beta``,
    ``theta``) mapped in, and its estimate is mapped back to the user's scale.

    ``finish(design, estimate)``, if given, runs last on the user's design and the mapped
    estimate and returns the estimate (checks whose messages name the user's columns, such as
    the separation LP, whose sparsest direction depends on centring).  Use as
    ``@standardized_ml`` or ``@standardized_ml(finish=...)``.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(design: Design, *args: Any, **kwargs: Any) -> Any:
            std = standardization(design)
            rs = random_scaling(design)
            if std.identity and rs.identity:
                est = fn(design, *args, **kwargs)
            else:
                start = kwargs.get("start")
                if start and ("beta" in start or "theta" in start):
                    start = dict(start)
                    if "beta" in start:
                        start["beta"] = std.beta_to_std(np.asarray(start["beta"], dtype=float))
                    if "theta" in start:
                        start["theta"] = rs.theta_to_std(np.asarray(start["theta"], dtype=float))
                    kwargs["start"] = start
                est = fn(rs.design(std.design(design)), *args, **kwargs)
                est = rs.ml_to_user(std.ml_to_user(est))
            return finish(design, est) if finish is not None else est

        return wrapper

    return decorate(engine) if engine is not None else decorate
