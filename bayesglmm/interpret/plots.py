"""Matplotlib figures: method comparison forest, PPCs, caterpillar, residuals, and the
marginal-vs-conditional picture.  Every function returns a :class:`matplotlib.figure.Figure`
with labelled axes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import matplotlib

matplotlib.use(matplotlib.get_backend())  # respect MPLBACKEND (Agg in tests)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

from bayesglmm.errors import DesignError  # noqa: E402
from bayesglmm.interpret.compare import param_draws  # noqa: E402
from bayesglmm.intervals import CI_PROB, describe, eti  # noqa: E402

if TYPE_CHECKING:
    from bayesglmm.fit.results import GLMMFit

_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _interval(draws: np.ndarray, prob: float = CI_PROB) -> tuple[float, float, float]:
    if draws.size == 1:
        v = float(draws.ravel()[0])
        return v, v, v
    lo, hi = eti(draws, prob)
    return float(np.mean(draws)), float(lo), float(hi)


def _forest_draws(fit: GLMMFit) -> dict[str, np.ndarray]:
    """Fixed effects and group SDs; an ML fit's fixed effects as (estimate, Wald 95% bounds)."""
    out = param_draws(fit, extras=False)
    if not fit.is_bayesian:
        est = fit.draws_fixed()[0]
        se = np.sqrt(np.diag(np.asarray(fit.ml.vcov_beta)))
        for j, name in enumerate(fit.design.x_names):
            z = float(special.ndtri(0.5 + CI_PROB / 2.0))
            out[name] = np.array([est[j], est[j] - z * se[j], est[j] + z * se[j]])
    return out


