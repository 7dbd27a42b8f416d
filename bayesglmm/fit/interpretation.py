"""``GLMMFit``'s interpretation methods: ICC, predictions, residuals, the posterior
predictive, plots, the marginaleffects-style verbs, R², ``coef``, ``confint`` and ``anova``.

Each is a thin delegate that imports its :mod:`bayesglmm.interpret` module inside the
method (the one import up the pipeline, ``tests/test_architecture.py::DELEGATES``), so a
user has them on the fit while the interpretation modules take the fit as an argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd
import xarray as xr

from bayesglmm.fit.posterior import posterior_dataset
from bayesglmm.intervals import CI_PROB

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike
    from bayesglmm.interpret.icc import PoissonMethod, Scale
    from bayesglmm.interpret.predict import RE, Kind, NewLevels

ResidualType = Literal["deviance", "pearson", "response"]
ConfintMethod = Literal["Wald", "profile"]


def _fit(obj: InterpretationMethods) -> FitLike:
    """The fit this mixin is part of (``GLMMFit`` is its only subclass), for the type checker."""
    return cast("FitLike", obj)


class InterpretationMethods:
    """Mixin of :class:`~bayesglmm.fit.results.GLMMFit`: the interpretation methods."""

    def icc(
        self,
        scale: Scale = "latent",
        method: PoissonMethod = "lognormal",
        ci_prob: float = CI_PROB,
    ) -> pd.DataFrame:
        """Intraclass correlations: one row per grouping factor, ``total`` and ``conditional``.

        Parameters
        ----------
        scale : {"latent", "data"}
        method : {"lognormal", "delta", "trigamma"}
            Poisson distribution-specific variance (Nakagawa et al. 2017).
        ci_prob : float
            Interval mass for Bayesian fits: equal-tailed (columns ``mean, sd, eti95_lb,
            eti95_ub`` by default).
        """
        from bayesglmm.interpret.icc import icc_table

        return icc_table(_fit(self), scale=scale, method=method, ci_prob=ci_prob)

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        kind: Kind = "response",
        re: RE = "conditional",
        new_levels: NewLevels | None = None,
        random_seed: int | None = None,
    ) -> Any:
        """Predictions.

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict (default: the fitted rows).
        kind : {"response", "link"}
            Mean of one trial / count (response) or the linear predictor (link).
        re : {"conditional", "none", "marginal"}
            ``conditional``: with each group's own effects; ``none``: a typical group with
            all effects 0; ``marginal``: averaged over the random-effect distribution
            (population average).
        new_levels : {"sample", "zero", "error"}, optional
            For levels not seen in the fit: draw from the fitted distribution, use 0, or
            raise.  Default: ``"zero"`` for ML fits (lme4's typical group, deterministic)
            and ``"sample"`` for Bayesian fits (brms's ``sample_new_levels="gaussian"``).
        random_seed : int, optional
            Seed of the new-level draws; when None a fixed seed (0) is used, so two
            identical calls give identical predictions.

        Returns
        -------
        xarray.DataArray (chain, draw, obs) for Bayesian fits; numpy array (obs,) for ML.
        """
        from bayesglmm.interpret.predict import predict_draws

        fit = _fit(self)
        out = predict_draws(fit, newdata, kind, re, new_levels, random_seed)
        if not fit.is_bayesian:
            return out[0]
        post = posterior_dataset(fit.idata)
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        return xr.DataArray(
            out.reshape(nc, nd, -1),
            dims=("chain", "draw", "obs"),
            coords={"chain": post["chain"].values, "draw": post["draw"].values},
            name=f"{kind}_{re}",
        )

    def predict_at_quantiles(
        self,
        q: Any = (0.2, 0.4, 0.6, 0.8),
        newdata: pd.DataFrame | None = None,
        kind: Kind = "response",
        group: str | None = None,
    ) -> pd.DataFrame:
        """Predictions with the group's random intercept held at quantiles of its
        distribution (columns ``q0.2`` ...; rows = observations)."""
        from bayesglmm.interpret.predict import predict_at_quantiles

        return predict_at_quantiles(_fit(self), q, newdata, kind, group)

    def fitted(self) -> np.ndarray:
        """Conditional fitted means of the fitted rows (posterior mean for Bayesian fits)."""
        from bayesglmm.interpret.ppc import fitted

        return fitted(_fit(self))

    def residuals(self, type: ResidualType = "deviance") -> np.ndarray:  # noqa: A002
        """Deviance, Pearson or response residuals (conditional on the random effects)."""
        from bayesglmm.interpret.ppc import residuals

        return residuals(_fit(self), type)

    def posterior_predictive(
        self, random_seed: int | None = None, n_draws: int | None = None
    ) -> Any:
        """Replicated data: added to ``idata`` as ``posterior_predictive`` (Bayesian fits) and
        returned; ML fits return parametric replicates (n_draws, obs)."""
        from bayesglmm.interpret.ppc import replicate

        fit = _fit(self)
        yrep = replicate(fit, n_draws=n_draws, random_seed=random_seed)
        if not fit.is_bayesian:
            return yrep
        post = posterior_dataset(fit.idata)
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        ds = xr.Dataset(
            {"y": (("chain", "draw", "obs"), yrep.reshape(nc, nd, -1))},
            coords={"chain": post["chain"].values, "draw": post["draw"].values},
        )
        fit.idata["posterior_predictive"] = ds
        return fit.idata

    def log_likelihood(self) -> np.ndarray:
        """Pointwise log-likelihood (draws, obs)."""
        from bayesglmm.interpret.ppc import pointwise_loglik

        return pointwise_loglik(_fit(self))

    def plot_ppc(self, n_draws: int = 200, random_seed: int | None = 0) -> Any:
        """Posterior predictive check figure (rootogram for counts, per-group proportions for
        binary data)."""
        from bayesglmm.interpret.check_plots import plot_ppc

        return plot_ppc(_fit(self), n_draws=n_draws, random_seed=random_seed)

    def plot_ranef(
        self,
        block: int | str | None = None,
        term: int | str | None = None,
        prob: float = 0.95,
        max_labels: int = 60,
    ) -> Any:
        """Caterpillar plots of the random effects, every factor and term, levels by name;
        see :func:`bayesglmm.interpret.caterpillar_plot.plot_ranef`."""
        from bayesglmm.interpret.caterpillar_plot import plot_ranef

        return plot_ranef(_fit(self), block=block, term=term, prob=prob, max_labels=max_labels)

    def plot_residuals(self, type: ResidualType = "deviance") -> Any:  # noqa: A002
        """Residuals-vs-fitted figure."""
        from bayesglmm.interpret.check_plots import plot_residuals

        return plot_residuals(_fit(self), type=type)

    def predictions(self, newdata: pd.DataFrame | None = None, **kwargs: Any) -> pd.DataFrame:
        """Predictions with intervals, one row per row; see
        :func:`bayesglmm.interpret.effects.predictions`."""
        from bayesglmm.interpret.effects import predictions

        return predictions(_fit(self), newdata, **kwargs)

    def avg_predictions(self, newdata: pd.DataFrame | None = None, **kwargs: Any) -> pd.DataFrame:
        """Average predictions; see :func:`bayesglmm.interpret.effects.avg_predictions`."""
        from bayesglmm.interpret.effects import avg_predictions

        return avg_predictions(_fit(self), newdata, **kwargs)

    def comparisons(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Unit-level contrasts; see :func:`bayesglmm.interpret.effects.comparisons`."""
        from bayesglmm.interpret.effects import comparisons

        return comparisons(_fit(self), variables, **kwargs)

    def avg_comparisons(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Average contrasts (``re="marginal"``: population-averaged); see
        :func:`bayesglmm.interpret.effects.avg_comparisons`."""
        from bayesglmm.interpret.effects import avg_comparisons

        return avg_comparisons(_fit(self), variables, **kwargs)

    def slopes(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Unit-level slopes; see :func:`bayesglmm.interpret.effects.slopes`."""
        from bayesglmm.interpret.effects import slopes

        return slopes(_fit(self), variables, **kwargs)

    def avg_slopes(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Average slopes; see :func:`bayesglmm.interpret.effects.avg_slopes`."""
        from bayesglmm.interpret.effects import avg_slopes

        return avg_slopes(_fit(self), variables, **kwargs)

    def datagrid(self, **values: Any) -> pd.DataFrame:
        """A grid of predictor values; see :func:`bayesglmm.interpret.effects.datagrid`."""
        from bayesglmm.interpret.effects import datagrid

        return datagrid(_fit(self), **values)

    def plot_predictions(self, condition: str, **kwargs: Any) -> Any:
        """Conditional-effects plot; see :func:`bayesglmm.interpret.effect_plots.plot_predictions`."""
        from bayesglmm.interpret.effect_plots import plot_predictions

        return plot_predictions(_fit(self), condition, **kwargs)

    def r2(self, method: PoissonMethod = "lognormal", conf_level: float = CI_PROB) -> pd.DataFrame:
        """Nakagawa's marginal and conditional R² (and the Bayesian R² for fits with draws);
        see :func:`bayesglmm.interpret.r2.r2_table`."""
        from bayesglmm.interpret.r2 import r2_table

        return r2_table(_fit(self), method=method, conf_level=conf_level)

    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed + random effects per level of each grouping factor (lme4's ``coef``)."""
        from bayesglmm.interpret.coefficients import coef

        return coef(_fit(self))

    def confint(
        self,
        parm: list[str] | None = None,
        *,
        level: float = CI_PROB,
        method: ConfintMethod | None = None,
    ) -> pd.DataFrame:
        """Wald or profile intervals (ML), equal-tailed posterior intervals (Bayesian); see
        :func:`bayesglmm.interpret.confidence_intervals.confint`."""
        from bayesglmm.interpret.confidence_intervals import confint

        return confint(_fit(self), parm, level=level, method=method)

    def anova(self, *others: FitLike, names: list[str] | None = None) -> pd.DataFrame:
        """Likelihood-ratio tests (ML) or LOO differences (Bayesian) against other fits; see
        :func:`bayesglmm.interpret.anova_table.anova`."""
        from bayesglmm.interpret.anova_table import anova

        return anova(_fit(self), *others, names=names)
