"""The model frame: the used columns, rows with a missing or non-finite value dropped.

As lme4's model frame (``na.action = na.omit``), rows with a missing value in any used
column (or a non-finite number outside the response) are dropped, counted per column and
reported in a :class:`~bayesglmm.errors.DroppedRowsWarning`; the positions of the kept rows
are the design's ``row_index``.  The predictor and grouping columns are then checked and
normalized (:func:`prepare_columns`): nullable dtypes become NumPy, a column that looks
numeric but holds stray strings, a column mixing types, complex numbers and dates in a term
are refused with the values and rows named.
"""

from __future__ import annotations

import numbers
import re
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.design.columns import UsedColumns
from bayesglmm.design.levels import is_numeric
from bayesglmm.design.naming import row_label, value_text
from bayesglmm.errors import DataError, DesignError, DroppedRowsWarning, SuspiciousDataWarning

__all__ = ["ModelFrame", "model_frame", "prepare_columns"]


@dataclass(frozen=True, eq=False)
class ModelFrame:
    """The model frame and how it was cut from the data.

    Attributes
    ----------
    frame : pandas.DataFrame
        The used columns at the kept rows (the data's own index).
    row_index : ndarray of int
        Positions of the kept rows in the input data.
    n_input : int
        Rows of the input data.
    n_dropped : int
        Rows dropped for a missing or non-finite value.
    """

    frame: pd.DataFrame
    row_index: np.ndarray
    n_input: int
    n_dropped: int


def model_frame(
    data: pd.DataFrame, cols: UsedColumns, row_arrays: dict[str, np.ndarray]
) -> ModelFrame:
    """Cut the model frame from ``data``: used columns, incomplete rows dropped (with a warning).

    ``row_arrays`` are the ``weights=`` / ``offset=`` arguments given as arrays over the
    input rows (keyed ``"weights="``, ``"offset="``): their missing values drop rows too.
    """
    used = list(cols.needed)
    n_input = len(data)
    if n_input == 0:
        raise DesignError("data has no rows")
    frame = data.loc[:, used]
    bad = frame.isna()
    for c in used:
        complex_col = pd.api.types.is_complex_dtype(frame[c].dtype)  # refused below
        if c not in cols.response and is_numeric(frame[c]) and not complex_col:
            vals = frame[c].to_numpy(dtype=float, na_value=np.nan)
            bad[c] = bad[c].to_numpy() | ~np.isfinite(vals)
    for label, arr in row_arrays.items():
        bad[label] = np.isnan(arr)
    drop_mask = bad.any(axis=1).to_numpy()
    n_dropped = int(drop_mask.sum())
    if n_dropped == n_input:
        per_col = ", ".join(f"`{c}`: {int(v)}" for c, v in bad.sum().items() if v)
        raise DesignError(
            f"no rows left: all {n_input} rows have a missing or non-finite value "
            f"(per column: {per_col})"
        )
    if n_dropped:
        per_col = ", ".join(f"{c}: {int(v)}" for c, v in bad.sum().items() if v)
        warnings.warn(
            f"dropped {n_dropped} of {n_input} rows with missing or non-finite values "
            f"({per_col}); {n_input - n_dropped} rows used",
            DroppedRowsWarning,
            stacklevel=3,
        )
        frame = frame.loc[~drop_mask]
    row_index = np.flatnonzero(~drop_mask)
    # nullable extension dtypes (Int64, Float64, boolean) -> plain NumPy; no NA is left
    for c in used:
        dt = frame[c].dtype
        if isinstance(dt, pd.api.extensions.ExtensionDtype) and is_numeric(frame[c]):
            frame[c] = frame[c].to_numpy(dtype=bool if dt == "boolean" else float)
    prepare_columns(frame, cols.terms - cols.response, cols.groups, cols.parts)
    return ModelFrame(frame, row_index, n_input, n_dropped)


_ZERO_PADDED = re.compile(r"[+-]?0\d+")
_NA_MARKERS = frozenset(
    {"", ".", "-", "?", "na", "n/a", "nan", "null", "none", "missing", "#n/a", "n.a.", "nil"}
)


def _explicit_factor(col: str, parts: Sequence[str]) -> bool:
    """True when the formula wraps ``col`` in ``C()``/``factor()``: it is asked to be a factor."""
    pat = (
        r"(?<![A-Za-z0-9_.])(?:C|factor|as\.factor|ordered|as\.ordered|relevel)"
        rf"\(\s*`?{re.escape(col)}`?\s*[,)]"
    )
    return any(re.search(pat, p) for p in parts)


