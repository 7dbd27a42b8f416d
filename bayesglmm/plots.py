"""Matplotlib figures: method comparison forest, PPCs, caterpillar, residuals, and the
marginal-vs-conditional picture.  Every function returns a :class:`matplotlib.figure.Figure`
with labelled axes."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use(matplotlib.get_backend())  # respect MPLBACKEND (Agg in tests)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

from bayesglmm.compare import param_draws  # noqa: E402
from bayesglmm.icc import hdi  # noqa: E402

_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _interval(draws: np.ndarray, prob: float = 0.94) -> tuple[float, float, float]:
    if draws.size == 1:
        v = float(draws.ravel()[0])
        return v, v, v
    lo, hi = hdi(draws, prob)
    return float(np.mean(draws)), lo, hi


def _forest_draws(fit) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Fixed effects and group SDs; an ML fit's fixed effects as (estimate, Wald 95% bounds)."""
    out = param_draws(fit, extras=False)
    if not fit.is_bayesian:
        est = fit.draws_fixed()[0]
        se = np.sqrt(np.diag(np.asarray(fit.ml.vcov_beta)))
        for j, name in enumerate(fit.design.x_names):
            out[name] = np.array([est[j], est[j] - 1.96 * se[j], est[j] + 1.96 * se[j]])
    return out


def plot_compare(fits: Sequence, prob: float = 0.94, figsize: tuple[float, float] | None = None):  # noqa: ANN001, ANN201
    """Forest plot overlaying the methods: fixed effects and group SDs.

    Bayesian fits show the posterior mean and a ``prob`` HDI; ML fits the estimate with a
    Wald 95% interval for fixed effects (point only for SDs).
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
    ax.set_title("Comparison of approximations")
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


def plot_ranef(fit, block: int = 0, term: int = 0, prob: float = 0.94, max_levels: int = 400):  # noqa: ANN001, ANN201
    """Caterpillar plot of one block's random effects, sorted, with intervals.

    Bayesian fits: posterior mean and HDI; ML fits: conditional mode +- 1.96 conditional SD
    (what sjPlot's ``plot_model(type="re")`` shows).
    """
    b = fit.design.blocks[block]
    r = fit.draws_ranef(block)[:, :, term]  # (S, L)
    if fit.is_bayesian:
        m = r.mean(axis=0)
        iv = np.array([hdi(r[:, j], prob) for j in range(r.shape[1])])
        lo, hi = iv[:, 0], iv[:, 1]
    else:
        m = r[0]
        sd = np.sqrt(np.asarray(fit.ml.cond_var[block])[:, term, term])
        lo, hi = m - 1.96 * sd, m + 1.96 * sd
    order = np.argsort(m)[-max_levels:] if m.size > max_levels else np.argsort(m)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    x = np.arange(order.size)
    ax.vlines(x, lo[order], hi[order], color="0.6", lw=0.8)
    ax.plot(x, m[order], "o", ms=2.5, color=_COLORS[0])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel(f"{b.group} levels (sorted)")
    ax.set_ylabel(f"random effect: {b.terms[term]}")
    ax.set_title(f"Caterpillar plot ({fit.label})")
    fig.tight_layout()
    return fig


def plot_ppc(fit, n_draws: int = 200, random_seed: int | None = 0):  # noqa: ANN001, ANN201
    """Posterior (or parametric, for ML fits) predictive check.

    Counts: a hanging rootogram (sqrt of observed vs expected frequencies).  Binary and
    binomial data: observed vs replicated proportions per level of the first grouping factor.
    """
    from bayesglmm.ppc import replicate

    d = fit.design
    yrep = replicate(fit, n_draws=n_draws, random_seed=random_seed)  # (R, n)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if d.family.name == "poisson":
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
        n = d.trials if d.trials is not None else np.ones(d.n)
        tot = np.bincount(blk.index, weights=n, minlength=blk.n_levels)
        obs = np.bincount(blk.index, weights=d.y, minlength=blk.n_levels) / tot
        rep = (
            np.stack([np.bincount(blk.index, weights=r, minlength=blk.n_levels) for r in yrep])
            / tot
        )
        lo, hi = np.percentile(rep, [5.5, 94.5], axis=0)
        ax.vlines(obs, lo, hi, color="0.7", lw=0.8)
        ax.plot(obs, rep.mean(axis=0), "o", ms=3, color=_COLORS[0])
        ax.plot([0, 1], [0, 1], color="k", lw=0.8)
        ax.set_xlabel(f"observed proportion per {blk.group}")
        ax.set_ylabel("replicated proportion (mean, 89% interval)")
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


def plot_residuals(fit, type: str = "deviance"):  # noqa: A002, ANN001, ANN201
    """Residuals against fitted values (conditional, response scale)."""
    from bayesglmm.ppc import residuals

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
