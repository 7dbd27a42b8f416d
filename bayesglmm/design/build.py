"""One model frame, built once: formula + DataFrame -> frozen :class:`Design`.

The steps mirror lme4's ``lFormula``/``mkReTrms``:

1. parse the formula (:mod:`bayesglmm.formula.bars`) and check that every column exists;
2. build the model frame from the used columns, dropping rows with a missing or non-finite
   value (counted and reported, as lme4 does);
3. validate the response for the family;
4. build the fixed-effect matrix with formulaic, drop aliased columns; for binary and
   binomial responses, check it for (quasi-)complete separation
   (:mod:`bayesglmm.design.separation`);
5. build one :class:`~bayesglmm.design.types.RandomBlock` per random term: per-row term
   values and an integer group index (never a dense indicator matrix);
6. keep the encoding state so new data can be encoded the same way
   (:func:`encode_new_data`).
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import re
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.errors import FormulaicError, FormulaicWarning
from formulaic.materializers import PandasMaterializer

from bayesglmm.design.separation import detect_separation, separation_message
from bayesglmm.design.types import Design, RandomBlock
from bayesglmm.errors import (
    DataError,
    DesignError,
    DroppedRowsWarning,
    FormulaError,
    IdentifiabilityWarning,
    RankDeficiencyWarning,
    SuspiciousDataWarning,
)
from bayesglmm.families import Family, get_family
from bayesglmm.formula.bars import ParsedFormula, RandomTerm, parse_formula
from bayesglmm.formula.rlang import Lang
from bayesglmm.quiet import erroring_warnings

__all__ = ["build_design", "encode_new_data", "NewData", "r_name"]


# --------------------------------------------------------------------------- names
def r_name(name: str) -> str:
    """Convert a formulaic column name to R's style (``"a[T.b]"`` -> ``"ab"``)."""
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    return re.sub(r"\[([^\]]*)\]", r"\1", name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _matrix(
    frame: pd.DataFrame, spec: str, what: str, lang: Lang, translated: str | None = None
) -> tuple[Any, np.ndarray, list[str]]:
    """Materialize ``spec`` on the model frame as a float matrix, at the design boundary.

    ``spec`` is R text, translated by ``lang`` (or already translated: ``translated``).
    Returns the model matrix, its values and its column names in R's spelling.

    Rows with missing inputs are already dropped, so a NaN or an infinity here comes from a
    transform (``log(x)`` with ``x <= 0``): the column and the rows are named.  Any other
    failure inside formulaic, pandas or NumPy becomes a :class:`DesignError` with the cause
    chained.
    """
    code = translated if translated is not None else lang.translate(spec).text
    try:
        with np.errstate(all="ignore"):  # log(-1) etc. are reported below, naming the rows
            mm = PandasMaterializer(lang.frame(frame)).get_model_matrix(
                Formula(code), na_action="ignore"
            )
            X = mm.to_numpy(dtype=float)
    except Exception as exc:  # noqa: BLE001 - a dependency's error, re-raised as ours
        raise DesignError(
            f"cannot build {what} from `{spec}`: {lang.show(_first_line(exc))}"
        ) from exc
    names = [lang.show(str(c)) for c in mm.columns]
    bad = ~np.isfinite(X)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        inputs = _inputs(names[j], frame)
        _raise_non_finite(frame, names[j], X[:, j], what, inputs)
    return mm, X, names


def _inputs(name: str, frame: pd.DataFrame) -> list[str]:
    """Columns of the frame that an R-spelled model-matrix column name refers to."""
    try:
        cols = [
            c for c, _ in Lang(frame.columns).translate(re.sub(r"\[[^\]]*\]", "", name)).columns
        ]
    except Exception:  # noqa: BLE001 - a name that is not formula text
        return []
    return sorted(c for c in set(cols) if c in frame.columns)


def _raise_non_finite(
    frame: pd.DataFrame, name: str, vals: np.ndarray, what: str, inputs: list[str]
) -> None:
    """A transform gave NaN or +-inf: name the expression, the rows and the input values."""
    rows = np.flatnonzero(~np.isfinite(vals))
    i = int(rows[0])
    given = ", ".join(f"{c} = {_value(frame[c].iloc[i])}" for c in inputs)
    shown = ", ".join(_row(frame.index, int(r)) for r in rows[:5]) + (
        ", ..." if rows.size > 5 else ""
    )
    hint = (
        "log or sqrt of a negative or zero value?"
        if re.search(r"log|sqrt", name)
        else "check the transform's input values."
    )
    raise DataError(
        f"{what} `{r_name(name)}` is {vals[i]:g} at row {_row(frame.index, i)}"
        f"{f' ({given})' if given else ''}; {rows.size} row(s) give a non-finite value "
        f"(rows {shown}); {hint} Fix or drop those rows, or change the transform"
    )


def _value(v: Any) -> str:
    v = v.item() if isinstance(v, np.generic) else v
    return f"{v:g}" if isinstance(v, float) else repr(v)


def _expr_spec(expr: str) -> str:
    """Formulaic spec giving the value of one expression as a single column.

    The expression is wrapped in ``I()``: ``0 + n - s`` would *remove* ``s``, and
    ``0 + log(w) + u`` would give two columns, where ``I(n - s)`` is the difference.
    """
    return f"0 + I({expr})"


def _eval_expr(frame: pd.DataFrame, expr: str, what: str, lang: Lang) -> tuple[np.ndarray, Any]:
    """Evaluate ``expr`` on ``frame`` as one float column; also return its model spec."""
    code = lang.translate(_expr_spec(expr)).text
    try:
        with np.errstate(all="ignore"):  # log(0) etc. are reported below, naming the row
            mm = PandasMaterializer(lang.frame(frame)).get_model_matrix(
                Formula(code), na_action="ignore"
            )
    except Exception as exc:
        raise FormulaError(
            f"cannot evaluate {what} `{expr}`: {lang.show(_first_line(exc))}"
        ) from exc
    if mm.shape[1] != 1:
        raise FormulaError(f"{what} `{expr}` must give one numeric column, not {mm.shape[1]}")
    return mm.to_numpy(dtype=float)[:, 0].copy(), mm.model_spec


def _required(expr: str, lang: Lang) -> list[str]:
    """Columns (or unknown names) that R text uses, in order of appearance."""
    return list(dict.fromkeys(c for c, _ in lang.translate(expr).columns))


def _is_column_ref(expr: str, data: pd.DataFrame) -> bool:
    return expr in data.columns or (expr.startswith("`") and expr.strip("`") in data.columns)


def _check_columns(formula: str, needed: dict[str, str], data: pd.DataFrame) -> None:
    columns = [str(c) for c in data.columns]
    for col, where in needed.items():
        if col in data.columns:
            continue
        close = difflib.get_close_matches(col, columns, n=3, cutoff=0.6)
        if not close:
            lower = {c.lower(): c for c in columns}
            close = [lower[col.lower()]] if col.lower() in lower else []
        hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
        m = re.search(rf"(?<![A-Za-z0-9_.`]){re.escape(col)}(?![A-Za-z0-9_.`])", formula)
        pos = m.start() if m else formula.find(col)
        caret = f"\n    {formula}\n    {' ' * pos}^" if pos >= 0 else ""
        raise FormulaError(f"unknown column `{col}` in `{where}`{hint}{caret}")


def _check_names(needed: dict[str, str], data: Any) -> None:
    """Duplicated column names (``frame[c]`` would be a DataFrame).

    Names formulaic would misread (``age.group``, ``center``, ``a b``) need no check: the
    formula is translated by :class:`~bayesglmm.formula.rlang.Lang`, which gives formulaic safe
    names for them.
    """
    for col in needed:
        count = int((data.columns == col).sum())
        if count > 1:
            where = ", ".join(str(i) for i in np.flatnonzero(data.columns == col))
            raise DesignError(
                f"column `{col}` appears {count} times in the data (positions {where}); "
                "rename or drop the duplicates (df.loc[:, ~df.columns.duplicated()])"
            )


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


def _prepare_columns(
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
            or _is_numeric(col)
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
                f"column `{c}` holds a {type(v).__name__} at row {_row(col.index, i)} "
                f"({_value(v)}): each cell of a predictor or grouping column must be a single "
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
        f"{strays[k]!r} (row {_row(index, int(r))})"
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
                f"{_row(index, int(first[j]))}) and {b!r} ({type(b).__name__}, row "
                f"{_row(index, int(first[k]))}) would be two different levels that print the "
                f"same; convert the column to one type, e.g. df['{c}'].astype(str) or "
                f"pd.to_numeric(df['{c}'])"
            )
    tally = ", ".join(f"{k}: {int(counts[kinds == k].sum())}" for k in present)
    warnings.warn(
        f"column `{c}` mixes value types ({tally}); each distinct value becomes its own "
        "level. Convert the column to one type if that is not intended",
        SuspiciousDataWarning,
        stacklevel=4,
    )


# --------------------------------------------------------------------------- levels
def _row(index: pd.Index, i: int) -> str:
    """The label of row ``i`` for messages (``3``, ``'a'``; never ``np.int64(3)``)."""
    v = index[i]
    return repr(v.item() if isinstance(v, np.generic) else v)


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype)


