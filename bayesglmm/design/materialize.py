"""The formulaic boundary: R formula text -> float matrices on the model frame.

Every model matrix of the design (the fixed part, each random term's columns, offsets and
response expressions) is materialized here, with an explicit ``PandasMaterializer`` on the
frame that :class:`~bayesglmm.formula.rlang.Lang` gives safe names.  A NaN or infinity
from a transform is reported naming the rows and inputs; any other failure of formulaic,
pandas or NumPy becomes one of our errors with the cause chained.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.materializers import PandasMaterializer

from bayesglmm.design.naming import first_line, r_name, row_label, value_text
from bayesglmm.errors import DataError, DesignError, FormulaError
from bayesglmm.formula.rlang import Lang

__all__ = [
    "categorical_levels",
    "columns_used",
    "eval_expr",
    "expr_spec",
    "is_column_ref",
    "model_matrix",
]


def model_matrix(
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
            f"cannot build {what} from `{spec}`: {lang.show(first_line(exc))}"
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
    given = ", ".join(f"{c} = {value_text(frame[c].iloc[i])}" for c in inputs)
    shown = ", ".join(row_label(frame.index, int(r)) for r in rows[:5]) + (
        ", ..." if rows.size > 5 else ""
    )
    hint = (
        "log or sqrt of a negative or zero value?"
        if re.search(r"log|sqrt", name)
        else "check the transform's input values."
    )
    raise DataError(
        f"{what} `{r_name(name)}` is {vals[i]:g} at row {row_label(frame.index, i)}"
        f"{f' ({given})' if given else ''}; {rows.size} row(s) give a non-finite value "
        f"(rows {shown}); {hint} Fix or drop those rows, or change the transform"
    )


def expr_spec(expr: str) -> str:
    """Formulaic spec giving the value of one expression as a single column.

    The expression is wrapped in ``I()``: ``0 + n - s`` would *remove* ``s``, and
    ``0 + log(w) + u`` would give two columns, where ``I(n - s)`` is the difference.
    """
    return f"0 + I({expr})"


def eval_expr(frame: pd.DataFrame, expr: str, what: str, lang: Lang) -> tuple[np.ndarray, Any]:
    """Evaluate ``expr`` on ``frame`` as one float column; also return its model spec."""
    code = lang.translate(expr_spec(expr)).text
    try:
        with np.errstate(all="ignore"):  # log(0) etc. are reported below, naming the row
            mm = PandasMaterializer(lang.frame(frame)).get_model_matrix(
                Formula(code), na_action="ignore"
            )
    except Exception as exc:
        raise FormulaError(
            f"cannot evaluate {what} `{expr}`: {lang.show(first_line(exc))}"
        ) from exc
    if mm.shape[1] != 1:
        raise FormulaError(f"{what} `{expr}` must give one numeric column, not {mm.shape[1]}")
    return mm.to_numpy(dtype=float)[:, 0].copy(), mm.model_spec


def columns_used(expr: str, lang: Lang) -> list[str]:
    """Columns (or unknown names) that R text uses, in order of appearance."""
    return list(dict.fromkeys(c for c, _ in lang.translate(expr).columns))


def is_column_ref(expr: str, data: pd.DataFrame) -> bool:
    return expr in data.columns or (expr.startswith("`") and expr.strip("`") in data.columns)


def categorical_levels(spec: Any, frame: pd.DataFrame, lang: Lang) -> dict[str, tuple[Any, ...]]:
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
