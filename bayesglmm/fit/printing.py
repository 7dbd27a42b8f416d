"""The printed fit, ``print(fit)``: lme4's layout for ML and PQL fits, brms's for Bayesian ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayesglmm.engines.registry import engines
from bayesglmm.fit.posterior import stack_draws
from bayesglmm.fit.summary import parameter_draws, summary_table
from bayesglmm.intervals import CI_PROB, describe, eti

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike


def _engine_label(method: str) -> str:
    """How a printed fit names its method (the engine's label)."""
    engine = engines().get(method)
    return method if engine is None else engine.label or method


def format_fit(fit: FitLike, digits: int = 4) -> str:
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
    d = fit.design
    lines = [_title(fit)]
    disp = ", ".join(  # dispersions other than the residual SD, lme4's Negative Binomial(2.3)
        f"{p.label or p.name} = {_sig(float(np.mean(v)), digits)}"
        for p, v in zip(d.family.dispersion, fit.draws_dispersion().values(), strict=True)
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
    if fit.ml is not None:
        ll = fit.ml.loglik
        lines.append(
            f"     AIC      BIC   logLik deviance\n {fit.aic:8.1f} {fit.bic:8.1f} {ll:8.1f} {-2 * ll:8.1f}"
            if np.isfinite(ll)
            else " (quasi-likelihood: no log-likelihood)"
        )
    lines.append("")
    if not d.blocks:
        lines.append("Random effects: none")
    else:
        lines.append(
            "Random effects:" if fit.ml is not None else "Random effects (posterior means):"
        )
    vc = fit.varcorr()
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
    disp_means = {k: float(np.mean(v)) for k, v in fit.draws_dispersion().items()}
    note = d.family.spec.dispersion_note(disp_means)  # the family's own line (gamma)
    if note:
        lines.append(note)
    elif d.family.has_dispersion and not d.family.is_linear:  # phi; sigma and nu; ...
        what = "estimates" if fit.ml is not None else "posterior means"
        vals = ", ".join(f"{k} = {_sig(v, digits)}" for k, v in disp_means.items())
        lines.append(f"Dispersion parameters ({d.family.name}, {what}): {vals}")
    lines.append("")
    if fit.ml is None:
        lines.extend(_bayes_fixed_lines(fit))
    else:
        lines.append("Fixed effects:")
        lines.append(_ml_table(summary_table(fit)))
        for m in getattr(fit.ml, "messages", ()):
            lines.append(m)
    if fit.ml is None:
        for m in fit.options.get("notes", ()):
            lines.append(f"Note: {m}")
    lines.append(f"({fit.elapsed:.2f} s)")
    return "\n".join(lines)


def _title(fit: FitLike) -> str:
    """lme4's first line: what kind of model, fitted how."""
    fam = fit.design.family
    linear = fam.is_linear
    kind = "Linear mixed model" if linear else "Generalized linear mixed model"
    if not fit.design.blocks:  # a GLM (bayesglmm.engines.glm)
        kind = "Linear model" if linear else "Generalized linear model"
        if fit.method == "ml":
            how = (
                "least squares (sigma by maximum likelihood)"
                if linear
                else "maximum likelihood (IRLS)"
            )
            return f"{kind} fit by {how}"
        if fit.method == "laplace":
            return f"{kind} fit by Bayesian Laplace (Gaussian at the posterior mode)"
    if fit.method == "ml":
        nagq = getattr(fit.ml, "nagq", 1)
        if linear:
            how = "maximum likelihood"  # exact: no Laplace approximation in an LMM
        elif nagq > 1:
            how = f"maximum likelihood (Adaptive Gauss-Hermite Quadrature, nAGQ = {nagq})"
        else:
            how = "maximum likelihood (Laplace Approximation)"
        return f"{kind} fit by {how}"
    return f"{kind} fit by {_engine_label(fit.method)}"


def _bayes_fixed_lines(fit: FitLike) -> list[str]:
    """brms-style blocks: estimate, error, 95% interval; R-hat and ESS for MCMC."""
    d = fit.design
    mcmc = fit.method == "nuts"
    tab = summary_table(fit) if mcmc else None
    ds = parameter_draws(fit)
    w = max(20, *(len(str(v)) for v in ds.data_vars))

    def row(label: str, draws: np.ndarray, key: str) -> str:
        lo, hi = eti(draws)
        out = (
            f" {label:<{w}} {np.mean(draws):9.4f} {np.std(draws, ddof=1):9.4f} {lo:9.4f} {hi:9.4f}"
        )
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
        lines.append(row(name, stack_draws(ds[name]), name))
    others = [str(v) for v in ds.data_vars if str(v) not in d.x_names]
    if others:
        lines.append("")
        lines.append("Group-level SDs and correlations, residual SD (posterior):")
        lines.append(head)
        for v in others:
            lines.append(row(v, stack_draws(ds[v]), v))
    if mcmc and fit.health:
        h = fit.health
        lines.append("")
        lines.append(
            f"Sampler: {h['n_draws']} draws, {h['divergences']} divergences, max R-hat "
            f"{h['max_rhat']:.3f}, min bulk ESS {h['min_ess_bulk']:.0f}"
        )
    return lines


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