def _factor_levels(col: pd.Series) -> list[Any]:
    """Levels in R's order: category order for categoricals, else sorted unique values.

    Unused categories are dropped, as lme4's model frame does (``drop.unused.levels``).
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        used = set(col.dropna().unique())
        return [c for c in col.cat.categories if c in used]
    vals = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(col.dropna())]
    if pd.api.types.is_float_dtype(col) and all(float(v).is_integer() for v in vals):
        vals = [int(v) for v in vals]  # an integer id column that held NaN: labels "3", not "3.0"
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _codes(values: pd.Series, levels: Sequence[Any]) -> np.ndarray:
    """Position of each value in ``levels``; -1 where it is not a level."""
    # look up each distinct value once (a factor of 10^5 rows has a few thousand): hashing
    # every row into an object Index cost 40 ms at 1e5 rows, factorizing 5 ms
    try:
        rows, uniq = pd.factorize(values, use_na_sentinel=False)
    except TypeError:  # unhashable values: row by row
        return _value_codes(values.to_numpy(), levels)
    return _value_codes(np.asarray(uniq, dtype=object), levels)[rows]


def _value_codes(vals: np.ndarray, levels: Sequence[Any]) -> np.ndarray:
    """:func:`_codes` of an array of values."""
    # hash lookup of the values themselves (vectorised), then of their string forms for the
    # rest: "3" finds the integer level 3 (new data read from a CSV)
    try:
        codes = pd.Index(list(levels)).get_indexer(pd.Index(vals))
    except TypeError:  # unhashable values
        codes = np.full(len(vals), -1, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    miss = np.flatnonzero(codes < 0)
    if miss.size:
        by_str: dict[str, int] = {}
        for i, v in enumerate(levels):
            by_str.setdefault(str(v), i)
        found = pd.Series(vals[miss], dtype=object).astype(str).map(by_str)
        codes[miss] = found.fillna(-1).to_numpy(dtype=np.int64)
    return codes


def _group_codes(
    frame: pd.DataFrame, factors: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...], list[list[Any]], tuple[tuple[int, ...], ...]]:
    """Integer index, labels, per-factor levels and per-level factor codes of a group."""
    per_levels = [_factor_levels(frame[f]) for f in factors]
    codes = [_codes(frame[f], lev) for f, lev in zip(factors, per_levels, strict=True)]
    sizes = [len(lv) for lv in per_levels]
    combined = np.ravel_multi_index(codes, sizes) if len(codes) > 1 else codes[0]
    used, index = np.unique(combined, return_inverse=True)
    parts = np.unravel_index(used, sizes)
    combos = tuple(tuple(int(p[i]) for p in parts) for i in range(used.size))
    labels = tuple(":".join(str(per_levels[j][c]) for j, c in enumerate(combo)) for combo in combos)
    return index.reshape(-1).astype(np.int64), labels, per_levels, combos


# --------------------------------------------------------------------------- response
def _two_level_response(col: pd.Series, name: str) -> tuple[np.ndarray, str | None]:
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=float), None
    if _is_numeric(col):
        y = col.to_numpy(dtype=float, copy=True)
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"response `{name}` must be 0/1 for the bernoulli family; found {y[i]:g} "
                f"at row {_row(col.index, i)} ({int(bad.sum())} value(s) outside {{0, 1}})"
            )
        return y, None
    levels = _factor_levels(col)
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


def _check_counts(y: np.ndarray, name: str, index: pd.Index, what: str) -> None:
    bad = ~np.isfinite(y) | (y < 0) | (y != np.round(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"`{name}` must hold non-negative integer {what}; found {y[i]:g} at row "
            f"{_row(index, i)} ({int(bad.sum())} bad value(s))"
        )


def _response(
    parsed: ParsedFormula,
    frame: pd.DataFrame,
    family: Family,
    trials: str | np.ndarray | None,
    row_index: np.ndarray,
    lang: Lang,
    weighted: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    def values(expr: str) -> np.ndarray:
        if _is_column_ref(expr, frame):
            col = frame[expr.strip("`")]
            if pd.api.types.is_complex_dtype(col.dtype):
                raise DataError(
                    f"response `{expr}` is {col.dtype}: it must hold real numbers for the "
                    f"{family.name} family"
                )
            if not _is_numeric(col) and not pd.api.types.is_bool_dtype(col):
                raise DataError(
                    f"response `{expr}` must be numeric for the {family.name} family; it is "
                    f"{col.dtype} (first value {col.iloc[0]!r})"
                )
            return col.to_numpy(dtype=float, copy=True)
        return _eval_expr(frame, expr, "response expression", lang)[0]

    if parsed.is_cbind:
        if family.spec.response_kind != "binomial":
            raise DataError(f"cbind() response needs family='binomial', not '{family.name}'")
        fname = parsed.failures or ""
        s, f = values(parsed.response), values(fname)
        _check_counts(s, parsed.response, frame.index, "successes")
        neg = np.isfinite(f) & (f < 0)
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise DataError(
                f"successes exceed trials: failures `{fname}` = {f[i]:g} < 0 at row "
                f"{_row(frame.index, i)} ({int(neg.sum())} row(s))"
            )
        _check_counts(f, fname, frame.index, "failures")
        return s, s + f, None
    expr = parsed.response
    kind = family.spec.response_kind  # the family's response parser
    if kind == "binary":
        if _is_column_ref(expr, frame):
            y, success = _two_level_response(frame[expr.strip("`")], expr)
            return y, None, success
        y = values(expr)
        _two_level_response(pd.Series(y, index=frame.index), expr)
        return y, None, None
    y = values(expr)
    if kind == "binomial":
        if trials is None and weighted:  # weights= are the trials (checked by _apply_weights)
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
        _check_counts(n, tname, frame.index, "trials")
        zero = n == 0
        if zero.any():
            raise DataError(
                f"`{tname}` is 0 in {int(zero.sum())} row(s) (first at row "
                f"{_row(frame.index, int(np.flatnonzero(zero)[0]))}); drop them: they carry "
                "no information"
            )
        bad = (y < 0) | (y > 1) | ~np.isfinite(y)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"with trials=, the response `{expr}` must be a proportion in [0, 1]; found "
                f"{y[i]:g} at row {_row(frame.index, i)}. For counts write "
                f"cbind({expr}, {tname} - {expr})"
            )
        s = y * n
        off = np.abs(s - np.round(s))
        if off.max() > 1e-8:
            i = int(np.argmax(off))
            raise DataError(
                f"`{expr}` * `{tname}` is not a whole number of successes at row "
                f"{_row(frame.index, i)}: {y[i]:g} * {n[i]:g} = {s[i]:g}"
            )
        return np.round(s), n, None
    if kind == "counts":
        _check_counts(y, expr, frame.index, "counts")
    elif not np.isfinite(y).all():
        i = int(np.flatnonzero(~np.isfinite(y))[0])
        raise DataError(
            f"response `{expr}` must be finite; found {y[i]:g} at row {_row(frame.index, i)} "
            f"({int((~np.isfinite(y)).sum())} non-finite value(s))"
        )
    if kind == "real":  # the family's own range (beta: inside (0, 1); gamma: y > 0)
        bad, what = family.spec.check_response(y, None)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"response `{expr}` {what}; found {y[i]:g} at row {_row(frame.index, i)} "
                f"({int(bad.sum())} bad value(s))"
            )
    return y, None, None


# --------------------------------------------------------------------------- weights=, offset=
def _row_argument(arg: Any, data: pd.DataFrame, what: str) -> np.ndarray:
    """``weights=`` / ``offset=`` (a column name or one value per row of ``data``) as floats
    over the input rows, NaN where missing; infinite values raise (lme4: "must be finite")."""
    n_input = len(data)
    if isinstance(arg, str):
        col = data[arg]
        if not (_is_numeric(col) or pd.api.types.is_bool_dtype(col)):
            raise DataError(
                f"{what}='{arg}': column `{arg}` must be numeric; it is {col.dtype} (first "
                f"value {col.iloc[0]!r})"
            )
        vals = col.to_numpy(dtype=float, na_value=np.nan)
        label = f"`{arg}`"
    else:
        raw = np.asarray(arg.to_numpy() if isinstance(arg, pd.Series) else arg)
        if raw.ndim != 1 or raw.shape[0] != n_input:
            raise DataError(
                f"{what}= has shape {raw.shape} but data has {n_input} rows; give one value "
                "per row (or a column name)"
            )
        try:
            vals = pd.to_numeric(pd.Series(raw)).to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{what}= must be a column name or numeric values, one per row of data; "
                f"found {str(raw[0])!r} ({raw.dtype})"
            ) from exc
        label = f"{what}="
    inf = np.isinf(vals)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise DataError(
            f"{what} {label} is {vals[i]:g} at row {_row(data.index, i)}; {what} must be "
            f"finite ({int(inf.sum())} infinite value(s))"
        )
    if what == "weights":
        neg = vals < 0
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise DataError(
                f"weights {label} is {vals[i]:g} at row {_row(data.index, i)}; weights must be "
                f">= 0 ({int(neg.sum())} negative value(s))"
            )
    return vals


def _apply_weights(
    parsed: ParsedFormula,
    fam: Family,
    trials: Any,
    y: np.ndarray,
    n_trials: np.ndarray | None,
    w: np.ndarray,
    label: str,
    index: pd.Index,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(y, trials, weights)`` with prior weights, lme4's meaning (see :class:`Design`).

    A binomial proportion response (no ``cbind``, no ``trials=``) takes the weights as the
    numbers of trials, as glmer does; its successes ``y * w`` must be whole numbers (glmer
    warns "non-integer #successes in a binomial glm!" and rounds inside its AIC; we refuse).
    Zero-weight rows are kept with a 0 case weight (they contribute nothing).
    """
    zero = w == 0
    if fam.spec.response_kind == "binomial" and not parsed.is_cbind and trials is None:
        expr = parsed.response
        bad = (y < 0) | (y > 1) | ~np.isfinite(y)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"with family='binomial' and weights=, the response `{expr}` must be a "
                f"proportion in [0, 1] (weights are the numbers of trials, as in glmer); "
                f"found {y[i]:g} at row {_row(index, i)}. For counts write "
                f"cbind(successes, failures)"
            )
        frac = np.abs(w - np.round(w))
        if frac.max() > 1e-8:
            i = int(np.argmax(frac))
            raise DataError(
                f"with family='binomial' and a proportion response, weights are the numbers "
                f"of trials and must be whole numbers; {label} is {w[i]:g} at row "
                f"{_row(index, i)}"
            )
        s = y * w
        frac = np.abs(s - np.round(s))
        if frac.max() > 1e-8:
            i = int(np.argmax(frac))
            raise DataError(
                f"non-integer #successes (as glmer warns): `{expr}` * {label} = {y[i]:g} * "
                f"{w[i]:g} = {s[i]:g} at row {_row(index, i)}; with family='binomial', weights "
                "are the numbers of trials of a proportion response"
            )
        n = np.where(zero, 1.0, np.round(w))
        succ = np.where(zero, 0.0, np.round(s))
        return succ, n, (np.where(zero, 0.0, 1.0) if zero.any() else None)
    if fam.spec.response_kind == "binary":
        frac = np.abs(w * y - np.round(w * y))
        if frac.max() > 1e-8:
            i = int(np.argmax(frac))
            warnings.warn(
                f"non-integer #successes: bernoulli response with non-integer weights ({label} "
                f"= {w[i]:g} at row {_row(index, i)}); each row's log-likelihood is "
                "multiplied by its weight (glmer warns the same and rounds inside its AIC)",
                SuspiciousDataWarning,
                stacklevel=3,
            )
    return y, n_trials, w