def plot_compare(
    fits: Sequence[GLMMFit], prob: float = CI_PROB, figsize: tuple[float, float] | None = None
):  # noqa: ANN001, ANN201
    """Forest plot overlaying the methods: fixed effects and group SDs.

    Bayesian fits show the posterior mean and the equal-tailed ``prob`` interval (95% by
    default); ML fits the estimate with a Wald 95% interval for fixed effects (point only
    for SDs).
    """
    per = [_forest_draws(f) for f in fits]
    names = list(dict.fromkeys(k for p in per for k in p))
    n = len(names)
    fig, ax = plt.subplots(figsize=figsize or (7.5, 0.45 * n * max(1, len(fits)) / 2 + 1.5))
    offsets = np.linspace(-0.3, 0.3, len(fits)) if len(fits) > 1 else np.zeros(1)
    for k, (fit, p) in enumerate(zip(fits, per, strict=True)):
        color = _COLORS[k % len(_COLORS)]
        for r, name in enumerate(names):
            if name not in p:
                continue
            v = p[name]
            if not fit.is_bayesian and v.size == 3:
                m, lo, hi = v
            else:
                m, lo, hi = _interval(v, prob)
            y = n - 1 - r + offsets[k]
            ax.plot([lo, hi], [y, y], color=color, lw=1.5)
            ax.plot([m], [y], "o", color=color, ms=4, label=fit.label if r == 0 else None)
    ax.set_yticks(range(n))
    ax.set_yticklabels(names[::-1])
    ax.axvline(0, color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("estimate (link scale; SDs on the SD scale)")
    ax.set_ylabel("parameter")
    ax.set_title(f"Comparison of approximations (mean or estimate, {describe(prob)})")
    handles, labels = ax.get_legend_handles_labels()
    if not handles:  # parameter missing in the first row: build the legend by hand
        handles = [
            plt.Line2D([], [], marker="o", color=_COLORS[k % len(_COLORS)])
            for k in range(len(fits))
        ]
        labels = [f.label for f in fits]
    ax.legend(handles, labels, loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def _ranef_intervals(fit: GLMMFit, block: int, term: int, prob: float) -> tuple[np.ndarray, ...]:
    """Per level: centre, lower, upper.  Bayesian: mean and equal-tailed ``prob`` interval of
    the draws; ML: conditional mode +- z * conditional SD."""
    r = fit.draws_ranef(block)[:, :, term]  # (S, L)
    if fit.is_bayesian:
        lo, hi = eti(r, prob)
        return r.mean(axis=0), lo, hi
    z = special.ndtri(0.5 + prob / 2.0)
    m = r[0]
    sd = np.sqrt(np.asarray(fit.ml.cond_var[block])[:, term, term])
    return m, m - z * sd, m + z * sd


def plot_ranef(  # noqa: ANN201
    fit: GLMMFit,
    block: int | str | None = None,
    term: int | str | None = None,
    prob: float = CI_PROB,
    max_labels: int = 60,
):
    """Caterpillar plots of the random effects: every grouping factor and term by default.

    One panel per (grouping factor, term), levels sorted by their effect, each with its name
    on the axis (lme4's ``dotplot(ranef(fit, condVar = TRUE))``).  With more than
    ``max_labels`` levels only the ``max_labels // 2`` lowest and highest are named, and the
    intervals are drawn thin so the panel does not turn into a band.

    Parameters
    ----------
    fit : GLMMFit
    block : int or str, optional
        One grouping factor (index or its label, e.g. ``"Beach"``); default all.
    term : int or str, optional
        One term of the factor (index or name, e.g. ``"(Intercept)"``); default all.
    prob : float
        Interval mass: Bayesian fits show the posterior mean and the equal-tailed ``prob``
        interval; ML fits the conditional mode +- z * conditional SD (what sjPlot's
        ``plot_model(type="re")`` shows).  95% by default, as everywhere in bayesglmm.
    max_labels : int
        Most level names written on one panel.
    """
    d = fit.design
    if not d.blocks:
        raise DesignError("the model has no random-effect terms (it is a GLM): nothing to plot")
    labels = list(fit.labels)
    if block is None:
        blocks = list(range(len(d.blocks)))
    elif isinstance(block, str):
        if block not in labels and block not in [b.group for b in d.blocks]:
            from bayesglmm.errors import BayesGLMMError

            raise BayesGLMMError(f"plot_ranef: no grouping factor {block!r}; the fit has {labels}")
        blocks = [i for i, b in enumerate(d.blocks) if block in (labels[i], b.group)]
    else:
        blocks = [int(block)]
    panels = []
    for i in blocks:
        terms = list(d.blocks[i].terms)
        ts: list[int]
        if term is None:
            ts = list(range(len(terms)))
        elif isinstance(term, str):
            ts = [terms.index(term)] if term in terms else []
        else:
            ts = [int(term)]
        panels += [(i, t) for t in ts]
    if not panels:
        from bayesglmm.errors import BayesGLMMError

        raise BayesGLMMError(f"plot_ranef: no term {term!r} in the chosen grouping factors")
    heights = [min(max(2.2, 0.16 * min(d.blocks[i].n_levels, 60)), 9.0) for i, _ in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(6.5, sum(heights) + 0.6 * len(panels)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    kind = (
        f"posterior mean, {prob:.0%} equal-tailed interval"
        if fit.is_bayesian
        else f"conditional mode, {prob:.0%} interval (+- z conditional SD)"
    )
    for ax, h_in, (i, t) in zip(axes[:, 0], heights, panels, strict=True):
        b = d.blocks[i]
        m, lo, hi = _ranef_intervals(fit, i, t, prob)
        order = np.argsort(m, kind="stable")
        names = np.asarray([str(v) for v in b.levels])[order]
        y = np.arange(order.size)
        many = order.size > max_labels
        ax.hlines(y, lo[order], hi[order], color="0.55", lw=0.4 if many else 1.0)
        ax.plot(m[order], y, "o", ms=1.5 if many else 3.5, color=_COLORS[0])
        ax.axvline(0, color="k", lw=0.8)
        ax.set_ylim(-1, order.size)
        n_named = _name_levels(ax, names, h_in, max_labels)
        ax.set_ylabel(
            f"{b.group} ({b.n_levels} levels"
            + (f"; lowest and highest {n_named} named)" if n_named < order.size // 2 else ")")
        )
        ax.set_xlabel(f"random effect: {b.terms[t]}")
    axes[0, 0].set_title(f"Random effects ({fit.label}): {kind}", fontsize="medium")
    fig.tight_layout()
    return fig


def _name_levels(ax, names: np.ndarray, height_in: float, max_labels: int) -> int:  # noqa: ANN001
    """Write the sorted levels' names on a caterpillar panel; returns how many per end.

    Few levels: every name as a tick label.  Many: the ``max_labels // 2`` lowest and highest
    (fewer if the panel cannot hold them apart).  When adjacent levels are closer than a
    line of text, the names are fanned out at one line's spacing on the right of the panel,
    each joined to its row by a thin line (consecutive tick labels there overlapped into a black smear at 294
    levels).
    """
    n = names.size
    line_pt = 8.5  # an x-small label and its gap
    per_level_pt = height_in * 72.0 * 0.85 / (n + 1)  # ~85% of the figure height is the axes
    if n <= max_labels and per_level_pt >= line_pt:
        ax.set_yticks(np.arange(n))
        ax.set_yticklabels(names, fontsize="small" if per_level_pt >= 10 else "x-small")
        return n
    fits_per_end = int(0.45 * height_in * 72.0 * 0.85 / line_pt)
    k = max(1, min(max_labels // 2, n // 2, fits_per_end))
    low = np.arange(k)
    high = np.arange(n - k, n)
    if per_level_pt >= line_pt:  # rows are far enough apart: plain tick labels
        shown = np.r_[low, high]
        ax.set_yticks(shown)
        ax.set_yticklabels(names[shown], fontsize="x-small")
        return k
    ax.set_yticks([])
    step = line_pt / per_level_pt  # one text line, in rows
    trans = ax.get_yaxis_transform()  # x in axes fraction, y in data
    for j, (rows, sign, start) in enumerate(((low, 1.0, 0.0), (high, -1.0, n - 1.0))):
        for r, row in enumerate(rows if j == 0 else rows[::-1]):
            y_text = start + sign * r * step
            ax.plot([1.0, 1.03], [row, y_text], transform=trans, color="0.4", lw=0.4,
                    clip_on=False)  # fmt: skip
            ax.text(1.035, y_text, names[row], transform=trans, ha="left", va="center",
                    fontsize="x-small", gid="level-name")  # fmt: skip
    return k


def plot_ppc(fit: GLMMFit, n_draws: int = 200, random_seed: int | None = 0):  # noqa: ANN201
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
        ax.plot(bins, np.sqrt(exp_), "o-", color=_COLORS[1], ms=3, label="expected")
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
        ax.plot(p_obs, p_rep.mean(axis=0), "o", ms=3, color=_COLORS[0])
        ax.plot([0, 1], [0, 1], color="k", lw=0.8)
        ax.set_xlabel(f"observed proportion per {blk.group}")
        ax.set_ylabel(f"replicated proportion (mean, {describe()})")
        ax.set_title(f"Per-group PPC ({fit.label})")
    else:
        ax.hist(d.y, bins=30, density=True, alpha=0.5, label="observed", color="0.5")
        for r in yrep[:20]:
            ax.hist(r, bins=30, density=True, histtype="step", alpha=0.3, color=_COLORS[0])
        ax.set_xlabel(d.response_name)
        ax.set_ylabel("density")
        ax.set_title(f"PPC ({fit.label})")
    ax.legend(loc="best", fontsize="small") if ax.get_legend_handles_labels()[0] else None
    fig.tight_layout()
    return fig


def plot_residuals(
    fit: GLMMFit,
    type: Literal["deviance", "pearson", "response"] = "deviance",  # noqa: A002
):  # noqa: ANN201
    """Residuals against fitted values (conditional, response scale)."""
    from bayesglmm.interpret.ppc import residuals

    fitted = fit.fitted()
    res = residuals(fit, type=type)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(fitted, res, "o", ms=2.5, alpha=0.5, color=_COLORS[0])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("fitted value (conditional mean)")
    ax.set_ylabel(f"{type} residual")
    ax.set_title(f"Residuals vs fitted ({fit.label})")
    fig.tight_layout()
    return fig


def simulate_marginal_vs_conditional(
    beta0: float = 3.0,
    beta1: float = 1.0,
    ri_sd: float = 2.0,
    rs_sd: float = 0.0,
    n_clusters: int = 30,
    random_seed: int = 1,
    x: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The course's logistic simulation: cluster curves, the b = 0 curve and the population
    average (exact, by Gauss-Hermite over the random intercept and slope)."""
    rng = np.random.default_rng(random_seed)
    x = np.linspace(-8, 4, 121) if x is None else np.asarray(x, dtype=float)
    b0 = rng.normal(0, ri_sd, n_clusters)
    b1 = rng.normal(0, rs_sd, n_clusters) if rs_sd > 0 else np.zeros(n_clusters)
    clusters = special.expit(beta0 + b0[:, None] + (beta1 + b1[:, None]) * x[None, :])
    typical = special.expit(beta0 + beta1 * x)
    node, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    sd = np.sqrt(ri_sd**2 + (rs_sd * x) ** 2)  # independent intercept and slope
    marginal = special.expit(beta0 + beta1 * x[:, None] + sd[:, None] * node[None, :]) @ w
    return {"x": x, "clusters": clusters, "typical": typical, "marginal": marginal}


def plot_marginal_vs_conditional(
    beta0: float = 3.0,
    beta1: float = 1.0,
    ri_sd: float = 2.0,
    rs_sd: float = 1.0,
    n_clusters: int = 30,
    random_seed: int = 1,
):  # noqa: ANN201
    """Two panels: random intercept (SD ``ri_sd``), then random intercept and slope
    (``rs_sd``): 30 cluster curves, the "not the mean" curve at b = 0, and the population
    average.  Seeded, so a notebook reproduces it."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, slope_sd, title in zip(
        axes, (0.0, rs_sd), ("random intercept", "random intercept and slope"), strict=True
    ):
        sim = simulate_marginal_vs_conditional(
            beta0, beta1, ri_sd, slope_sd, n_clusters, random_seed
        )
        for c in sim["clusters"]:
            ax.plot(sim["x"], c, color="0.75", lw=0.7)
        ax.plot(sim["x"], sim["typical"], color=_COLORS[3], lw=2, label="b = 0 (not the mean)")
        ax.plot(
            sim["x"], sim["marginal"], color=_COLORS[0], lw=2, ls="--", label="population average"
        )
        ax.set_xlabel("x")
        ax.set_title(title)
    axes[0].set_ylabel("P(y = 1)")
    axes[0].legend(loc="lower right", fontsize="small")
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
        ax.axvline(o, color=_COLORS[1], lw=2, label="observed")
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
