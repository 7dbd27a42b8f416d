"""Which columns a formula uses, and where: checked against the data before anything is read.

:func:`used_columns` walks the parsed formula (response, fixed part, ``offset()`` terms,
random terms and their grouping factors, ``trials=``, ``weights=``, ``offset=``) and records
each column with the first place that uses it, for the messages; :func:`check_columns`
refuses a duplicated column name and an unknown column (with close matches and a caret
under it in the formula).
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesglmm.design.materialize import columns_used, expr_spec, is_column_ref
from bayesglmm.errors import DesignError, FormulaError, SuspiciousDataWarning
from bayesglmm.formula.bars import ParsedFormula
from bayesglmm.formula.rlang import Lang

__all__ = ["UsedColumns", "check_columns", "used_columns", "warn_response_on_right"]


@dataclass(frozen=True)
class UsedColumns:
    """The columns a formula and the ``trials=`` / ``weights=`` / ``offset=`` arguments use.

    Attributes
    ----------
    needed : dict of str to str
        Every used column, in order of first use, with the formula part (or argument) that
        first uses it.
    response : set of str
        Columns of the response (and of the failures of ``cbind``).
    main_response : set of str
        Columns of the response proper (the successes of ``cbind``).
    terms : set of str
        Columns in the fixed part, the ``offset()`` terms and the random terms' left-hand
        sides.
    groups : set of str
        Grouping-factor columns.
    arguments : set of str
        Columns named by ``weights=`` and ``offset=``.
    trials : str or None
        The column named by ``trials=``.
    parts : list of str
        The R texts a column may be wrapped in ``C()`` / ``factor()`` in.
    """

    needed: dict[str, str]
    response: set[str]
    main_response: set[str]
    terms: set[str]
    groups: set[str]
    arguments: set[str]
    trials: str | None
    parts: list[str]

    def predictors(self) -> tuple[str, ...]:
        """The used columns that are predictors or grouping factors, in order of first use.

        A ``weights=`` / ``offset=`` column is one only when a term also uses it.
        """
        return tuple(
            c
            for c in self.needed
            if c not in self.response
            and c != self.trials
            and (c not in self.arguments or c in self.terms)
        )


def _expr_columns(expr: str, data: pd.DataFrame, lang: Lang) -> set[str]:
    """Columns of a response expression (a bare or backquoted column name, or R text)."""
    if is_column_ref(expr, data):
        return {expr.strip("`")}
    return set(columns_used(expr_spec(expr), lang))


def used_columns(
    parsed: ParsedFormula,
    data: pd.DataFrame,
    lang: Lang,
    trials: object,
    weights: object,
    offset: object,
) -> UsedColumns:
    """Every column the formula (stateful transforms included) and the arguments use."""
    needed: dict[str, str] = {}
    response_cols: set[str] = set()
    for expr in (parsed.response, parsed.failures):
        if expr is None:
            continue
        cols = _expr_columns(expr, data, lang)
        response_cols |= cols
        for c in cols:
            needed.setdefault(c, expr)
    for c in columns_used(parsed.fixed, lang):
        needed.setdefault(c, parsed.fixed)
    for off in parsed.offsets:
        for c in columns_used(expr_spec(off), lang):
            needed.setdefault(c, f"offset({off})")
    term_cols = set(columns_used(parsed.fixed, lang))
    for off in parsed.offsets:
        term_cols |= set(columns_used(expr_spec(off), lang))
    group_cols: set[str] = set()
    for term in parsed.random:
        for c in columns_used(term.expr, lang):
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
    parts += [e for e in (parsed.response, parsed.failures) if e and not is_column_ref(e, data)]
    return UsedColumns(
        needed=needed,
        response=response_cols,
        main_response=_expr_columns(parsed.response, data, lang),
        terms=term_cols,
        groups=group_cols,
        arguments=arg_cols,
        trials=trials if isinstance(trials, str) else None,
        parts=parts,
    )


def check_columns(formula: str, needed: dict[str, str], data: pd.DataFrame) -> None:
    """Refuse a duplicated column name, then an unknown column (:class:`FormulaError`)."""
    check_unique_names(needed, data)
    check_columns_exist(formula, needed, data)


def warn_response_on_right(cols: UsedColumns, formula: str) -> None:
    """Warn when a column of the response is also a predictor or a grouping factor."""
    for c in sorted(cols.main_response & (cols.terms | cols.groups)):
        warnings.warn(
            f"the response `{c}` is also on the right-hand side of `{formula}`: it predicts "
            "itself; remove it from the predictors",
            SuspiciousDataWarning,
            stacklevel=3,
        )


def check_columns_exist(formula: str, needed: dict[str, str], data: pd.DataFrame) -> None:
    """Raise naming the first unknown column, with close matches and a caret."""
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


def check_unique_names(needed: dict[str, str], data: pd.DataFrame) -> None:
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