# --------------------------------------------------------------------------- fixed part
def _aliased(X: np.ndarray) -> list[int]:
    """Columns that are linear combinations of earlier ones (as R's pivoting QR keeps order)."""
    keep: list[int] = []
    drop: list[int] = []
    scale = np.sqrt((X * X).sum(axis=0)) + 1e-300
    Q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        v = X[:, j] / scale[j]
        r = v - Q @ (Q.T @ v) if Q.shape[1] else v
        r = r - Q @ (Q.T @ r) if Q.shape[1] else r
        nr = float(np.sqrt(r @ r))
        if nr < 1e-7:
            drop.append(j)
        else:
            keep.append(j)
            Q = np.column_stack([Q, r / nr])
    return drop


def _categorical_levels(spec: Any, frame: pd.DataFrame, lang: Lang) -> dict[str, tuple[Any, ...]]:
    """Training levels of columns that formulaic encodes as categorical (``a``, ``C(a)``,
    ``factor(a)``)."""
    out: dict[str, tuple[Any, ...]] = {}
    for key, (kind, state) in getattr(spec, "encoder_state", {}).items():
        if getattr(kind, "value", kind) != "categorical":
            continue
        col = lang.column_of(key)
        if col is not None and col in frame.columns:
            out[col] = tuple(state.get("categories", ()))
    return out


