"""The one fit type, :class:`GLMMFit`, returned by every engine.

Bayesian fits (NUTS, Bayesian Laplace, ADVI) carry draws in ``fit.idata`` (an
``xarray.DataTree`` with the variable names of :mod:`bayesglmm.engines.bayes.pymc_model`); ML fits (Laplace,
AGQ, PQL) carry an ``MLEstimate``.  Every accessor works on both.  This is the only module
that calls ArviZ.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from bayesglmm import posterior_names as nm
from bayesglmm.design.separation import ML_UNRELIABLE
from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.draws import draws_to_tree
from bayesglmm.engines.registry import bayesian_methods, engines
from bayesglmm.engines.types import FitInfo
from bayesglmm.errors import BayesGLMMError, SamplerWarning
from bayesglmm.intervals import CI_PROB, describe, eti
from bayesglmm.priors import PriorSet, block_labels
from bayesglmm.quiet import ignoring_warnings

if TYPE_CHECKING:  # the model imports this module; a fit only calls its model's methods
    from bayesglmm.model import GLMM


def method_label(method: str) -> str:
    """How a printed fit names its method (the engine's label)."""
    engine = engines().get(method)
    return method if engine is None else engine.label or method


def posterior_dataset(idata: Any) -> xr.Dataset:
    """The posterior group of a DataTree as a Dataset."""
    return idata["posterior"].to_dataset()


def _stack(da: xr.DataArray) -> np.ndarray:
    """(chain, draw, ...) -> (sample, ...)."""
    vals = np.asarray(da.values)
    return vals.reshape((-1, *vals.shape[2:]))


def check_health(idata: Any, *, emit: bool = True) -> dict[str, Any]:
    """Sampler health: divergences, max R-hat, min bulk/tail ESS, E-BFMI, tree-depth saturation.

    Warns with advice (``SamplerWarning``) when ``emit`` and something is off.
    """
    post = posterior_dataset(idata)
    names = [v for v in post.data_vars if not v.startswith(("z_", "r_", "chol"))]
    sub = post[names]
    # correlation diagonals are constant 1: drop them from R-hat/ESS
    for v in list(sub.data_vars):
        if v.startswith("cor_"):
            sub = sub.drop_vars(v)
    out: dict[str, Any] = {}
    nchain = post.sizes.get("chain", 1)
    ndraw = post.sizes.get("draw", 0)
    stats_ds = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else None
    div = 0
    depth_sat = 0.0
    bfmi = float("nan")
    if stats_ds is not None:
        if "diverging" in stats_ds:
            div = int(stats_ds["diverging"].sum())
        for key in ("reached_max_treedepth", "maxdepth_reached"):
            if key in stats_ds:
                depth_sat = float(stats_ds[key].mean())
        if "energy" in stats_ds:
            e = np.asarray(stats_ds["energy"].values, dtype=float)
            bfmi = float(np.min(np.mean(np.diff(e, axis=1) ** 2, axis=1) / np.var(e, axis=1)))
    if nchain >= 2 and ndraw >= 4:
        tree = xr.DataTree.from_dict({"posterior": sub})
        import arviz_stats as azs

        rhat = azs.rhat(tree)
        ess_b = azs.ess(tree, method="bulk")
        ess_t = azs.ess(tree, method="tail")

        def _agg(node: Any, fn: Any) -> float:
            ds = node.to_dataset() if hasattr(node, "to_dataset") else node
            vals = [np.asarray(v.values, dtype=float).ravel() for v in ds.data_vars.values()]
            arr = np.concatenate(vals) if vals else np.array([np.nan])
            arr = arr[np.isfinite(arr)]
            return float(fn(arr)) if arr.size else float("nan")

        out["max_rhat"] = _agg(rhat, np.max)
        out["min_ess_bulk"] = _agg(ess_b, np.min)
        out["min_ess_tail"] = _agg(ess_t, np.min)
    else:
        out["max_rhat"] = out["min_ess_bulk"] = out["min_ess_tail"] = float("nan")
    out.update(divergences=div, ebfmi=bfmi, treedepth_saturation=depth_sat)
    out["n_draws"] = int(nchain * ndraw)
    if emit:
        for msg in health_messages(out):
            warnings.warn(msg, SamplerWarning, stacklevel=3)
    return out


def health_messages(h: dict[str, Any]) -> list[str]:
    """Plain-language advice for each failed health check."""
    msgs = []
    if h.get("divergences", 0) > 0:
        msgs.append(
            f"{h['divergences']} divergent transitions after tuning: the posterior geometry is "
            "hard for NUTS. Raise target_accept (e.g. 0.95-0.99); if they persist, switch the "
            "random-effect parameterization (centered=True for groups with many observations, "
            "the default non-centred one for few), or use more informative SD priors"
        )
    r = h.get("max_rhat", float("nan"))
    if np.isfinite(r) and r > 1.01:
        msgs.append(
            f"max R-hat is {r:.4f} (> 1.01): chains disagree. Run longer (more tune and draws) "
            "and check the trace plots"
        )
    e = h.get("min_ess_bulk", float("nan"))
    n_chains_draws = h.get("n_draws", 0)
    if np.isfinite(e) and e < min(400.0, 0.1 * max(n_chains_draws, 1) + 100):
        msgs.append(
            f"minimum bulk ESS is {e:.0f}: posterior means and intervals are noisy. Run more "
            "draws (predictors are standardized internally, so their scale is not the cause)"
        )
    b = h.get("ebfmi", float("nan"))
    if np.isfinite(b) and b < 0.3:
        msgs.append(
            f"E-BFMI is {b:.2f} (< 0.3): the sampler explores the energy poorly; "
            "reparameterize (centred vs non-centred) or use more informative SD priors"
        )
    if h.get("treedepth_saturation", 0.0) > 0.01:
        msgs.append(
            f"{100 * h['treedepth_saturation']:.1f}% of transitions hit the maximum tree depth: "
            "reparameterize (centered=) or raise max_treedepth"
        )
    return msgs


class GLMMFit:
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
        model: GLMM | None = None,
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

    # ------------------------------------------------------------------ draws (uniform)
    def draws_fixed(self) -> np.ndarray:
        """Fixed effects as (samples, k) in ``design.x_names`` order (ML: one row)."""
        if self.ml is not None:
            return np.asarray(self.ml.beta, dtype=float)[None, :]
        post = posterior_dataset(self.idata)
        cols = []
        for name in self.design.x_names:
            if name == "(Intercept)":
                cols.append(_stack(post[nm.INTERCEPT]))
            else:
                cols.append(_stack(post[nm.BETA].sel({nm.FIXED_DIM: name})))
        if not cols:
            return np.zeros((self.n_samples, 0))
        return np.column_stack(cols)

    @property
    def n_samples(self) -> int:
        """Number of posterior draws (1 for ML fits)."""
        if self.ml is not None:
            return 1
        post = posterior_dataset(self.idata)
        return int(post.sizes["chain"] * post.sizes["draw"])

    def draws_cov(self, i: int) -> np.ndarray:
        """Covariance matrices of block ``i`` as (samples, p, p)."""
        if self.ml is not None:
            return np.asarray(self.ml.covariances[i], dtype=float)[None]
        label = self.labels[i]
        post = posterior_dataset(self.idata)
        sd = _stack(post[nm.sd(label)])
        if nm.cor(label) in post:
            cor = _stack(post[nm.cor(label)])
        else:
            cor = np.broadcast_to(np.eye(sd.shape[1]), (sd.shape[0], sd.shape[1], sd.shape[1]))
        return cor * sd[:, :, None] * sd[:, None, :]

    def draws_ranef(self, i: int) -> np.ndarray:
        """Random effects of block ``i`` as (samples, levels, p) (ML: conditional modes)."""
        if self.ml is not None:
            return np.asarray(self.ml.modes[i], dtype=float)[None]
        return _stack(posterior_dataset(self.idata)[nm.r(self.labels[i])])

    def draws_sigma(self) -> np.ndarray | None:
        """Residual SD draws (gaussian), else None."""
        if not self.design.family.has_dispersion:
            return None
        if self.ml is not None:  # the family's first dispersion (gaussian: sigma)
            return np.array([float((self.ml.family_dispersion or (self.ml.sigma,))[0])])
        return _stack(posterior_dataset(self.idata)[self.design.family.dispersion[0].name])

    def dispersion_arg(self, sl: slice | None = None, mean: bool = False) -> Any:
        """The family's dispersion argument (``FamilySpec.dispersion_arg``) from
        :meth:`draws_dispersion`: draws ``sl`` as a column (S, 1), or their means."""
        disp = self.draws_dispersion()
        if mean:
            vals = {k: float(np.mean(v)) for k, v in disp.items()}
        else:
            vals = {k: v[sl if sl is not None else slice(None)][:, None] for k, v in disp.items()}
        return self.design.family.spec.dispersion_arg(vals)

    def draws_dispersion(self) -> dict[str, np.ndarray]:
        """Draws (Bayesian) or the estimate (ML, one entry) of each of the family's dispersion
        parameters, by name (``Family.dispersion``); empty when it has none."""
        out = {}
        for i, disp in enumerate(self.design.family.dispersion):
            if self.ml is not None:  # the family's dispersion estimates (gaussian: sigma)
                est = self.ml.family_dispersion or (self.ml.sigma,)
                out[disp.name] = np.array([float(est[i])])
            else:
                out[disp.name] = _stack(posterior_dataset(self.idata)[disp.name])
        return out

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
        rows = []
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
        s = self.draws_sigma()
        if s is not None:  # lme4's sigma(fit): gaussian sigma, gamma sqrt(1 / shape)
            s = self.design.family.spec.residual_sd(s)
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
    def _summary_dataset(self) -> xr.Dataset:
        """The named parameters as scalar (chain, draw) variables, under the names every
        table uses: ``(Intercept)`` and the predictors as in ``fixef()``, ``sd(g: term)``,
        ``cor(g: a, b)`` and ``sigma`` as in ``compare()``."""
        post = posterior_dataset(self.idata)
        d = self.design
        dims = ("chain", "draw")
        out: dict[str, Any] = {}
        slopes = [n for n in d.x_names if n != "(Intercept)"]
        for name in d.x_names:
            if name == "(Intercept)":
                out[name] = (dims, post[nm.INTERCEPT].values)
            else:
                out[name] = (dims, post[nm.BETA].values[..., slopes.index(name)])
        for lab, b in zip(self.labels, d.blocks, strict=True):
            sd = post[nm.sd(lab)].values
            for j, t in enumerate(b.terms):
                out[f"sd({b.group}: {t})"] = (dims, sd[..., j])
            if nm.cor(lab) in post:
                cor = post[nm.cor(lab)].values
                for j in range(b.n_terms):
                    for k in range(j + 1, b.n_terms):
                        out[f"cor({b.group}: {b.terms[j]}, {b.terms[k]})"] = (dims, cor[..., j, k])
        if "sigma" in post:
            out[nm.SIGMA] = (dims, post[nm.SIGMA].values)
        for disp in d.family.dispersion:  # other dispersions by name (negative binomial shape)
            if disp.name != nm.SIGMA and disp.name in post:
                out[disp.name] = (dims, post[disp.name].values)
        return xr.Dataset(out, coords={"chain": post["chain"].values, "draw": post["draw"].values})

    def summary(self, ci_prob: float = CI_PROB) -> pd.DataFrame:
        """Parameter table, one row per parameter, named as in ``fixef()`` and ``compare()``.

        Bayesian fits: the ArviZ summary, ``mean, sd, eti95_lb, eti95_ub`` (the equal-tailed
        ``ci_prob`` interval, 95% by default as everywhere in bayesglmm) and, for NUTS,
        ``ess_bulk, ess_tail, r_hat, mcse_mean, mcse_sd``; rows ``(Intercept)``, the
        predictors, ``sd(g: term)``, ``cor(g: a, b)``, ``sigma``.  ML fits: glmer's layout,
        ``Estimate, Std. Error, z value, Pr(>|z|)`` (t value for gaussian).
        """
        if self.ml is None:
            ds = self._summary_dataset()
            kind = "all" if self.method == "nuts" else "stats"
            import arviz_stats as azs

            table = azs.summary(ds, kind=kind, ci_kind="eti", ci_prob=ci_prob)
            return pd.DataFrame(table)
        est = self.fixef()
        se = self.se()
        z = est / se
        p = special.erfc(np.abs(z) / math.sqrt(2.0))
        fam = self.design.family
        zname = "t value" if fam.has_dispersion and not fam.spec.wald_z else "z value"
        return pd.DataFrame(
            {"Estimate": est, "Std. Error": se, zname: z, "Pr(>|z|)": p}, index=est.index
        )

    def prior_summary(self) -> pd.DataFrame:
        """The priors actually used (class, term, prior)."""
        return pd.DataFrame(self.priors.table(), columns=["class", "term", "prior"])

    def diagnostics(self) -> pd.DataFrame:
        """Health table: divergences, R-hat, ESS, E-BFMI, tree depth, optimizer and singularity.

        One row per check with its value, threshold, status (``ok``/``warn``/``n/a``) and
        advice.
        """
        rows = []

        def add(name: str, value: Any, thresh: str, bad: bool | None, advice: str = "") -> None:
            status = "n/a" if bad is None else ("warn" if bad else "ok")
            rows.append((name, value, thresh, status, advice if bad else ""))

        if self.method == "nuts" and self.idata is not None:
            h = self.health or check_health(self.idata, emit=False)
            add(
                "divergences",
                h["divergences"],
                "0",
                h["divergences"] > 0,
                "raise target_accept (0.95-0.99) or switch centring (centered=True/False)",
            )
            add(
                "max_rhat",
                h["max_rhat"],
                "<= 1.01",
                None if not np.isfinite(h["max_rhat"]) else h["max_rhat"] > 1.01,
                "run more tuning and draws",
            )
            add(
                "min_ess_bulk",
                h["min_ess_bulk"],
                ">= 400",
                None if not np.isfinite(h["min_ess_bulk"]) else h["min_ess_bulk"] < 400,
                "run more draws",
            )
            add(
                "min_ess_tail",
                h["min_ess_tail"],
                ">= 400",
                None if not np.isfinite(h["min_ess_tail"]) else h["min_ess_tail"] < 400,
                "run more draws",
            )
            add(
                "ebfmi",
                h["ebfmi"],
                ">= 0.3",
                None if not np.isfinite(h["ebfmi"]) else h["ebfmi"] < 0.3,
                "reparameterize (centring) or tighten the SD priors",
            )
            add(
                "treedepth_saturation",
                h["treedepth_saturation"],
                "<= 1%",
                h["treedepth_saturation"] > 0.01,
                "reparameterize (centered=) or raise max_treedepth",
            )
        if self.ml is not None:
            ml = self.ml
            add(
                "optimizer_converged",
                bool(ml.converged),
                "True",
                not ml.converged,
                "check for separation; simplify the random effects; try another start",
            )
            add(
                "gradient_norm",
                float(ml.grad_norm),
                "< 1e-3",
                float(ml.grad_norm) > 1e-3,
                "simplify the model or try another start (lme4: 'Model failed to converge')",
            )
            add(
                "singular",
                bool(ml.singular),
                "False",
                bool(ml.singular),
                "a variance is 0: simplify the random-effect structure",
            )
            if self.method == "ml" and self.design.family.is_binomial:
                sep = [m for m in ml.messages if m.startswith(ML_UNRELIABLE)]
                add(
                    "separation",
                    bool(sep),
                    "False",
                    bool(sep),
                    "ML estimates are unreliable (infinite): fit with a Bayesian method (the "
                    "priors keep the posterior proper) or merge the separating levels",
                )
        if self.method != "nuts" and self.method in bayesian_methods():
            conv = self.options.get("converged")
            add(
                "optimizer_converged",
                conv,
                "True",
                None if conv is None else not conv,
                "raise the iteration count or lower the learning rate",
            )
        return pd.DataFrame(rows, columns=["check", "value", "threshold", "status", "advice"])

    # ------------------------------------------------------------------ interpretation
    def icc(
        self, scale: str = "latent", method: str = "lognormal", ci_prob: float = CI_PROB
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

        return icc_table(self, scale=scale, method=method, ci_prob=ci_prob)  # type: ignore[arg-type]

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        kind: str = "response",
        re: str = "conditional",
        new_levels: str | None = None,
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

        out = predict_draws(self, newdata, kind, re, new_levels, random_seed)  # type: ignore[arg-type]
        if not self.is_bayesian:
            return out[0]
        post = posterior_dataset(self.idata)
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
        kind: str = "response",
        group: str | None = None,
    ) -> pd.DataFrame:
        """Predictions with the group's random intercept held at quantiles of its
        distribution (columns ``q0.2`` ...; rows = observations)."""
        from bayesglmm.interpret.predict import predict_at_quantiles

        return predict_at_quantiles(self, q, newdata, kind, group)  # type: ignore[arg-type]

    def fitted(self) -> np.ndarray:
        """Conditional fitted means of the fitted rows (posterior mean for Bayesian fits)."""
        from bayesglmm.interpret.ppc import fitted

        return fitted(self)

    def residuals(self, type: str = "deviance") -> np.ndarray:  # noqa: A002
        """Deviance, Pearson or response residuals (conditional on the random effects)."""
        from bayesglmm.interpret.ppc import residuals

        return residuals(self, type)  # type: ignore[arg-type]

    def posterior_predictive(
        self, random_seed: int | None = None, n_draws: int | None = None
    ) -> Any:
        """Replicated data: added to ``idata`` as ``posterior_predictive`` (Bayesian fits) and
        returned; ML fits return parametric replicates (n_draws, obs)."""
        from bayesglmm.interpret.ppc import replicate

        yrep = replicate(self, n_draws=n_draws, random_seed=random_seed)
        if not self.is_bayesian:
            return yrep
        post = posterior_dataset(self.idata)
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        ds = xr.Dataset(
            {"y": (("chain", "draw", "obs"), yrep.reshape(nc, nd, -1))},
            coords={"chain": post["chain"].values, "draw": post["draw"].values},
        )
        self.idata["posterior_predictive"] = ds
        return self.idata

    def log_likelihood(self) -> np.ndarray:
        """Pointwise log-likelihood (draws, obs)."""
        from bayesglmm.interpret.ppc import pointwise_loglik

        return pointwise_loglik(self)

    def _require_bayes(self, what: str) -> None:
        if not self.is_bayesian:
            raise BayesGLMMError(f"`{what}` needs posterior draws (method nuts, laplace or advi)")

    def loo(self, group: str | None = None) -> Any:
        """PSIS-LOO (ArviZ) on the stored pointwise log-likelihood.

        With ``group="g"``, leave-one-group-out: the log-likelihood is summed by level of
        ``g`` first (expect high Pareto k with few observations per group).  With prior
        weights each row counts with its weight (:func:`bayesglmm.interpret.ppc.pointwise_loglik`);
        rows of weight 0 are not in the likelihood and are left out.
        """
        self._require_bayes("loo")
        if "log_likelihood" not in self.idata.children:  # fitted with log_likelihood=False
            attach_log_likelihood(self)
        tree = self.idata
        w = self.design.weights
        if w is not None and np.any(np.asarray(w) == 0):
            tree = tree.copy()
            keep = np.flatnonzero(np.asarray(w) > 0)
            tree["log_likelihood"] = tree["log_likelihood"].to_dataset().isel(obs=keep)
        if group is not None:
            blk = next((b for b in self.design.blocks if b.group == group), None)
            if blk is None:
                raise BayesGLMMError(f"unknown group `{group}`; have {list(self.design.groups)}")
            ll = tree["log_likelihood"]["y"]
            ll = ll.assign_coords(grp=("obs", np.asarray(blk.levels)[blk.index]))
            tree = tree.copy()
            tree["log_likelihood"] = xr.Dataset({"y": ll.groupby("grp").sum().rename(grp="obs")})
        import arviz_stats as azs

        return azs.loo(tree)

    def waic(self) -> pd.Series:
        """WAIC (Watanabe 2010), computed here since ArviZ 1 dropped it: ``elpd_waic``,
        ``p_waic``, ``waic`` (deviance scale) and the standard error."""
        self._require_bayes("waic")
        ll = (
            self.log_likelihood()
            if "log_likelihood" not in self.idata.children
            else _stack(self.idata["log_likelihood"]["y"])
        )
        m = ll.max(axis=0)
        lppd_i = m + np.log(np.mean(np.exp(ll - m), axis=0))
        p_i = ll.var(axis=0, ddof=1)
        elpd_i = lppd_i - p_i
        n = elpd_i.size
        return pd.Series(
            {
                "elpd_waic": elpd_i.sum(),
                "se": float(np.sqrt(n * elpd_i.var())),
                "p_waic": p_i.sum(),
                "waic": -2 * elpd_i.sum(),
                "n_high_p": int((p_i > 0.4).sum()),
            }
        )

    def plot_ppc(self, n_draws: int = 200, random_seed: int | None = 0) -> Any:
        """Posterior predictive check figure (rootogram for counts, per-group proportions for
        binary data)."""
        from bayesglmm.interpret.plots import plot_ppc

        return plot_ppc(self, n_draws=n_draws, random_seed=random_seed)

    def plot_ranef(
        self,
        block: int | str | None = None,
        term: int | str | None = None,
        prob: float = 0.95,
        max_labels: int = 60,
    ) -> Any:
        """Caterpillar plots of the random effects, every factor and term, levels by name;
        see :func:`bayesglmm.interpret.plots.plot_ranef`."""
        from bayesglmm.interpret.plots import plot_ranef

        return plot_ranef(self, block=block, term=term, prob=prob, max_labels=max_labels)

    def plot_residuals(self, type: str = "deviance") -> Any:  # noqa: A002
        """Residuals-vs-fitted figure."""
        from bayesglmm.interpret.plots import plot_residuals

        return plot_residuals(self, type=type)

    def bootstrap(self, n_boot: int = 200, random_seed: int | None = None) -> GLMMFit:
        """Parametric bootstrap of an ML or PQL fit.

        Simulates ``n_boot`` responses from the fitted model (new random effects drawn from
        the estimated covariances), refits each by the same method and options, and returns
        a fit whose "draws" are the bootstrap replicates, so ``icc()``, ``predict()``,
        ``summary()`` and ``compare`` give bootstrap intervals.  Failed refits are counted in
        ``options["failed"]``.
        """
        ml = self._require_ml("bootstrap")
        if self._model is None:
            raise BayesGLMMError("this fit has no model attached to refit")
        from bayesglmm.interpret.ppc import simulate_response

        d = self.design
        rng = np.random.default_rng(random_seed)
        eta0 = d.X @ np.asarray(ml.beta) + d.offset
        opts = {k: v for k, v in self.options.items() if k in ("nagq", "dispersion")}
        betas, covs, ranefs, sigmas, failed = [], [], [], [], 0
        for _ in range(int(n_boot)):
            eta = eta0.copy()
            for b, cov in zip(d.blocks, ml.covariances, strict=True):
                L = np.linalg.cholesky(np.asarray(cov) + 1e-12 * np.eye(b.n_terms))
                r = rng.standard_normal((b.n_levels, b.n_terms)) @ L.T
                eta += np.einsum("np,np->n", b.Z, r[b.index])
            y = simulate_response(self, eta[None, :], rng)[0]
            try:
                with ignoring_warnings():
                    f = self._model.with_response(y).fit(method=self.method, **opts)
            except BayesGLMMError:
                failed += 1
                continue
            betas.append(np.asarray(f.ml.beta))
            covs.append([np.asarray(c) for c in f.ml.covariances])
            ranefs.append([np.asarray(m) for m in f.ml.modes])
            sigmas.append((f.ml.family_dispersion or (f.ml.sigma,))[0])
        if not betas:
            raise BayesGLMMError(f"all {n_boot} bootstrap refits failed")
        sigma = np.array(sigmas, dtype=float) if d.family.has_dispersion else None
        tree = draws_to_tree(d, np.array(betas), covs, ranefs, sigma=sigma)
        return GLMMFit(
            d,
            self.priors,
            self.method,
            idata=tree,
            elapsed=float("nan"),
            options=opts,
            info=FitInfo(extra={"bootstrap": len(betas), "failed": failed}),
            model=self._model,
        )

    def save(self, path: Any, *, overwrite: bool = False) -> Any:
        """Save to a directory (the typed data the fit used, the fitted response, spec,
        checksums, draws as netCDF or ML estimates, package version); read back with
        :func:`bayesglmm.load_fit`.  A different fit already saved in ``path`` is replaced
        only with ``overwrite=True``; see :func:`bayesglmm.io.save_fit`."""
        from bayesglmm.io import save_fit

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
        d = self.design
        lines = [self._title()]
        disp = ", ".join(  # dispersions other than the residual SD, lme4's Negative Binomial(2.3)
            f"{p.label or p.name} = {_sig(float(np.mean(v)), digits)}"
            for p, v in zip(d.family.dispersion, self.draws_dispersion().values(), strict=True)
            if p.name != "sigma"
        )
        lines.append(f" Family: {d.family.name}{f'({disp})' if disp else ''} ( {d.family.link} )")
        lines.append(f"Formula: {d.formula}")
        if d.success_level is not None:
            lines.append(f"Response: `{d.response_name}`, success = {d.success_level!r}")
        lines.append(
            f" Observations: {d.n}"
            + (f" ({d.n_dropped} dropped for missing values)" if d.n_dropped else "")
        )
        groups = ", ".join(f"{b.group}, {b.n_levels}" for b in d.blocks)
        lines.append(f" Groups: {groups or 'none'}")
        if self.ml is not None:
            ll = self.ml.loglik
            lines.append(
                f"     AIC      BIC   logLik deviance\n {self.aic:8.1f} {self.bic:8.1f} {ll:8.1f} {-2 * ll:8.1f}"
                if np.isfinite(ll)
                else " (quasi-likelihood: no log-likelihood)"
            )
        lines.append("")
        if not d.blocks:
            lines.append("Random effects: none")
        else:
            lines.append(
                "Random effects:" if self.ml is not None else "Random effects (posterior means):"
            )
        vc = self.varcorr()
        if len(vc):
            lines.append(f" {'Groups':<12} {'Name':<20} {'Variance':>10} {'Std.Dev.':>10}")
        for _, r in vc[vc.term2.isna()].iterrows():
            name = "" if r.term1 is None or pd.isna(r.term1) else str(r.term1)
            lines.append(
                f" {r.group:<12} {name:<20} {_sig(r.variance, digits + 1):>10} "
                f"{_sig(r.sd_cor, digits):>10}"
            )
        cors = vc[vc.term2.notna()]
        for _, r in cors.iterrows():
            lines.append(f" {r.group:<12} cor({r.term1}, {r.term2}) = {r.sd_cor:.3f}")
        disp_means = {k: float(np.mean(v)) for k, v in self.draws_dispersion().items()}
        note = d.family.spec.dispersion_note(disp_means)  # the family's own line (gamma)
        if note:
            lines.append(note)
        elif d.family.has_dispersion and not d.family.is_linear:  # phi; sigma and nu; ...
            what = "estimates" if self.ml is not None else "posterior means"
            vals = ", ".join(f"{k} = {_sig(v, digits)}" for k, v in disp_means.items())
            lines.append(f"Dispersion parameters ({d.family.name}, {what}): {vals}")
        lines.append("")
        if self.ml is None:
            lines.extend(self._bayes_fixed_lines())
        else:
            lines.append("Fixed effects:")
            lines.append(_ml_table(self.summary()))
            for m in getattr(self.ml, "messages", ()):
                lines.append(m)
        if self.ml is None:
            for m in self.options.get("notes", ()):
                lines.append(f"Note: {m}")
        lines.append(f"({self.elapsed:.2f} s)")
        return "\n".join(lines)

    def _title(self) -> str:
        """lme4's first line: what kind of model, fitted how."""
        fam = self.design.family
        linear = fam.is_linear
        kind = "Linear mixed model" if linear else "Generalized linear mixed model"
        if not self.design.blocks:  # a GLM (bayesglmm.engines.glm)
            kind = "Linear model" if linear else "Generalized linear model"
            if self.method == "ml":
                how = (
                    "least squares (sigma by maximum likelihood)"
                    if linear
                    else "maximum likelihood (IRLS)"
                )
                return f"{kind} fit by {how}"
            if self.method == "laplace":
                return f"{kind} fit by Bayesian Laplace (Gaussian at the posterior mode)"
        if self.method == "ml":
            nagq = getattr(self.ml, "nagq", 1)
            if linear:
                how = "maximum likelihood"  # exact: no Laplace approximation in an LMM
            elif nagq > 1:
                how = f"maximum likelihood (Adaptive Gauss-Hermite Quadrature, nAGQ = {nagq})"
            else:
                how = "maximum likelihood (Laplace Approximation)"
            return f"{kind} fit by {how}"
        return f"{kind} fit by {method_label(self.method)}"

    def _bayes_fixed_lines(self) -> list[str]:
        """brms-style blocks: estimate, error, 95% interval; R-hat and ESS for MCMC."""
        d = self.design
        mcmc = self.method == "nuts"
        tab = self.summary() if mcmc else None
        ds = self._summary_dataset()
        w = max(20, *(len(str(v)) for v in ds.data_vars))

        def row(label: str, draws: np.ndarray, key: str) -> str:
            lo, hi = eti(draws)
            out = f" {label:<{w}} {np.mean(draws):9.4f} {np.std(draws, ddof=1):9.4f} {lo:9.4f} {hi:9.4f}"
            if mcmc and tab is not None and key in tab.index:
                out += (
                    f" {tab.loc[key, 'r_hat']:6.3f} {tab.loc[key, 'ess_bulk']:8.0f}"
                    f" {tab.loc[key, 'ess_tail']:8.0f}"
                )
            return out

        pct = f"{100 * CI_PROB:g}%"
        head = f" {'':<{w}} {'Estimate':>9} {'Est.Error':>9} {'l-' + pct + ' CI':>9} {'u-' + pct + ' CI':>9}"
        if mcmc:
            head += f" {'Rhat':>6} {'Bulk_ESS':>8} {'Tail_ESS':>8}"
        lines = [f"Fixed effects (posterior mean, sd, {describe()}):", head]
        for name in d.x_names:
            lines.append(row(name, _stack(ds[name]), name))
        others = [str(v) for v in ds.data_vars if str(v) not in d.x_names]
        if others:
            lines.append("")
            lines.append("Group-level SDs and correlations, residual SD (posterior):")
            lines.append(head)
            for v in others:
                lines.append(row(v, _stack(ds[v]), v))
        if mcmc and self.health:
            h = self.health
            lines.append("")
            lines.append(
                f"Sampler: {h['n_draws']} draws, {h['divergences']} divergences, max R-hat "
                f"{h['max_rhat']:.3f}, min bulk ESS {h['min_ess_bulk']:.0f}"
            )
        return lines

    # ------------------------------------------------------------------ interpretation verbs
    # thin delegates to bayesglmm.interpret (marginaleffects-style verbs, R², lme4 accessors)
    def predictions(self, newdata: pd.DataFrame | None = None, **kwargs: Any) -> pd.DataFrame:
        """Predictions with intervals, one row per row; see
        :func:`bayesglmm.interpret.effects.predictions`."""
        from bayesglmm.interpret.effects import predictions

        return predictions(self, newdata, **kwargs)

    def avg_predictions(self, newdata: pd.DataFrame | None = None, **kwargs: Any) -> pd.DataFrame:
        """Average predictions; see :func:`bayesglmm.interpret.effects.avg_predictions`."""
        from bayesglmm.interpret.effects import avg_predictions

        return avg_predictions(self, newdata, **kwargs)

    def comparisons(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Unit-level contrasts; see :func:`bayesglmm.interpret.effects.comparisons`."""
        from bayesglmm.interpret.effects import comparisons

        return comparisons(self, variables, **kwargs)

    def avg_comparisons(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Average contrasts (``re="marginal"``: population-averaged); see
        :func:`bayesglmm.interpret.effects.avg_comparisons`."""
        from bayesglmm.interpret.effects import avg_comparisons

        return avg_comparisons(self, variables, **kwargs)

    def slopes(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Unit-level slopes; see :func:`bayesglmm.interpret.effects.slopes`."""
        from bayesglmm.interpret.effects import slopes

        return slopes(self, variables, **kwargs)

    def avg_slopes(self, variables: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Average slopes; see :func:`bayesglmm.interpret.effects.avg_slopes`."""
        from bayesglmm.interpret.effects import avg_slopes

        return avg_slopes(self, variables, **kwargs)

    def datagrid(self, **values: Any) -> pd.DataFrame:
        """A grid of predictor values; see :func:`bayesglmm.interpret.effects.datagrid`."""
        from bayesglmm.interpret.effects import datagrid

        return datagrid(self, **values)

    def plot_predictions(self, condition: str, **kwargs: Any) -> Any:
        """Conditional-effects plot; see :func:`bayesglmm.interpret.effect_plots.plot_predictions`."""
        from bayesglmm.interpret.effect_plots import plot_predictions

        return plot_predictions(self, condition, **kwargs)

    def r2(self, method: str = "lognormal", conf_level: float = CI_PROB) -> pd.DataFrame:
        """Nakagawa's marginal and conditional R² (and the Bayesian R² for fits with draws);
        see :func:`bayesglmm.interpret.r2.r2_table`."""
        from bayesglmm.interpret.r2 import r2_table

        return r2_table(self, method=method, conf_level=conf_level)  # type: ignore[arg-type]

    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed + random effects per level of each grouping factor (lme4's ``coef``)."""
        from bayesglmm.interpret.coefficients import coef

        return coef(self)

    def confint(
        self, parm: list[str] | None = None, *, level: float = CI_PROB, method: str | None = None
    ) -> pd.DataFrame:
        """Wald or profile intervals (ML), equal-tailed posterior intervals (Bayesian); see
        :func:`bayesglmm.interpret.confidence_intervals.confint`."""
        from bayesglmm.interpret.confidence_intervals import confint

        return confint(self, parm, level=level, method=method)  # type: ignore[arg-type]

    def anova(self, *others: GLMMFit, names: list[str] | None = None) -> pd.DataFrame:
        """Likelihood-ratio tests (ML) or LOO differences (Bayesian) against other fits; see
        :func:`bayesglmm.interpret.anova_table.anova`."""
        from bayesglmm.interpret.anova_table import anova

        return anova(self, *others, names=names)


def _sig(v: float, digits: int) -> str:
    """``v`` to ``digits`` significant digits, keeping trailing zeros (16.003 -> '16.003')."""
    if v is None or not np.isfinite(v):
        return "NA"
    return f"{v:#.{digits}g}".rstrip(".") if abs(v) >= 1e-4 or v == 0 else f"{v:.{digits - 1}e}"


def _pval(p: float) -> str:
    """R's ``format.pval``: values below 2e-16 print as ``<2e-16``."""
    return "<2e-16" if p < 2e-16 else f"{p:.3g}"


def _ml_table(tab: pd.DataFrame) -> str:
    """glmer's coefficient table: estimates and SEs to 4 significant digits, R-style p-values."""
    out = tab.copy().astype(object)
    for c in tab.columns:
        if c.startswith("Pr("):
            out[c] = [_pval(float(p)) for p in tab[c]]
        else:
            out[c] = [_sig(float(v), 4) for v in tab[c]]
    return out.to_string()


def attach_log_likelihood(fit: GLMMFit) -> None:
    """Store the pointwise log-likelihood in ``fit.idata["log_likelihood"]`` (variable ``y``)."""
    post = posterior_dataset(fit.idata)
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    ll = fit.log_likelihood().reshape(nc, nd, -1)
    fit.idata["log_likelihood"] = xr.Dataset(
        {"y": (("chain", "draw", "obs"), ll)},
        coords={"chain": post["chain"].values, "draw": post["draw"].values},
    )
