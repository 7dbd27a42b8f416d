"""The method-comparison forest plot (:func:`plot_compare`): fixed effects and group SDs of
several fits, one colour per method."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from scipy import special

from bayesglmm.interpret.compare import param_draws
from bayesglmm.interpret.figure_style import COLORS
from bayesglmm.intervals import CI_PROB, describe, eti

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike

__all__ = ["plot_compare"]


def _interval(draws: np.ndarray, prob: float = CI_PROB) -> tuple[float, float, float]:
    if draws.size == 1:
        v = float(draws.ravel()[0])
        return v, v, v
    lo, hi = eti(draws, prob)
    return float(np.mean(draws)), float(lo), float(hi)


def _forest_draws(fit: FitLike) -> dict[str, np.ndarray]:
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
    fits: Sequence[FitLike], prob: float = CI_PROB, figsize: tuple[float, float] | None = None
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
        color = COLORS[k % len(COLORS)]
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
            plt.Line2D([], [], marker="o", color=COLORS[k % len(COLORS)]) for k in range(len(fits))
        ]
        labels = [f.label for f in fits]
    ax.legend(handles, labels, loc="best", fontsize="small")
    fig.tight_layout()
    return fig