def _check_duplicate_terms(terms: Sequence[RandomTerm], blocks: Sequence[RandomBlock]) -> None:
    """Two random-effect terms that give one grouping factor the same column (``(1 | g) +
    (1 | g)``): only the sum of their variances is identified."""
    for j, (tj, bj) in enumerate(zip(terms, blocks, strict=True)):
        for ti, bi in zip(terms[:j], blocks[:j], strict=False):
            shared = [t for t in bj.terms if t in bi.terms]
            if bi.group == bj.group and shared:
                warnings.warn(
                    f"random-effect terms `{ti}` and `{tj}` both give `{bj.group}` "
                    f"{', '.join(f'`{t}`' for t in shared)}: only the sum of their variances "
                    "is identified; remove one of them",
                    IdentifiabilityWarning,
                    stacklevel=3,
                )


def _expand_double_bars(
    random: Sequence[RandomTerm], frame: pd.DataFrame, lang: Lang
) -> list[tuple[RandomTerm, str]]:
    """Random terms as fitted, each with its formulaic text.

    ``(1 + x + f || g)`` is split as lme4 (>= 1.1-36, its default ``"split"``) splits it:
    ``(1 | g) + (0 + x | g) + (0 + f | g)``.  A term that gives one column (the intercept,
    a numeric ``x``) is independent of the others, so those are kept together as one block
    with a diagonal covariance; a term that gives several columns when written ``0 + t`` (a
    factor: one indicator per level; ``poly(x, 2)``) is its own block with an unstructured
    covariance, as in lme4.  ``diag(1 + f | g)`` is one diagonal block over the intercept
    and the contrasts.
    """
    out: list[tuple[RandomTerm, str]] = []
    for term in random:
        code = lang.translate(term.expr).text
        if term.correlated or term.diag:
            out.append((term, code))
            continue
        try:
            structure = list(Formula(code))
        except Exception as exc:  # noqa: BLE001 - formulaic's parser
            raise FormulaError(f"cannot parse `{term.expr}` in `{term}`: {exc}") from exc
        single: list[str] = []
        multi: list[str] = []
        for t in structure:
            tc = str(t)
            if tc == "1":
                single.append("1")
                continue
            try:
                with np.errstate(all="ignore"):
                    width = (
                        PandasMaterializer(lang.frame(frame))
                        .get_model_matrix(Formula(f"0 + {tc}"), na_action="ignore")
                        .shape[1]
                    )
            except Exception:  # noqa: BLE001 - reported when the whole term is built
                width = 1
            (single if width == 1 else multi).append(tc)
        if not multi:
            out.append((term, code))
            continue
        if single:
            lhs = " + ".join(single if "1" in single else ["0", *single])
            shown = " + ".join(lang.show(t) for t in lhs.split(" + "))
            out.append((dataclasses.replace(term, expr=shown), lhs))
        for tc in multi:
            shown = f"0 + {lang.show(tc)}"
            out.append((dataclasses.replace(term, expr=shown, correlated=True), f"0 + {tc}"))
    return out


