"""The response, parsed by the family's ``response_kind``.

``real`` (gaussian): a finite number per row; ``counts`` (Poisson): non-negative integers;
``binary`` (bernoulli): 0/1, booleans or a two-level factor (the second level is a
success, as in R); ``binomial``: ``cbind(successes, failures)``, or a proportion with
``trials=`` (or with ``weights=``, as glmer, checked in
:mod:`bayesglmm.design.weights_offset`).  A column or any R expression of columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesglmm.design.levels import factor_levels, is_numeric
from bayesglmm.design.materialize import eval_expr, is_column_ref
from bayesglmm.design.naming import row_label
from bayesglmm.errors import DataError
from bayesglmm.families import Family
from bayesglmm.formula.bars import ParsedFormula
from bayesglmm.formula.rlang import Lang

__all__ = ["check_counts", "parse_response"]


def _two_level_response(col: pd.Series, name: str) -> tuple[np.ndarray, str | None]:
    """A bernoulli response as 0/1, and the level counted as a success (a factor's second)."""
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=float), None
    if is_numeric(col):
        y = col.to_numpy(dtype=float, copy=True)
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"response `{name}` must be 0/1 for the bernoulli family; found {y[i]:g} "
                f"at row {row_label(col.index, i)} ({int(bad.sum())} value(s) outside {{0, 1}})"
            )
        return y, None
    levels = factor_levels(col)
    if isinstance(col.dtype, pd.CategoricalDtype) and len(col.cat.categories) == 2:
        levels = list(col.cat.categories)  # a declared two-level factor, even if one is unused
    if len(levels) != 2:
        shown = ", ".join(repr(str(v)) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
        raise DataError(
            f"response `{name}` must have exactly two levels for the bernoulli family; "
            f"found {len(levels)}: {shown}"
        )
    success = levels[1]
    return (col == success).to_numpy(dtype=float), str(success)


def check_counts(y: np.ndarray, name: str, index: pd.Index, what: str) -> None:
    """Refuse a value of ``y`` that is not a non-negative integer (``what``: counts, trials)."""
    bad = ~np.isfinite(y) | (y < 0) | (y != np.round(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"`{name}` must hold non-negative integer {what}; found {y[i]:g} at row "
            f"{row_label(index, i)} ({int(bad.sum())} bad value(s))"
        )


def parse_response(
    parsed: ParsedFormula,
    frame: pd.DataFrame,
    family: Family,
    trials: str | np.ndarray | None,
    row_index: np.ndarray,
    lang: Lang,
    weighted: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """``(y, trials, success_level)`` at the rows of the model frame, checked for the family.

    ``trials`` is the binomial ``trials=`` argument (a column, or values over the input rows
    of which the frame keeps ``row_index``); ``weighted`` says that ``weights=`` was given
    (a binomial proportion then takes them as its trials).  ``success_level`` is the label
    counted as a success of a two-level factor response, else None.
    """

    def values(expr: str) -> np.ndarray:
        if is_column_ref(expr, frame):
            col = frame[expr.strip("`")]
            if pd.api.types.is_complex_dtype(col.dtype):
                raise DataError(
                    f"response `{expr}` is {col.dtype}: it must hold real numbers for the "
                    f"{family.name} family"
                )
            if not is_numeric(col) and not pd.api.types.is_bool_dtype(col):
                raise DataError(
                    f"response `{expr}` must be numeric for the {family.name} family; it is "
                    f"{col.dtype} (first value {col.iloc[0]!r})"
                )
            return col.to_numpy(dtype=float, copy=True)
        return eval_expr(frame, expr, "response expression", lang)[0]

    if parsed.is_cbind:
        if family.spec.response_kind != "binomial":
            raise DataError(f"cbind() response needs family='binomial', not '{family.name}'")
        fname = parsed.failures or ""
        s, f = values(parsed.response), values(fname)
        check_counts(s, parsed.response, frame.index, "successes")
        neg = np.isfinite(f) & (f < 0)
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise DataError(
                f"successes exceed trials: failures `{fname}` = {f[i]:g} < 0 at row "
                f"{row_label(frame.index, i)} ({int(neg.sum())} row(s))"
            )
        check_counts(f, fname, frame.index, "failures")
        return s, s + f, None
    expr = parsed.response
    kind = family.spec.response_kind  # the family's response parser
    if kind == "binary":
        if is_column_ref(expr, frame):
            y, success = _two_level_response(frame[expr.strip("`")], expr)
            return y, None, success
        y = values(expr)
        _two_level_response(pd.Series(y, index=frame.index), expr)
        return y, None, None
    y = values(expr)
    if kind == "binomial":
        if trials is None and weighted:  # weights= are the trials (checked by apply_weights)
            return y, None, None
        if trials is None:
            raise DataError(
                "family='binomial' needs cbind(successes, failures) as the response, or a "
                "proportion response with trials='column' (or weights=, as glmer)"
            )
        if isinstance(trials, str):
            n = frame[trials].to_numpy(dtype=float, copy=True)
            tname = trials
        else:
            arr = np.asarray(trials, dtype=float).reshape(-1)
            n_input = len(row_index) and int(row_index.max()) + 1
            if arr.shape[0] < n_input:
                raise DataError(
                    f"trials has {arr.shape[0]} values but the data has at least {n_input} rows"
                )
            n, tname = arr[row_index].copy(), "trials"
        check_counts(n, tname, frame.index, "trials")
        zero = n == 0
        if zero.any():
            raise DataError(
                f"`{tname}` is 0 in {int(zero.sum())} row(s) (first at row "
                f"{row_label(frame.index, int(np.flatnonzero(zero)[0]))}); drop them: they carry "
                "no information"
            )
        bad = (y < 0) | (y > 1) | ~np.isfinite(y)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"with trials=, the response `{expr}` must be a proportion in [0, 1]; found "
                f"{y[i]:g} at row {row_label(frame.index, i)}. For counts write "
                f"cbind({expr}, {tname} - {expr})"
            )
        s = y * n
        off = np.abs(s - np.round(s))
        if off.max() > 1e-8:
            i = int(np.argmax(off))
            raise DataError(
                f"`{expr}` * `{tname}` is not a whole number of successes at row "
                f"{row_label(frame.index, i)}: {y[i]:g} * {n[i]:g} = {s[i]:g}"
            )
        return np.round(s), n, None
    if kind == "counts":
        check_counts(y, expr, frame.index, "counts")
    elif not np.isfinite(y).all():
        i = int(np.flatnonzero(~np.isfinite(y))[0])
        raise DataError(
            f"response `{expr}` must be finite; found {y[i]:g} at row {row_label(frame.index, i)} "
            f"({int((~np.isfinite(y)).sum())} non-finite value(s))"
        )
    if kind == "real":  # the family's own range (beta: strictly inside (0, 1))
        bad, what = family.spec.check_response(y, None)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"response `{expr}` {what}; found {y[i]:g} at row {row_label(frame.index, i)} "
                f"({int(bad.sum())} bad value(s))"
            )
    return y, None, None