def _kind(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "bool"
    if isinstance(v, numbers.Real):
        return "number"
    return "str" if isinstance(v, str) else type(v).__name__


def prepare_columns(
    frame: pd.DataFrame, term_cols: set[str], group_cols: set[str], parts: Sequence[str]
) -> None:
    """Check and normalize the model frame's predictor and grouping columns (in place).

    * ``string`` (pd.NA) columns become pandas' default ``str`` dtype, which formulaic
      encodes as a factor (it passes the other one through as if it were numeric);
    * datetime, timedelta, period and interval columns in a term raise (they are fine as
      grouping factors: levels are matched by value);
    * an object or string column that looks numeric but holds a few non-numeric strings
      (``"."``, ``"n/a"``) raises, naming the values and rows, unless wrapped in ``C()``;
      an object column of numbers only becomes float;
    * an object column whose values mix numbers and strings that print the same (``1`` and
      ``"1"``) raises; other mixes of types warn.
    """
    for c in dict.fromkeys([*term_cols, *group_cols]):
        col = frame[c]
        dt = col.dtype
        if isinstance(dt, pd.StringDtype) and dt.na_value is pd.NA:
            frame[c] = col = col.astype("str")
            dt = col.dtype
        if pd.api.types.is_complex_dtype(dt):
            raise DesignError(
                f"column `{c}` is {dt}: a model needs real numbers (casting would silently drop "
                f"the imaginary part); use e.g. df['{c}'].to_numpy().real or np.abs(df['{c}'])"
            )
        if (
            isinstance(dt, pd.CategoricalDtype)
            or is_numeric(col)
            or pd.api.types.is_bool_dtype(col)
        ):
            continue
        timeish = (
            pd.api.types.is_datetime64_any_dtype(dt)
            or pd.api.types.is_timedelta64_dtype(dt)
            or isinstance(dt, pd.PeriodDtype | pd.IntervalDtype)
        )
        if timeish:
            if c in term_cols:
                raise DesignError(
                    f"column `{c}` is {dt}: a formula term needs numbers or categories; convert "
                    f"it, e.g. (df['{c}'] - df['{c}'].min()).dt.days for days since the first "
                    f"date, or df['{c}'].astype(str) for one level per value"
                )
            continue
        if not (pd.api.types.is_object_dtype(dt) or pd.api.types.is_string_dtype(dt)):
            continue
        # one pass over the distinct values (a factor of 10^6 rows has a handful)
        try:
            codes, uniq = pd.factorize(col, sort=False)
        except TypeError as exc:  # unhashable values: lists, dicts, arrays in cells
            i = next((k for k, v in enumerate(col.to_numpy()) if not isinstance(v, Hashable)), 0)
            v = col.iloc[i]
            raise DesignError(
                f"column `{c}` holds a {type(v).__name__} at row {row_label(col.index, i)} "
                f"({value_text(v)}): each cell of a predictor or grouping column must be a single "
                "number or label"
            ) from exc
        values = np.asarray(uniq, dtype=object)
        first = np.unique(codes, return_index=True)[1]
        counts = np.bincount(codes, minlength=values.size)
        kinds = np.array([_kind(v) for v in values], dtype=object)
        if c in term_cols and not _explicit_factor(c, parts):
            _check_stray_strings(c, col.index, values, first, counts)
            if (kinds == "number").all():  # numbers stored as objects: a numeric column
                frame[c] = col.astype(float)
                continue
        _check_mixed_types(c, col.index, values, first, counts, kinds)


def _check_stray_strings(
    c: str, index: pd.Index, values: np.ndarray, first: np.ndarray, counts: np.ndarray
) -> None:
    """``values`` are the distinct values, ``first`` their first rows, ``counts`` their rows."""
    parsed = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    bad = np.isnan(parsed.to_numpy(dtype=float, na_value=np.nan))
    n_bad, n = int(counts[bad].sum()), int(counts.sum())
    if n_bad == 0 or n_bad == n:
        return
    if any(_ZERO_PADDED.fullmatch(str(v).strip()) for v in values[~bad]):
        return  # "01", "002": codes, not numbers; the column is a factor as it stands
    strays = [str(v) for v in values[bad]]
    markers = all(v.strip().lower() in _NA_MARKERS for v in strays)
    numeric_levels = int((~bad).sum())
    if not (markers or (n_bad <= 0.2 * n and numeric_levels >= 5)):
        return
    order = np.argsort(first[bad], kind="stable")
    rows = first[bad][order]
    shown = ", ".join(
        f"{strays[k]!r} (row {row_label(index, int(r))})"
        for k, r in zip(order[:5], rows[:5], strict=False)
    )
    more = f" and {len(strays) - 5} more" if len(strays) > 5 else ""
    raise DataError(
        f"column `{c}` looks numeric but holds {n_bad} non-numeric value(s): {shown}{more}; "
        f"as it stands it would become a factor with {values.size} levels. "
        f"Make them missing (df['{c}'] = pd.to_numeric(df['{c}'], errors='coerce'); those "
        f"rows are then dropped), or write C({c}) to treat `{c}` as categorical"
    )


def _check_mixed_types(
    c: str,
    index: pd.Index,
    values: np.ndarray,
    first: np.ndarray,
    counts: np.ndarray,
    kinds: np.ndarray,
) -> None:
    present = list(dict.fromkeys(kinds[np.argsort(first, kind="stable")].tolist()))
    if len(present) < 2:
        return
    by_text: dict[str, int] = {}
    for k in np.argsort(first, kind="stable"):
        j = by_text.setdefault(str(values[k]), int(k))
        if kinds[j] != kinds[k]:
            a, b = values[j], values[k]
            raise DataError(
                f"column `{c}` mixes types: {a!r} ({type(a).__name__}, row "
                f"{row_label(index, int(first[j]))}) and {b!r} ({type(b).__name__}, row "
                f"{row_label(index, int(first[k]))}) would be two different levels that print the "
                f"same; convert the column to one type, e.g. df['{c}'].astype(str) or "
                f"pd.to_numeric(df['{c}'])"
            )
    tally = ", ".join(f"{k}: {int(counts[kinds == k].sum())}" for k in present)
    warnings.warn(
        f"column `{c}` mixes value types ({tally}); each distinct value becomes its own "
        "level. Convert the column to one type if that is not intended",
        SuspiciousDataWarning,
        stacklevel=5,
    )