@dataclass(frozen=True)
class _BlockEncoder:
    term: RandomTerm
    spec: Any  # formulaic ModelSpec of the term's left-hand side
    levels: tuple[str, ...]
    factor_levels: tuple[tuple[Any, ...], ...]
    combos: tuple[tuple[int, ...], ...] = ()  # per level: code of each factor


@dataclass(frozen=True)
class _Encoder:
    parsed: ParsedFormula
    fixed_spec: Any
    fixed_keep: tuple[int, ...]
    offset_specs: tuple[Any, ...]
    blocks: tuple[_BlockEncoder, ...]
    predictors: tuple[str, ...]
    dtypes: dict[str, str]
    categories: dict[str, tuple[Any, ...]]
    lang: Lang
    # training levels of every categorical predictor (str, category, bool-as-factor, `C(x)`)
    levels: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    # offset= given as a column (new data must supply it) or as an array (new data cannot)
    offset_column: str | None = None
    offset_array: bool = False


def build_design(
    formula: str | ParsedFormula,
    data: pd.DataFrame,
    family: str | Family = "gaussian",
    link: str | None = None,
    trials: str | np.ndarray | None = None,
    weights: str | np.ndarray | None = None,
    offset: str | np.ndarray | None = None,
) -> Design:
    """Build the frozen model design from a formula and a DataFrame.

    Parameters
    ----------
    formula : str or ParsedFormula
        lme4-style formula, e.g. ``"y ~ x + (1 + x | g)"``.
    data : pandas.DataFrame
        The data; only the columns the formula uses are read.
    family : str or Family
        ``"bernoulli"``, ``"binomial"``, ``"poisson"`` or ``"gaussian"``.
    link : str, optional
        Link function; the family's canonical link by default.
    trials : str or array, optional
        For ``family="binomial"`` with a proportion response: column of trial counts, or
        an array with one value per row of ``data``.
    weights : str or array, optional
        Prior weights, lme4's meaning: a column name or one value per row of ``data``,
        finite and ``>= 0``; rows where they are missing are dropped (and counted).  Binomial
        proportion response: the numbers of trials; bernoulli, binomial (``cbind``/
        ``trials=``) and Poisson: case weights multiplying each row's log-likelihood;
        gaussian: precision weights (residual variance ``sigma^2 / w``).
    offset : str or array, optional
        A column name or one value per row of ``data``, added to any ``offset()`` terms of
        the formula (lme4's ``offset=``); rows where it is missing are dropped.

    Returns
    -------
    Design

    Raises
    ------
    FormulaError
        Syntax errors and unknown columns (with close matches).
    DataError
        A response, trials or offset value invalid for the family.
    DesignError
        No rows left, or a grouping factor with a single level.

    Warns
    -----
    DroppedRowsWarning
        When rows with missing or non-finite values are dropped (with the count).
    RankDeficiencyWarning
        When aliased fixed-effect columns are dropped (named), or a categorical predictor
        has unused levels (named; they are dropped).
    IdentifiabilityWarning
        For grouping factors with fewer than 5 levels, or one level per row (bernoulli); for
        (quasi-)complete separation of a bernoulli or binomial response by the fixed effects
        (the columns are named).
    """
    if not isinstance(data, pd.DataFrame):
        raise DesignError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    fam = get_family(family, link)
    text = parsed.formula
    lang = Lang(data.columns, text)

    # 1. every column the formula uses (stateful transforms included), and where
    needed: dict[str, str] = {}
    response_cols: set[str] = set()
    for expr in (parsed.response, parsed.failures):
        if expr is None:
            continue
        cols = (
            {expr.strip("`")}
            if _is_column_ref(expr, data)
            else set(_required(_expr_spec(expr), lang))
        )
        response_cols |= cols
        for c in cols:
            needed.setdefault(c, expr)
    for c in _required(parsed.fixed, lang):
        needed.setdefault(c, parsed.fixed)
    for off in parsed.offsets:
        for c in _required(_expr_spec(off), lang):
            needed.setdefault(c, f"offset({off})")
    term_cols = set(_required(parsed.fixed, lang))
    for off in parsed.offsets:
        term_cols |= set(_required(_expr_spec(off), lang))
    group_cols: set[str] = set()
    for term in parsed.random:
        for c in _required(term.expr, lang):
            needed.setdefault(c, str(term))
            term_cols.add(c)
        for c in term.factors:
            needed.setdefault(c, str(term))
            group_cols.add(c)
    if isinstance(trials, str):
        needed.setdefault(trials, "trials=")
    arg_cols = set()
    for arg, what in ((weights, "weights="), (offset, "offset=")):
        if isinstance(arg, str):
            needed.setdefault(arg, what)
            arg_cols.add(arg)
    parts = [parsed.fixed, *parsed.offsets, *(t.expr for t in parsed.random)]
    parts += [e for e in (parsed.response, parsed.failures) if e and not _is_column_ref(e, data)]
    _check_names(needed, data)
    _check_columns(text, needed, data)
    w_all = None if weights is None else _row_argument(weights, data, "weights")
    o_all = None if offset is None else _row_argument(offset, data, "offset")
    main_response = (
        {parsed.response.strip("`")}
        if _is_column_ref(parsed.response, data)
        else set(_required(_expr_spec(parsed.response), lang))
    )
    for c in sorted(main_response & (term_cols | group_cols)):
        warnings.warn(
            f"the response `{c}` is also on the right-hand side of `{text}`: it predicts "
            "itself; remove it from the predictors",
            SuspiciousDataWarning,
            stacklevel=2,
        )

    # 2. the model frame: used columns, rows with missing / non-finite values dropped
    used = list(needed)
    n_input = len(data)
    if n_input == 0:
        raise DesignError("data has no rows")
    frame = data.loc[:, used]
    bad = frame.isna()
    for c in used:
        complex_col = pd.api.types.is_complex_dtype(frame[c].dtype)  # refused below
        if c not in response_cols and _is_numeric(frame[c]) and not complex_col:
            vals = frame[c].to_numpy(dtype=float, na_value=np.nan)
            bad[c] = bad[c].to_numpy() | ~np.isfinite(vals)
    for arr, what in ((w_all, weights), (o_all, offset)):
        if arr is not None and not isinstance(what, str):  # an array: its NAs drop rows too
            bad["weights=" if arr is w_all else "offset="] = np.isnan(arr)
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
            stacklevel=2,
        )
        frame = frame.loc[~drop_mask]
    row_index = np.flatnonzero(~drop_mask)
    # nullable extension dtypes (Int64, Float64, boolean) -> plain NumPy; no NA is left
    for c in used:
        dt = frame[c].dtype
        if isinstance(dt, pd.api.extensions.ExtensionDtype) and _is_numeric(frame[c]):
            frame[c] = frame[c].to_numpy(dtype=bool if dt == "boolean" else float)

    _prepare_columns(frame, term_cols - response_cols, group_cols, parts)

    # 3. response
    y, n_trials, success = _response(parsed, frame, fam, trials, row_index, lang, w_all is not None)
    prior_w = None
    if w_all is not None:
        w_lab = f"`{weights}`" if isinstance(weights, str) else "weights="
        y, n_trials, prior_w = _apply_weights(
            parsed, fam, trials, y, n_trials, w_all[row_index], w_lab, frame.index
        )

    # 4. fixed part; unused levels of categorical predictors are dropped (with a warning)
    dtypes = {c: str(frame[c].dtype) for c in used}
    trials_col = trials if isinstance(trials, str) else None
    predictors = tuple(
        c
        for c in used
        if c not in response_cols and c != trials_col and (c not in arg_cols or c in term_cols)
    )
    for c in predictors:
        col = frame[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            unused = [v for v in col.cat.categories if v not in set(col.unique())]
            if unused and c not in group_cols:
                warnings.warn(
                    f"categorical column `{c}` has unused level(s) "
                    f"{', '.join(repr(v) for v in unused)}; they are dropped",
                    RankDeficiencyWarning,
                    stacklevel=2,
                )
            if unused:
                frame[c] = col.cat.remove_unused_categories()
    categories = {
        c: tuple(frame[c].cat.categories)
        for c in used
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    mm, X_all, mm_names = _matrix(frame, parsed.fixed, "fixed-effect term", lang)
    names_all = [r_name(c) for c in mm_names]
    drop = _aliased(X_all) if X_all.shape[1] else []
    if drop:
        warnings.warn(
            "fixed-effect model matrix is rank deficient so dropping "
            f"{len(drop)} column(s): {', '.join(names_all[j] for j in drop)}",
            RankDeficiencyWarning,
            stacklevel=2,
        )
    keep = tuple(j for j in range(X_all.shape[1]) if j not in set(drop))
    X = np.ascontiguousarray(X_all[:, keep])
    x_names = tuple(names_all[j] for j in keep)
    levels = _categorical_levels(mm.model_spec, frame, lang)
    sep = None
    if fam.is_binomial:
        sep = detect_separation(X, y, n_trials, x_names)
        if sep is not None:
            warnings.warn(separation_message(sep), IdentifiabilityWarning, stacklevel=2)

    # offsets
    offset_vec = np.zeros(len(frame))
    offset_specs = []
    for off in parsed.offsets:
        vals, spec = _eval_expr(frame, off, "offset", lang)
        if not np.isfinite(vals).all():
            i = int(np.flatnonzero(~np.isfinite(vals))[0])
            hint = "log of a zero exposure?" if vals[i] == -np.inf else "log of a negative value?"
            given = ", ".join(
                f"{c} = {_value(frame[c].iloc[i])}"
                for c in sorted(_required(_expr_spec(off), lang))
                if c in frame.columns
            )
            raise DataError(
                f"offset({off}) is {vals[i]:g} at row {_row(frame.index, i)}"
                f"{f' ({given})' if given and hint.endswith('value?') else ''}; offsets must "
                f"be finite ({hint})"
            )
        offset_vec += vals
        offset_specs.append(spec)
    if o_all is not None:
        offset_vec += o_all[row_index]

    # 5. random-effect blocks
    blocks: list[RandomBlock] = []
    block_enc: list[_BlockEncoder] = []
    terms = _expand_double_bars(parsed.random, frame, lang)
    for term, code in terms:
        zm, Z, z_names = _matrix(frame, term.expr, f"random-effect term in `{term}`:", lang, code)
        Z = np.ascontiguousarray(Z)
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effect term `{term}` has no columns")
        for c, lv in _categorical_levels(zm.model_spec, frame, lang).items():
            levels.setdefault(c, lv)
        index, labels, per_levels, combos = _group_codes(frame, term.factors)
        q = len(labels) * Z.shape[1]
        if q > len(frame):  # lme4's check.nobs.vs.nRE (as glmer, which allows q = n)
            raise DesignError(
                f"random-effect term `{term}` has {q} random effects ({len(labels)} levels x "
                f"{Z.shape[1]} column(s)) for {len(frame)} observations: its variance "
                "parameters are not identifiable; use fewer columns (e.g. (1 | "
                f"{term.group})) or a grouping factor with fewer levels"
            )
        if len(labels) < 2:
            raise DesignError(
                f"grouping factor `{term.group}` in `{term}` has only one level "
                f"({labels[0]!r}); a random effect needs at least two"
            )
        if fam.spec.response_kind == "binary" and len(labels) == len(frame):
            warnings.warn(
                f"grouping factor `{term.group}` has as many levels as rows "
                f"({len(labels)}) under a bernoulli response: the random-effect variance "
                "is not identifiable",
                IdentifiabilityWarning,
                stacklevel=2,
            )
        elif fam.has_dispersion and len(labels) == len(frame):
            warnings.warn(
                f"grouping factor `{term.group}` has one observation per level ({len(labels)} "
                f"levels, {len(frame)} rows) in a {fam.name} model: its variance cannot be "
                "told apart from the residual variance; drop the term or use a grouping "
                "factor with repeated observations",
                IdentifiabilityWarning,
                stacklevel=2,
            )
        elif len(labels) < 5:
            warnings.warn(
                f"grouping factor `{term.group}` has only {len(labels)} levels: its SD is "
                "weakly identified (use at least 5 levels, or treat it as a fixed effect)",
                IdentifiabilityWarning,
                stacklevel=2,
            )
        blocks.append(
            RandomBlock(
                group=term.group,
                terms=tuple(r_name(c) for c in z_names),
                Z=Z,
                index=index,
                levels=labels,
                correlated=term.correlated and Z.shape[1] > 1,
            )
        )
        block_enc.append(
            _BlockEncoder(
                term, zm.model_spec, labels, tuple(tuple(lv) for lv in per_levels), combos
            )
        )
    _check_duplicate_terms([t for t, _ in terms], blocks)
    for spec in offset_specs:
        for c, lv in _categorical_levels(spec, frame, lang).items():
            levels.setdefault(c, lv)
    for c in predictors:  # any other non-numeric predictor: its observed levels
        if c not in group_cols and not _is_numeric(frame[c]):
            levels.setdefault(c, tuple(_factor_levels(frame[c])))

    encoder = _Encoder(
        parsed=parsed,
        fixed_spec=mm.model_spec,
        fixed_keep=keep,
        offset_specs=tuple(offset_specs),
        blocks=tuple(block_enc),
        predictors=predictors,
        dtypes=dtypes,
        categories=categories,
        lang=lang,
        levels=levels,
        offset_column=offset if isinstance(offset, str) else None,
        offset_array=offset is not None and not isinstance(offset, str),
    )
    return Design(
        y=y,
        trials=n_trials,
        offset=offset_vec,
        X=X,
        x_names=x_names,
        blocks=tuple(blocks),
        family=fam,
        formula=text,
        response_name=f"cbind({parsed.response}, {parsed.failures})"
        if parsed.is_cbind
        else (
            parsed.response.strip("`") if _is_column_ref(parsed.response, data) else parsed.response
        ),
        success_level=success,
        n_input=n_input,
        n_dropped=n_dropped,
        dropped_columns=tuple(names_all[j] for j in drop),
        row_index=row_index,
        encoder=encoder,
        separation=sep,
        weights=prior_w,
    )


# --------------------------------------------------------------------------- new data
@dataclass(frozen=True, eq=False)
class NewData:
    """New data encoded with a design's state.

    Attributes
    ----------
    X : ndarray
        Fixed-effect matrix (same columns as the design).
    offset : ndarray
        Offsets.
    Z : tuple of ndarray
        Per-block term values.
    index : tuple of ndarray
        Per-block level index; ``-1`` marks a level not seen in the fitted data.
    unseen : tuple of ndarray of bool
        Per-block flags of rows whose level is new.
    new_levels : tuple of tuple of str
        Per-block labels of the unseen levels, in order of first appearance.
    """

    X: np.ndarray
    offset: np.ndarray
    Z: tuple[np.ndarray, ...]
    index: tuple[np.ndarray, ...]
    unseen: tuple[np.ndarray, ...]
    new_levels: tuple[tuple[str, ...], ...]

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])


