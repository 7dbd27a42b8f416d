"""Conditional-effects plot (brms's ``conditional_effects``, marginaleffects'
``plot_predictions``), with typical-group and population-averaged curves on one figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError
from bayesglmm.intervals import CI_PROB

_STYLES = {"none": "-", "marginal": "--", "conditional": ":"}
_RE_LABEL = {
    "none": "typical group (random effects 0)",
    "marginal": "population average",
    "conditional": "conditional",
}


def _axis_values(frame: pd.DataFrame, fit: Any, var: str, n: int, by: bool) -> list[Any]:
    from bayesglmm.interpret.effects.grid import categorical_levels

    levels = categorical_levels(fit, var, frame)
    if levels is not None:
        return levels
    x = frame[var].to_numpy(dtype=float)
    if by:
        return [float(v) for v in np.quantile(x, [0.25, 0.5, 0.75])]
    return list(np.linspace(x.min(), x.max(), n))


def plot_predictions(
    fit: Any,
    condition: str,
    *,
    by: str | None = None,
    re: str | Sequence[str] = ("none", "marginal"),
    type: str = "response",  # noqa: A002 - marginaleffects' name
    conf_level: float = CI_PROB,
    n_points: int = 50,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Predictions along one predictor, optionally by a second, for several ``re`` choices.

    Other predictors are held at their mean or most frequent level (:func:`datagrid`).  Each
    ``re`` is one line style: ``"none"`` (solid; a typical group, random effects 0),
    ``"marginal"`` (dashed; averaged over the random-effect distribution) and
    ``"conditional"`` (dotted; the most frequent group's own effects).  Bands are intervals at
    ``conf_level`` (posterior draws, or the ML delta method); the title states the level.

    Parameters
    ----------
    fit : GLMMFit
    condition : str
        Predictor on the x axis: a grid of ``n_points`` over its range (numeric) or its
        levels (categorical).
    by : str, optional
        Second predictor: one colour per level (categorical) or per quartile (numeric:
        25%, 50%, 75%).
    re : str or sequence of str
        Which predictions to draw (default: typical-group and population-averaged).
    type : {"response", "link"}
    conf_level : float
    n_points : int
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`bayesglmm.interpret.effects.predictions` (e.g. ``ml_method``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from bayesglmm.interpret.effects import datagrid, fitted_frame, predictions

    frame = fitted_frame(fit)
    for v in [condition] + ([by] if by else []):
        if v not in frame.columns:
            raise ArgumentError(
                f"plot_predictions: `{v}` is not a predictor; predictors: "
                f"{', '.join(frame.columns)}"
            )
    res = [re] if isinstance(re, str) else list(re)
    xs = _axis_values(frame, fit, condition, n_points, by=False)
    bys = _axis_values(frame, fit, by, n_points, by=True) if by else [None]
    categorical = not isinstance(xs[0], float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    else:
        fig = ax.figure
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    method = ""
    for k, bval in enumerate(bys):
        grid = datagrid(fit, **{condition: xs, **({by: [bval]} if by else {})})
        for j, r in enumerate(res):
            p = predictions(fit, grid, re=r, type=type, conf_level=conf_level, **kwargs)  # type: ignore[arg-type]
            method = str(p["method"].iloc[0])
            color = colors[k % len(colors)]
            label = _RE_LABEL.get(r, r) + (f", {by} = {_fmt(bval)}" if by else "")
            pos = np.arange(len(xs)) + (j - (len(res) - 1) / 2) * 0.12 if categorical else xs
            if categorical:
                yerr = np.vstack([p["estimate"] - p["conf.low"], p["conf.high"] - p["estimate"]])
                ax.errorbar(pos, p["estimate"], yerr=yerr, fmt="o", color=color,
                            ls="none", mfc="white" if r == "marginal" else color, label=label)  # fmt: skip
            else:
                ax.plot(pos, p["estimate"], _STYLES.get(r, "-"), color=color, label=label)
                ax.fill_between(pos, p["conf.low"], p["conf.high"], color=color, alpha=0.15)
    if categorical:
        ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs])
    d = fit.design
    ylab = d.response_name if type == "response" else f"{d.response_name} (link scale)"
    if type == "response" and d.family.is_binomial:
        ylab = f"P({d.response_name})"
    ax.set_xlabel(condition)
    ax.set_ylabel(ylab)
    ax.set_title(
        f"Predicted {ylab} by {condition}: {100 * conf_level:g}% intervals ({method})",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
