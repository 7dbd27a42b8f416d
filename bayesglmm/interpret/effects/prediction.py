"""``predictions`` and ``avg_predictions``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.interpret.effects.grid import (
    _by_groups,
    _check_re_type,
    _first_rows,
    _group_mean,
    _Predictor,
    _resolve_newdata,
    _tidy,
)
from bayesglmm.interpret.effects.inference import (
    _infer,
    _Quantity,
)
from bayesglmm.interpret.effects.state import (
    RE,
    MLMethod,
    Type,
)
from bayesglmm.intervals import CI_PROB


# ---------------------------------------------------------------------------- predictions
def predictions(
    fit: Any,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002 - marginaleffects' name
    conf_level: float = CI_PROB,
    by: str | Sequence[str] | None = None,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Predictions with intervals, one row per row of ``newdata`` (marginaleffects).

    Parameters
    ----------
    fit : GLMMFit
    newdata : DataFrame, "mean" or None
        Rows to predict (None: the fitted rows; "mean": :func:`datagrid` at the means).
    re : {"conditional", "none", "marginal"}
        Group effects: the row's own, a typical group's (0), or averaged over the
        random-effect distribution (population average).
    type : {"response", "link"}
    conf_level : float
        Interval level (default 0.95).
    by : str or list of str, optional
        Average the predictions within groups of these columns.
    ml_method : {"delta", "simulation"}
        ML fits: delta method or parametric simulation (see the module notes).
    n_sim : int
        Simulation draws (``ml_method="simulation"``).
    random_seed : int, optional
        Seed of the simulation (default 0).

    Returns
    -------
    pandas.DataFrame
        ``rowid`` (or the ``by`` columns), ``estimate``, ``std.error``, ``conf.low``,
        ``conf.high``, ``method`` and the predictor columns; ``attrs["conf_level"]``.
    """
    _check_re_type(re, type)
    frame = _resolve_newdata(fit, newdata, by)
    pred = _Predictor(fit, frame, re, type)
    fam = fit.design.family
    if by is None:
        q = _Quantity(pred)
        if type == "response":
            q.link_transform = (fam.linkfun, fam.linkinv)
        inf = _infer(fit, q, conf_level, ml_method, n_sim, random_seed)
        lead = pd.DataFrame({"rowid": np.arange(len(frame))})
        out = _tidy(inf, lead, conf_level, re)
        return _keep_attrs(pd.concat([out, frame], axis=1), out)
    cols, codes = _by_groups(frame, by)
    q = _Quantity(lambda st: _group_mean(pred(st), codes))
    inf = _infer(fit, q, conf_level, ml_method, n_sim, random_seed)
    return _tidy(inf, _first_rows(frame, cols, codes), conf_level, re)


def _keep_attrs(df: pd.DataFrame, src: pd.DataFrame) -> pd.DataFrame:
    df.attrs.update(src.attrs)
    return df


def avg_predictions(
    fit: Any,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002
    conf_level: float = CI_PROB,
    by: str | Sequence[str] | None = None,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """The average prediction over the rows of ``newdata`` (per ``by`` group); see
    :func:`predictions` for the arguments.  One row (per group)."""
    _check_re_type(re, type)
    frame = _resolve_newdata(fit, newdata, by)
    pred = _Predictor(fit, frame, re, type)
    cols, codes = _by_groups(frame, by)
    q = _Quantity(lambda st: _group_mean(pred(st), codes))
    inf = _infer(fit, q, conf_level, ml_method, n_sim, random_seed)
    lead = _first_rows(frame, cols, codes) if cols else pd.DataFrame(index=range(1))
    return _tidy(inf, lead, conf_level, re)