def _check_new_frame(enc: _Encoder, newdata: pd.DataFrame, need_groups: bool) -> pd.DataFrame:
    """Validate ``newdata`` and return the frame to hand to formulaic.

    Checks missing columns, missing or non-finite values, numeric columns given as another
    dtype, and levels of categorical predictors not seen in the fit (formulaic would encode
    those silently as the reference level).  Categorical predictors are returned as
    categoricals with the training levels, so a column of another dtype (``"1"`` for ``1``)
    is encoded the same way.
    """
    group_cols = {f for b in enc.blocks for f in b.term.factors}
    needed = [c for c in enc.predictors if need_groups or c not in group_cols]
    missing = [c for c in needed if c not in newdata.columns]
    if missing:
        raise DesignError(
            f"newdata is missing column(s) {', '.join(f'`{c}`' for c in missing)} used by "
            f"the formula `{enc.parsed.formula}`"
        )
    frame = newdata.loc[:, [c for c in enc.predictors if c in newdata.columns]].reset_index(
        drop=True
    )
    for c in needed:
        col = frame[c]
        na = col.isna().to_numpy()
        if na.any():
            raise DesignError(
                f"newdata column `{c}` has {int(na.sum())} missing value(s) (first at row "
                f"{_row(newdata.index, int(np.flatnonzero(na)[0]))})"
            )
        if c in group_cols and c not in enc.levels:
            continue  # group labels are matched by value or by their string form
        was_numeric = enc.dtypes[c].lower().startswith(("int", "float", "uint", "bool"))
        if was_numeric:
            if not _is_numeric(col):
                raise DesignError(
                    f"column `{c}` was numeric ({enc.dtypes[c]}) in the fitted data but is "
                    f"{col.dtype} in newdata (first value {col.iloc[0]!r}); convert it with "
                    "pd.to_numeric"
                )
            vals = col.to_numpy(dtype=float)
            if not np.isfinite(vals).all():
                i = int(np.flatnonzero(~np.isfinite(vals))[0])
                raise DesignError(
                    f"newdata column `{c}` is {vals[i]:g} at row {_row(newdata.index, i)}; "
                    "values must be finite"
                )
        if c in enc.levels:
            seen = enc.levels[c]
            codes = _codes(col, seen)
            if (codes < 0).any():
                new = list(dict.fromkeys(str(v) for v in col.to_numpy()[codes < 0]))
                shown = ", ".join(repr(v) for v in new[:6]) + (", ..." if len(new) > 6 else "")
                raise DesignError(
                    f"column `{c}` has level(s) {shown} not seen in the fit (levels: "
                    f"{', '.join(repr(str(v)) for v in seen[:10])}"
                    f"{', ...' if len(seen) > 10 else ''})"
                )
            if not was_numeric:
                frame[c] = pd.Categorical.from_codes(codes, categories=list(seen))
    return frame


