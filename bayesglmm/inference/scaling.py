"""Internal standardization of the fixed-effect columns: every engine works on any scale.

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

The likelihood engines (:func:`~bayesglmm.inference.laplace.fit_ml`,
:func:`~bayesglmm.inference.pql.fit_pql`) are wrapped with :func:`standardized_ml`; the
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

from bayesglmm.design_types import Design
from bayesglmm.priors import PriorSet

__all__ = ["Standardization", "column_scales", "standardization", "standardized_ml"]


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
        """An :class:`~bayesglmm.inference.ml_types.MLEstimate` of the standardized design,
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


def standardized_ml(
    engine: Callable[..., Any] | None = None,
    *,
    finish: Callable[[Design, Any], Any] | None = None,
) -> Any:
    """Decorate a likelihood engine ``engine(design, ..., start=None, ...) -> MLEstimate``:
    it runs on the standardized design (user ``start["beta"]`` mapped in) and its estimate
    is mapped back to the user's scale.

    ``finish(design, estimate)``, if given, runs last on the user's design and the mapped
    estimate and returns the estimate (checks whose messages name the user's columns, such as
    the separation LP, whose sparsest direction depends on centring).  Use as
    ``@standardized_ml`` or ``@standardized_ml(finish=...)``.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(design: Design, *args: Any, **kwargs: Any) -> Any:
            std = standardization(design)
            if std.identity:
                est = fn(design, *args, **kwargs)
            else:
                start = kwargs.get("start")
                if start and "beta" in start:
                    start = dict(start)
                    start["beta"] = std.beta_to_std(np.asarray(start["beta"], dtype=float))
                    kwargs["start"] = start
                est = std.ml_to_user(fn(std.design(design), *args, **kwargs))
            return finish(design, est) if finish is not None else est

        return wrapper

    return decorate(engine) if engine is not None else decorate
