"""The one fit type, :class:`GLMMFit`, returned by every engine.

Bayesian fits (NUTS, Bayesian Laplace, ADVI) carry draws in ``fit.idata`` (an
``xarray.DataTree`` with the variable names of :mod:`bayesglmm.posterior_names`); ML fits
(Laplace, AGQ, PQL) carry an ``MLEstimate``.  Every accessor works on both.  The class holds
the data and thin methods; the work is in the modules of :mod:`bayesglmm.fit` (``health``,
``summary``, ``printing``, ``loo``, ``bootstrap``); the parameter accessors (``draws_*``) come
from the mixin in :mod:`bayesglmm.fit.parameter_draws`, the interpretation methods from the
mixin in :mod:`bayesglmm.fit.interpretation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesglmm.design.types import Design
from bayesglmm.engines.types import FitInfo
from bayesglmm.errors import BayesGLMMError
from bayesglmm.fit.bootstrap import parametric_bootstrap
from bayesglmm.fit.health import diagnostics_table
from bayesglmm.fit.interpretation import InterpretationMethods
from bayesglmm.fit.loo import loo as psis_loo
from bayesglmm.fit.loo import waic as waic_series
from bayesglmm.fit.parameter_draws import ParameterDrawMethods
from bayesglmm.fit.printing import format_fit
from bayesglmm.fit.summary import summary_table
from bayesglmm.intervals import CI_PROB
from bayesglmm.priors import PriorSet, block_labels

if TYPE_CHECKING:  # the model imports this module; a fit only calls its model's methods
    from bayesglmm.fit_protocol import ModelLike


class GLMMFit(ParameterDrawMethods, InterpretationMethods):
    """A fitted GLMM, whatever the method.

    Attributes
    ----------
    design : Design
        The model design.
    priors : PriorSet
        Priors (used by Bayesian methods; shown by :meth:`prior_summary`).
    method : str
        ``"nuts"``, ``"laplace"``, ``"advi"``, ``"fullrank_advi"``, ``"ml"`` or ``"pql"``.
    elapsed : float
        Wall time of the fit in seconds.
    approximate : bool
        True for every method but NUTS.
    idata : xarray.DataTree or None
        Posterior draws (Bayesian methods).
    ml : MLEstimate or None
        Point estimates (ML and PQL).
    options : mapping
        Read-only: the method options used (:attr:`user_options`, the engine's defaults
        included) merged with the engine's diagnostics (:attr:`info`) under the keys fits
        have always shown (``sampler``, ``converged``, ``notes``, ``partial``, ...).
    user_options : dict
        The method options used.
    info : FitInfo
        What the engine reported (iterations, convergence, messages, timings, ...).
    """

    def __init__(
        self,
        design: Design,
        priors: PriorSet,
        method: str,
        *,
        idata: Any = None,
        ml: Any = None,
        elapsed: float = float("nan"),
        options: Mapping[str, Any] | None = None,
        health: dict[str, Any] | None = None,
        model: ModelLike | None = None,
        info: FitInfo | None = None,
    ) -> None:
        self.design = design
        self.priors = priors
        self.method = method
        self.idata = idata
        self.ml = ml
        self.elapsed = float(elapsed)
        self.user_options = dict(options or {})
        self.info = info if info is not None else FitInfo()
        self.health = health
        self._model = model  # the GLMM that made this fit (for refits / predictions)
        self.labels = block_labels(design)

    # ------------------------------------------------------------------ basics
    @property
    def model(self) -> ModelLike | None:
        """The model that made this fit (refits, predictions on new data), when known."""
        return self._model

    @property
    def options(self) -> Mapping[str, Any]:
        """The options used and the engine's diagnostics, merged and read-only."""
        return MappingProxyType({**self.user_options, **self.info.as_options()})

    @property
    def approximate(self) -> bool:
        """True for every method but NUTS."""
        return self.method != "nuts"

    @property
    def is_bayesian(self) -> bool:
        """True when the fit carries posterior draws."""
        return self.idata is not None

    @property
    def label(self) -> str:
        """Method label used in comparison tables, e.g. ``"agq25"``, ``"ml_boot"``; a model
        without random effects gets the prefix ``glm_`` (``"glm_ml"`` beside a GLMM's
        ``"ml"``)."""
        return ("" if self.design.blocks else "glm_") + self._method_label()

    def _method_label(self) -> str:
        if self.options.get("bootstrap"):
            return f"{self.method}_boot"
        if self.method == "ml":
            q = getattr(self.ml, "nagq", 1)
            return "ml" if q == 1 else f"agq{q}"
        if self.method == "pql" and self.options.get("dispersion") == "fixed":
            return "pql_phi1"
        return self.method

    def _require_ml(self, what: str) -> Any:
        if self.ml is None:
            raise BayesGLMMError(f"`{what}` is only defined for ML fits (method='ml' or 'pql')")
        return self.ml

    # ------------------------------------------------------------------ lme4-style accessors
    def fixef(self) -> pd.Series:
        """Fixed effects: posterior means (Bayesian) or estimates (ML), in formula order."""
        return pd.Series(
            self.draws_fixed().mean(axis=0), index=list(self.design.x_names), name="fixef"
        )

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Random effects per block: DataFrame of levels x terms (posterior means / modes)."""
        out = {}
        for i, (label, b) in enumerate(zip(self.labels, self.design.blocks, strict=True)):
            out[label] = pd.DataFrame(
                self.draws_ranef(i).mean(axis=0), index=list(b.levels), columns=list(b.terms)
            )
        return out

    def varcorr(self) -> pd.DataFrame:
        """Variance components, one row per variance or covariance (as lme4's VarCorr).

        Columns ``group, term1, term2, variance, sd_cor``: ``term2`` is None for variances,
        ``sd_cor`` is the SD (variances) or the correlation (covariances).  Bayesian fits give
        posterior means of each quantity.
        """
        rows: list[tuple[str, str | None, str | None, float, float]] = []
        for i, b in enumerate(self.design.blocks):
            cov = self.draws_cov(i)
            sd = np.sqrt(np.einsum("sii->si", cov))
            for j, t in enumerate(b.terms):
                rows.append((b.group, t, None, cov[:, j, j].mean(), sd[:, j].mean()))
            for j in range(b.n_terms):
                for k in range(j + 1, b.n_terms):
                    if not b.correlated:
                        continue
                    with np.errstate(invalid="ignore", divide="ignore"):
                        cor = cov[:, j, k] / (sd[:, j] * sd[:, k])
                    rows.append(
                        (
                            b.group,
                            b.terms[j],
                            b.terms[k],
                            cov[:, j, k].mean(),
                            np.nanmean(cor) if np.isfinite(cor).any() else 0.0,
                        )
                    )
        # lme4's sigma(fit), from the first dispersion parameter: gaussian sigma, gamma
        # sqrt(1 / shape); none where the dispersion is no residual SD (NB, Beta)
        first = next(iter(self.draws_dispersion().values()), None)
        s = None if first is None else self.design.family.spec.residual_sd(first)
        if s is not None:
            rows.append(("Residual", None, None, float(np.mean(s**2)), float(np.mean(s))))
        return pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd_cor"])

    # ------------------------------------------------------------------ ML extras
    def se(self) -> pd.Series:
        """Standard errors of the fixed effects (ML fits; posterior SDs for Bayesian fits)."""
        if self.ml is None:
            return pd.Series(
                self.draws_fixed().std(axis=0, ddof=1), index=list(self.design.x_names)
            )
        return pd.Series(np.sqrt(np.diag(self.ml.vcov_beta)), index=list(self.design.x_names))

    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects (ML), or their posterior covariance."""
        names = list(self.design.x_names)
        if self.ml is None:
            return pd.DataFrame(
                np.cov(self.draws_fixed(), rowvar=False), index=names, columns=names
            )
        return pd.DataFrame(np.asarray(self.ml.vcov_beta), index=names, columns=names)

    @property
    def loglik(self) -> float:
        """Log-likelihood at the estimate (ML fits; NaN for PQL, whose quasi-likelihood is not one)."""
        return float(self._require_ml("loglik").loglik)

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (fixed effects + covariance parameters [+ sigma])."""
        ml = self._require_ml("n_params")
        extra = len(self.design.family.dispersion)  # its dispersion parameters
        return int(self.design.k + len(np.asarray(ml.theta)) + extra)

    @property
    def aic(self) -> float:
        """Akaike information criterion, ``-2 loglik + 2 p``."""
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``-2 loglik + log(n) p``."""
        return -2.0 * self.loglik + math.log(self.design.n) * self.n_params

    @property
    def deviance(self) -> float:
        """``-2 loglik`` (as lme4's ``deviance()`` for GLMMs)."""
        return -2.0 * self.loglik

    @property
    def singular(self) -> bool:
        """True when a variance is at the boundary (ML); Bayesian fits are never singular."""
        return bool(getattr(self.ml, "singular", False)) if self.ml is not None else False

    def cond_modes(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects (ML), same layout as :meth:`ranef`."""
        self._require_ml("cond_modes")
        return self.ranef()

    def cond_var(self) -> dict[str, np.ndarray]:
        """Conditional (co)variances of the random effects (ML): block -> (levels, p, p)."""
        ml = self._require_ml("cond_var")
        return {lab: np.asarray(v) for lab, v in zip(self.labels, ml.cond_var, strict=True)}

    # ------------------------------------------------------------------ summaries
    def summary(self, ci_prob: float = CI_PROB) -> pd.DataFrame:
        """Parameter table, one row per parameter, named as in ``fixef()`` and ``compare()``.

        Bayesian fits: the ArviZ summary, ``mean, sd, eti95_lb, eti95_ub`` (the equal-tailed
        ``ci_prob`` interval, 95% by default as everywhere in bayesglmm) and, for NUTS,
        ``ess_bulk, ess_tail, r_hat, mcse_mean, mcse_sd``; rows ``(Intercept)``, the
        predictors, ``sd(g: term)``, ``cor(g: a, b)``, ``sigma``.  ML fits: glmer's layout,
        ``Estimate, Std. Error, z value, Pr(>|z|)`` (``t value`` for a family with an
        estimated scale, as glmer's Gamma); a gaussian identity-link (linear mixed) model
        gets lmer's, ``Estimate, Std. Error, t value`` and no p-value.
        """
        return summary_table(self, ci_prob)

    def prior_summary(self) -> pd.DataFrame:
        """The priors actually used (class, term, prior)."""
        return pd.DataFrame(self.priors.table(), columns=["class", "term", "prior"])

    def diagnostics(self) -> pd.DataFrame:
        """Health table: divergences, R-hat, ESS, E-BFMI, tree depth, optimizer and singularity.

        One row per check with its value, threshold, status (``ok``/``warn``/``n/a``) and
        advice.
        """
        return diagnostics_table(self)

    # ------------------------------------------------------------------ interpretation

    def loo(self, group: str | None = None) -> Any:
        """PSIS-LOO (ArviZ) on the stored pointwise log-likelihood.

        With ``group="g"``, leave-one-group-out: the log-likelihood is summed by level of
        ``g`` first (expect high Pareto k with few observations per group).  With prior
        weights each row counts with its weight (:func:`bayesglmm.interpret.ppc.pointwise_loglik`);
        rows of weight 0 are not in the likelihood and are left out.
        """
        return psis_loo(self, group)

    def waic(self) -> pd.Series:
        """WAIC (Watanabe 2010), computed here since ArviZ 1 dropped it: ``elpd_waic``,
        ``p_waic``, ``waic`` (deviance scale) and the standard error."""
        return waic_series(self)

    def bootstrap(self, n_boot: int = 200, random_seed: int | None = None) -> GLMMFit:
        """Parametric bootstrap of an ML or PQL fit.

        Simulates ``n_boot`` responses from the fitted model (new random effects drawn from
        the estimated covariances), refits each by the same method and options, and returns
        a fit whose "draws" are the bootstrap replicates, so ``icc()``, ``predict()``,
        ``summary()`` and ``compare`` give bootstrap intervals.  Failed refits are counted in
        ``options["failed"]``.
        """
        return parametric_bootstrap(self, n_boot, random_seed)

    def save(self, path: Any, *, overwrite: bool = False) -> Any:
        """Save to a directory (the typed data the fit used, the fitted response, spec,
        checksums, draws as netCDF or ML estimates, package version); read back with
        :func:`bayesglmm.load_fit`.  A different fit already saved in ``path`` is replaced
        only with ``overwrite=True``; see :func:`bayesglmm.io.write.save_fit`."""
        from bayesglmm.io.write import save_fit

        return save_fit(self, path, overwrite=overwrite)

    # ------------------------------------------------------------------ printing
    def __repr__(self) -> str:
        return self.format()

    def format(self, digits: int = 4) -> str:
        """The printed fit: lme4's layout for ML and PQL fits, brms's for Bayesian ones.

        Parameters
        ----------
        digits : int
            Significant digits of the variance components (lme4 prints 5 by default; so do
            we at ``digits=4``, one more than the estimates).

        Notes
        -----
        Bayesian intervals are equal-tailed 95% intervals of the draws, as brms prints
        them; ML standard errors are Wald (``Estimate +- 1.96 SE`` is the matching 95%
        interval).
        """
        return format_fit(self, digits)

    # ------------------------------------------------------------------ interpretation verbs
    # thin delegates to bayesglmm.interpret (marginaleffects-style verbs, R², lme4 accessors)