def _apply_spec(spec: Any, frame: pd.DataFrame, what: str, lang: Lang) -> np.ndarray:
    """Materialize ``spec`` on new data with the fitted data's state (the means, SDs,
    polynomial coefficients and knots of stateful transforms, the levels of factors);
    formulaic's data-mismatch warnings become errors."""
    # thread-safe (catch_warnings is not): formulaic's only warning, DataMismatchWarning (a
    # level not seen in the fit, encoded silently as the reference), only arises when
    # encoding new data, where it must be an error wherever it is raised
    with erroring_warnings(FormulaicWarning):
        try:
            mm = spec.get_model_matrix(lang.frame(frame), na_action="raise")
            return mm.to_numpy(dtype=float)
        except (FormulaicWarning, FormulaicError) as exc:
            raise DesignError(
                f"newdata cannot be encoded like the fitted data in {what}: {lang.show(str(exc))}"
            ) from exc


def _new_offset_argument(enc: _Encoder, newdata: pd.DataFrame) -> np.ndarray | float:
    """The ``offset=`` argument's values for new data: its column, which must be there."""
    if getattr(enc, "offset_array", False):
        raise DesignError(
            "the model was fitted with offset= given as an array, so the offsets of new rows "
            "are unknown; fit with offset='column' (a column of data) to predict on newdata"
        )
    col = getattr(enc, "offset_column", None)
    if col is None:
        return 0.0
    if col not in newdata.columns:
        raise DesignError(
            f"newdata is missing column `{col}`: the model was fitted with offset='{col}'"
        )
    c = newdata[col]
    if not _is_numeric(c):
        raise DesignError(f"newdata column `{col}` (offset=) must be numeric; it is {c.dtype}")
    vals = c.to_numpy(dtype=float, na_value=np.nan)
    if not np.isfinite(vals).all():
        i = int(np.flatnonzero(~np.isfinite(vals))[0])
        raise DesignError(
            f"newdata column `{col}` (offset=) is {vals[i]:g} at row {_row(newdata.index, i)}; "
            "offsets must be finite"
        )
    return vals


