"""Data for the effect verbs: the fitted frame, ``datagrid``, ``newdata`` and ``by=``
groups, the predictor of a frame, and the tidy output."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError
from bayesglmm.interpret.effects.state import (
    RE,
    Type,
    _State,
)


# ---------------------------------------------------------------------------- data helpers
def fitted_frame(fit: Any, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The fitted rows (after dropping missing values): the predictor columns, plus the
    columns named in ``extra`` (e.g. ``by=`` columns the formula does not use) taken from the
    data frame the model was built from."""
    model = getattr(fit, "_model", None)
    if model is None or getattr(model, "_used_frame", None) is None:
        raise ArgumentError(
            "this fit carries no data frame (no model attached); pass newdata= explicitly"
        )
    idx = fit.design.row_index
    frame = model._used_frame
    if idx is not None:
        frame = frame.iloc[np.asarray(idx)]
    cols = list(fit.design.encoder.predictors)
    out = frame.loc[:, [c for c in cols if c in frame.columns]].reset_index(drop=True)
    src = getattr(model, "_data_frame", None)
    more = [c for c in extra if c not in out.columns]
    if more and src is not None and len(src) == fit.design.n_input:
        rows = src.iloc[np.asarray(idx)] if idx is not None else src
        for c in more:
            if c in rows.columns:
                out[c] = rows[c].to_numpy()
    return out


def categorical_levels(fit: Any, var: str, frame: pd.DataFrame) -> list[Any] | None:
    enc = fit.design.encoder
    if var in enc.levels:
        return list(enc.levels[var])
    col = frame[var] if var in frame.columns else None
    if col is not None and not pd.api.types.is_numeric_dtype(col):
        return list(pd.unique(col))
    if col is not None and pd.api.types.is_bool_dtype(col):
        return [False, True]
    return None


def datagrid(fit: Any, **values: Any) -> pd.DataFrame:
    """A grid of predictor values, as marginaleffects' ``datagrid``.

    Every predictor (grouping factors included) not named is held at its mean (numeric) or
    its most frequent level (categorical, grouping factor) in the fitted data; named ones
    take the given values; the grid is their Cartesian product.

    Parameters
    ----------
    fit : GLMMFit
    **values
        ``column=value`` or ``column=[values]``.

    Returns
    -------
    pandas.DataFrame
        One row per combination, with the fitted data's dtypes (categoricals keep their
        categories).

    Raises
    ------
    ArgumentError
        A name that is not a predictor of the model.
    """
    frame = fitted_frame(fit)
    unknown = [k for k in values if k not in frame.columns]
    if unknown:
        raise ArgumentError(
            f"datagrid: {', '.join(f'`{k}`' for k in unknown)} is not a predictor of "
            f"`{fit.design.formula}`; predictors: {', '.join(frame.columns)}"
        )
    groups = {f for b in fit.design.encoder.blocks for f in b.term.factors}
    axes: dict[str, list[Any]] = {}
    for c in frame.columns:
        if c in values:
            v = values[c]
            axes[c] = list(v) if isinstance(v, list | tuple | np.ndarray | pd.Series) else [v]
        elif (
            c not in groups
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ):
            axes[c] = [float(frame[c].mean())]
        else:
            axes[c] = [frame[c].mode(dropna=True).iloc[0]]
    rows = list(itertools.product(*axes.values()))
    out = pd.DataFrame(rows, columns=list(axes))
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            out[c] = pd.Categorical(out[c], categories=frame[c].cat.categories)
    return out


def _resolve_newdata(fit: Any, newdata: pd.DataFrame | str | None, by: Any = None) -> pd.DataFrame:
    if newdata is None:
        extra = [] if by is None or by is False else ([by] if isinstance(by, str) else list(by))
        return fitted_frame(fit, extra)
    if isinstance(newdata, str):
        if newdata == "mean":
            return datagrid(fit)
        raise ArgumentError(f"newdata must be a DataFrame, None or 'mean', not {newdata!r}")
    if not isinstance(newdata, pd.DataFrame):
        raise ArgumentError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    return newdata.reset_index(drop=True)


def _check_re_type(re: str, type: str) -> None:  # noqa: A002
    if re not in ("conditional", "none", "marginal"):
        raise ArgumentError(f"re must be 'conditional', 'none' or 'marginal', not {re!r}")
    if type not in ("response", "link"):
        raise ArgumentError(f"type must be 'response' or 'link', not {type!r}")


class _Predictor:
    """Encodes a frame once; evaluates the mean (or link) on any parameter state."""

    def __init__(self, fit: Any, frame: pd.DataFrame, re: RE, type: Type) -> None:  # noqa: A002
        from bayesglmm.interpret import predict

        self.fit, self.re, self.type = fit, re, type
        self.nd, self.labels = predict.encode(fit, frame, re)
        self.new_levels: predict.NewLevels = "sample" if fit.is_bayesian else "zero"

    def __call__(self, st: _State) -> np.ndarray:
        from bayesglmm.interpret import predict

        fam = self.fit.design.family
        eta = predict.fixed_eta(st, self.nd)
        if self.re == "conditional":
            rng = np.random.default_rng(predict.DEFAULT_SEED)
            eta = eta + predict.random_eta(st, self.nd, self.new_levels, rng, self.labels)
            return eta if self.type == "link" else fam.linkinv(eta)
        if self.re == "none" or self.type == "link":
            return eta if self.type == "link" else fam.linkinv(eta)
        return predict.marginal_mean(st, eta, predict.re_variance(st, self.nd))


def _by_groups(frame: pd.DataFrame, by: str | Sequence[str] | None) -> tuple[list[str], Any]:
    """The ``by`` columns and each row's group code (None: one group)."""
    if by is None or by is False:
        return [], np.zeros(len(frame), dtype=np.int64)
    cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ArgumentError(
            f"by: {', '.join(f'`{c}`' for c in missing)} is not a column of newdata; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    # groups in sorted order (category order for categoricals), as marginaleffects lists them
    codes = frame.groupby(cols, sort=True, observed=True, dropna=False).ngroup()
    return cols, codes.to_numpy(dtype=np.int64)


def _group_mean(vals: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(S, n) -> (S, G), the mean within each group code."""
    G = int(codes.max()) + 1
    M = np.zeros((vals.shape[1], G))
    M[np.arange(vals.shape[1]), codes] = 1.0
    return (vals @ M) / M.sum(axis=0)


def _first_rows(frame: pd.DataFrame, cols: list[str], codes: np.ndarray) -> pd.DataFrame:
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    return frame.loc[first, cols].reset_index(drop=True)


def _tidy(inf: pd.DataFrame, lead: pd.DataFrame, conf_level: float, re: str) -> pd.DataFrame:
    out = pd.concat([lead.reset_index(drop=True), inf.reset_index(drop=True)], axis=1)
    out.attrs.update(conf_level=conf_level, re=re)
    return out
