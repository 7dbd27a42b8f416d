"""Model-checking figures: the posterior (or parametric) predictive check (:func:`plot_ppc`),
residuals against fitted values (:func:`plot_residuals`) and the prior predictive check
(:func:`plot_prior_predictive`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import matplotlib.pyplot as plt
import numpy as np

from bayesglmm.interpret.figure_style import COLORS
from bayesglmm.intervals import CI_PROB, describe, eti

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike

__all__ = ["plot_ppc", "plot_prior_predictive", "plot_residuals"]


def plot_ppc(fit: FitLike, n_draws: int = 200, random_seed: int | None = 0):  # noqa: ANN201
    """Posterior (or parametric, for ML fits) predictive check.

    Counts: a hanging rootogram (sqrt of observed vs expected frequencies).  Binary and
    binomial data: observed vs replicated proportions per level of the first grouping factor.
    """
    from bayesglmm.interpret.ppc import replicate

    d = fit.design
    yrep = replicate(fit, n_draws=n_draws, random_seed=random_seed)  # (R, n)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if d.family.spec.response_kind == "counts":
        top = int(np.percentile(d.y, 99)) + 2
        bins = np.arange(top + 1)
        obs = np.bincount(np.minimum(d.y.astype(int), top), minlength=top + 1)
        rep = np.stack(
            [np.bincount(np.minimum(r.astype(int), top), minlength=top + 1) for r in yrep]
        )
        exp_ = rep.mean(axis=0)
        ax.bar(
            bins,
            np.sqrt(obs),
            bottom=np.sqrt(exp_) - np.sqrt(obs),
            width=0.8,
            color="0.75",
            label="observed (hanging)",
        )
        ax.plot(bins, np.sqrt(exp_), "o-", color=COLORS[1], ms=3, label="expected")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel(f"{d.response_name} (count; last bin = {top}+)")
        ax.set_ylabel("sqrt(frequency)")
        ax.set_title(f"Hanging rootogram ({fit.label})")
    elif d.family.is_binomial and d.blocks:
        blk = d.blocks[0]
        n = np.asarray(d.trials, dtype=float) if d.trials is not None else np.ones(d.n)
        tot = np.bincount(blk.index, weights=n, minlength=blk.n_levels)
        p_obs = np.bincount(blk.index, weights=d.y, minlength=blk.n_levels) / tot
        p_rep = (
            np.stack([np.bincount(blk.index, weights=r, minlength=blk.n_levels) for r in yrep])
            / tot
        )
        lo, hi = eti(p_rep, CI_PROB)
        ax.vlines(p_obs, lo, hi, color="0.7", lw=0.8)
        ax.plot(p_obs, p_rep.mean(axis=0), "o", ms=3, color=COLORS[0])
        ax.plot([0, 1], [0, 1], color="k", lw=0.8)
        ax.set_xlabel(f"observed proportion per {blk.group}")
        ax.set_ylabel(f"replicated proportion (mean, {describe()})")
        ax.set_title(f"Per-group PPC ({fit.label})")
    else:
        ax.hist(d.y, bins=30, density=True, alpha=0.5, label="observed", color="0.5")
        for r in yrep[:20]:
            ax.hist(r, bins=30, density=True, histtype="step", alpha=0.3, color=COLORS[0])
        ax.set_xlabel(d.response_name)
        ax.set_ylabel("density")
        ax.set_title(f"PPC ({fit.label})")
    ax.legend(loc="best", fontsize="small") if ax.get_legend_handles_labels()[0] else None
    fig.tight_layout()
    return fig


def plot_residuals(
    fit: FitLike,
    type: Literal["deviance", "pearson", "response"] = "deviance",  # noqa: A002
):  # noqa: ANN201
    """Residuals against fitted values (conditional, response scale)."""
    from bayesglmm.interpret.ppc import residuals

    fitted = fit.fitted()
    res = residuals(fit, type=type)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(fitted, res, "o", ms=2.5, alpha=0.5, color=COLORS[0])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("fitted value (conditional mean)")
    ax.set_ylabel(f"{type} residual")
    ax.set_title(f"Residuals vs fitted ({fit.label})")
    fig.tight_layout()
    return fig


def _prior_stats(d, y: np.ndarray) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Summary statistics of responses ``y`` (R, n) that a prior predictive check compares."""
    y = np.asarray(y, dtype=float)
    if d.family.is_binomial:
        n = d.trials if d.trials is not None else np.ones(d.n)
        out = {"proportion of successes": y.sum(axis=1) / n.sum()}
        if d.blocks:
            b = d.blocks[0]
            tot = np.bincount(b.index, weights=n, minlength=b.n_levels)
            per = np.stack([np.bincount(b.index, weights=r, minlength=b.n_levels) for r in y])
            out[f"SD of the proportions per {b.group}"] = (per / np.maximum(tot, 1)).std(axis=1)
        return out
    out = {"mean": y.mean(axis=1), "SD": y.std(axis=1)}
    if d.family.spec.response_kind == "counts":
        out["share of zeros"] = (y == 0).mean(axis=1)
        out["maximum"] = y.max(axis=1)
    else:
        out["minimum"] = y.min(axis=1)
        out["maximum"] = y.max(axis=1)
    return out