def encode_new_data(design: Design, newdata: pd.DataFrame, need_groups: bool = True) -> NewData:
    """Encode new data the same way as the fitted data.

    Parameters
    ----------
    design : Design
        A design from :func:`build_design`.
    newdata : pandas.DataFrame
        Must have every predictor column (and grouping columns when ``need_groups``).
    need_groups : bool
        Whether grouping columns are required (False for population-level predictions).

    Returns
    -------
    NewData
        Rows of unseen group levels have index ``-1`` and are flagged in ``unseen``.

    Raises
    ------
    DesignError
        Missing columns, missing or non-finite values, a numeric column given as strings,
        or a level of a categorical predictor that the fit has not seen.
    """
    enc: _Encoder = design.encoder
    if not isinstance(newdata, pd.DataFrame):
        raise DesignError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    if len(newdata) == 0:
        raise DesignError("newdata has no rows")
    frame = _check_new_frame(enc, newdata, need_groups)
    n = len(frame)
    X = _apply_spec(enc.fixed_spec, frame, "the fixed part", enc.lang)
    X = X[:, list(enc.fixed_keep)] if X.shape[1] else X.reshape(n, 0)
    offset = np.zeros(n)
    for spec, off in zip(enc.offset_specs, enc.parsed.offsets, strict=True):
        with np.errstate(all="ignore"):
            vals = _apply_spec(spec, frame, f"offset({off})", enc.lang)[:, 0]
        if not np.isfinite(vals).all():
            i = int(np.flatnonzero(~np.isfinite(vals))[0])
            raise DesignError(
                f"offset({off}) is {vals[i]:g} at row {_row(newdata.index, i)} of newdata; "
                "offsets must be finite"
            )
        offset += vals
    offset += _new_offset_argument(enc, newdata)
    Zs, idxs, unseen, new_levels = [], [], [], []
    for b in enc.blocks:
        Zs.append(_apply_spec(b.spec, frame, f"`{b.term}`", enc.lang))
        factors = list(b.term.factors)
        if all(f in frame.columns for f in factors):
            codes = [_codes(frame[f], lv) for f, lv in zip(factors, b.factor_levels, strict=True)]
            lookup = {combo: i for i, combo in enumerate(b.combos)}
            idx = np.fromiter(
                (lookup.get(combo, -1) for combo in zip(*codes, strict=True)),
                dtype=np.int64,
                count=n,
            )
            labels = frame[factors].astype(str).agg(":".join, axis=1).to_numpy(dtype=str)
        else:
            labels = np.full(n, "<new>")
            idx = np.full(n, -1, dtype=np.int64)
        flags = idx < 0
        idxs.append(idx)
        unseen.append(flags)
        new_levels.append(tuple(str(v) for v in pd.unique(labels[flags])))
    return NewData(X, offset, tuple(Zs), tuple(idxs), tuple(unseen), tuple(new_levels))
