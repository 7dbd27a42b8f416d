"""What the layers that read a fit need of it, as :class:`typing.Protocol` types.

:class:`FitLike` is the face of :class:`bayesglmm.fit.results.GLMMFit` that the
interpretation modules (:mod:`bayesglmm.interpret`), the fit's own work modules (health,
summary, printing, LOO, bootstrap) and the saved-fit writer annotate with; :class:`ModelLike`
is what a fit (and the saved-fit reader) needs of the :class:`bayesglmm.GLMM` that made it (a
refit on a new response).  Both sit below ``fit/``, so none of those modules imports
``fit/results.py`` or the model, not even for type checkers, and the fit's convenience methods
(``fit.icc()``, ``fit.save()``) call them without an import cycle
(``tests/test_architecture.py``).  ``GLMMFit`` is
checked against :class:`FitLike` wherever it passes itself to one of them (mypy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, overload

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from bayesglmm.design.types import Design
    from bayesglmm.engines.types import FitInfo
    from bayesglmm.priors import PriorSet

__all__ = ["FitLike", "ModelLike"]


class ModelLike(Protocol):
    """The model that made a fit (:class:`bayesglmm.GLMM`), as a fit (and a saved fit's
    reader) uses it."""

    design: Design
    priors: PriorSet

    def with_response(self, y: Any) -> ModelLike:
        """The same model on a new response vector."""
        ...

    def fit(self, method: str = "nuts", **kwargs: Any) -> FitLike:
        """Fit the model by ``method``."""
        ...


class FitLike(Protocol):
    """A fitted model, whatever the method (:class:`bayesglmm.fit.results.GLMMFit`).

    Bayesian fits carry draws in ``idata``, ML fits an ``MLEstimate`` in ``ml``; every
    ``draws_*`` accessor returns the samples first (ML: one sample).
    """

    design: Design
    priors: PriorSet
    method: str
    idata: Any
    ml: Any
    elapsed: float
    user_options: dict[str, Any]
    info: FitInfo
    health: dict[str, Any] | None
    labels: tuple[str, ...]

    # ---------------------------------------------------------------- basics
    @property
    def model(self) -> ModelLike | None:
        """The model that made this fit, when known."""
        ...

    @property
    def options(self) -> Mapping[str, Any]:
        """The options used and the engine's diagnostics, merged and read-only."""
        ...

    @property
    def approximate(self) -> bool:
        """True for every method but NUTS."""
        ...

    @property
    def is_bayesian(self) -> bool:
        """True when the fit carries posterior draws."""
        ...

    @property
    def label(self) -> str:
        """The method label of comparison tables (``"agq25"``, ``"glm_ml"``)."""
        ...

    def _require_ml(self, what: str) -> Any:
        """The ML estimate, or an error naming ``what`` for a Bayesian fit."""
        ...

    # ---------------------------------------------------------------- parameters
    @property
    def n_samples(self) -> int:
        """Number of posterior draws (1 for ML fits)."""
        ...

    def draws_fixed(self) -> np.ndarray:
        """Fixed effects as (samples, k)."""
        ...

    def draws_cov(self, i: int) -> np.ndarray:
        """Covariance matrices of block ``i`` as (samples, p, p)."""
        ...

    def draws_ranef(self, i: int) -> np.ndarray:
        """Random effects of block ``i`` as (samples, levels, p)."""
        ...

    def draws_sigma(self) -> np.ndarray:
        """The residual SD ``sigma`` (families that have one)."""
        ...

    @overload
    def draws_dispersion(self) -> dict[str, np.ndarray]: ...

    @overload
    def draws_dispersion(self, name: str) -> np.ndarray: ...

    def draws_dispersion(self, name: str | None = None) -> dict[str, np.ndarray] | np.ndarray:
        """The family's dispersion parameters by name, or one of them."""
        ...

    def dispersion_arg(self, sl: slice | None = None, mean: bool = False) -> Any:
        """The family's dispersion argument from the draws ``sl`` or their means."""
        ...

    # ---------------------------------------------------------------- lme4 accessors
    def fixef(self) -> pd.Series:
        """Fixed effects (posterior means or estimates)."""
        ...

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Random effects per block."""
        ...

    def varcorr(self) -> pd.DataFrame:
        """Variance components, as lme4's ``VarCorr``."""
        ...

    def se(self) -> pd.Series:
        """Standard errors of the fixed effects (posterior SDs for Bayesian fits)."""
        ...

    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects."""
        ...

    @property
    def loglik(self) -> float:
        """Log-likelihood at the estimate (ML fits)."""
        ...

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (ML fits)."""
        ...

    @property
    def aic(self) -> float:
        """Akaike information criterion."""
        ...

    @property
    def bic(self) -> float:
        """Bayesian information criterion."""
        ...

    @property
    def singular(self) -> bool:
        """True when a variance is at the boundary (ML)."""
        ...

    def summary(self, ci_prob: float = ...) -> pd.DataFrame:
        """The parameter table."""
        ...

    def fitted(self) -> np.ndarray:
        """Fitted values (conditional means on the response scale)."""
        ...

    def log_likelihood(self) -> np.ndarray:
        """The stored pointwise log-likelihood, (samples, n)."""
        ...