def plot_prior_predictive(model, draws: int = 500, random_seed: int | None = 0):  # noqa: ANN001, ANN201
    """Prior predictive check: what the priors say the data could look like.

    Simulates ``draws`` data sets from the priors (:meth:`GLMM.sample_prior_predictive`)
    and shows, per summary statistic (counts: mean, SD, share of zeros, maximum; binary and
    binomial: the proportion of successes and its SD across the first grouping factor;
    gaussian: mean, SD, minimum, maximum), the distribution over the simulated data sets
    with the observed value marked, and where the observed value falls (the share of
    simulated statistics below it).  Priors that put the observed data in a far tail, or
    that spread over absurd values, show up at once.  ``model.prior_summary()`` lists the
    priors themselves.
    """
    d = model.design
    pp = model.sample_prior_predictive(draws=draws, random_seed=random_seed)
    y = np.asarray(pp["prior_predictive"]["y"].values, dtype=float)
    y = y.reshape(-1, y.shape[-1])
    if d.family.spec.response_kind == "counts":
        # a rate beyond ~9e18 overflows the int64 count draw to a negative number
        y = np.where(y < 0, np.inf, y)
    sims = _prior_stats(d, y)
    obs = {k: float(v[0]) for k, v in _prior_stats(d, d.y[None, :]).items()}
    fig, axes = plt.subplots(1, len(sims), figsize=(3.2 * len(sims), 3.2), squeeze=False)
    for ax, (name, v) in zip(axes[0], sims.items(), strict=True):
        v = np.where(np.isnan(v), np.inf, v)  # overflowed counts lie beyond every finite value
        o = obs[name]
        fin = v[np.isfinite(v)]
        heavy = (
            fin.size and fin.min() >= 0 and np.percentile(fin, 99) > 100 * max(np.median(fin), 1e-9)
        )
        if heavy:  # counts from wide priors reach 1e6+: a log axis keeps the observed in view
            v, o, fin = np.log10(v + 1.0), np.log10(o + 1.0), np.log10(fin + 1.0)
            ax.set_xlabel(f"log10({name} + 1)")
        else:
            ax.set_xlabel(name)
        hi = max(float(np.quantile(fin, 0.98)) if fin.size else o, o)
        beyond = float(np.mean(v > hi))
        ax.hist(np.minimum(v, hi), bins=40, color="0.7")
        ax.axvline(o, color=COLORS[1], lw=2, label="observed")
        ax.set_title(
            f"observed at {np.mean(v < o):.0%} of the prior"
            + (f"\n{beyond:.0%} in the last bin and beyond" if beyond else ""),
            fontsize="small",
        )
        ax.set_ylabel("simulated data sets")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(f"Prior predictive check ({draws} data sets from the priors)")
    fig.tight_layout()
    return fig
