"""Caterpillar plots of the random effects (:func:`plot_ranef`, lme4's
``dotplot(ranef(fit, condVar = TRUE))``), with the level names kept legible."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from scipy import special

from bayesglmm.errors import DesignError
from bayesglmm.interpret.figure_style import COLORS
from bayesglmm.intervals import CI_PROB, eti

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike

__all__ = ["plot_ranef"]


def _ranef_intervals(fit: FitLike, block: int, term: int, prob: float) -> tuple[np.ndarray, ...]:
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
    fit: FitLike,
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
    fit : FitLike
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
        ax.plot(m[order], y, "o", ms=1.5 if many else 3.5, color=COLORS[0])
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
