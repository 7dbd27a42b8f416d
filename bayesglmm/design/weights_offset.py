"""The prior weights (``weights=``) and offsets (``offset()`` terms and ``offset=``).

``row_argument`` reads a ``weights=`` / ``offset=`` argument over the input rows (NaN where
missing, so the model frame drops those rows); ``apply_weights`` gives them lme4's meaning
for the family (trials of a binomial proportion, case weights, gaussian precision weights);
``offsets`` adds the formula's ``offset()`` terms and the ``offset=`` argument.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.design.levels import is_numeric
from bayesglmm.design.materialize import columns_used, eval_expr, expr_spec
from bayesglmm.design.naming import row_label, value_text
from bayesglmm.errors import DataError, SuspiciousDataWarning
from bayesglmm.families import Family
from bayesglmm.formula.bars import ParsedFormula
from bayesglmm.formula.rlang import Lang

__all__ = ["apply_weights", "offsets", "row_argument"]


def row_argument(arg: Any, data: pd.DataFrame, what: str) -> np.ndarray:
    """``weights=`` / ``offset=`` (a column name or one value per row of ``data``) as floats
    over the input rows, NaN where missing; infinite values raise (lme4: "must be finite")."""
    n_input = len(data)
    if isinstance(arg, str):
        col = data[arg]
        if not (is_numeric(col) or pd.api.types.is_bool_dtype(col)):
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
            f"{what} {label} is {vals[i]:g} at row {row_label(data.index, i)}; {what} must be "
            f"finite ({int(inf.sum())} infinite value(s))"
        )
    if what == "weights":
        neg = vals < 0
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise DataError(
                f"weights {label} is {vals[i]:g} at row {row_label(data.index, i)}; weights must be "
                f">= 0 ({int(neg.sum())} negative value(s))"
            )
    return vals


def apply_weights(
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
                f"found {y[i]:g} at row {row_label(index, i)}. For counts write "
                f"cbind(successes, failures)"
            )
        frac = np.abs(w - np.round(w))
        if frac.max() > 1e-8:
            i = int(np.argmax(frac))
            raise DataError(
                f"with family='binomial' and a proportion response, weights are the numbers "
                f"of trials and must be whole numbers; {label} is {w[i]:g} at row "
                f"{row_label(index, i)}"
            )
        s = y * w
        frac = np.abs(s - np.round(s))
        if frac.max() > 1e-8:
            i = int(np.argmax(frac))
            raise DataError(
                f"non-integer #successes (as glmer warns): `{expr}` * {label} = {y[i]:g} * "
                f"{w[i]:g} = {s[i]:g} at row {row_label(index, i)}; with family='binomial', weights "
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
                f"= {w[i]:g} at row {row_label(index, i)}); each row's log-likelihood is "
                "multiplied by its weight (glmer warns the same and rounds inside its AIC)",
                SuspiciousDataWarning,
                stacklevel=3,
            )
    return y, n_trials, w


def offsets(
    offset_terms: Sequence[str],
    frame: pd.DataFrame,
    lang: Lang,
    offset_arg: np.ndarray | None,
    row_index: np.ndarray,
) -> tuple[np.ndarray, tuple[Any, ...]]:
    """The offset of each row of the model frame, and the specs of the ``offset()`` terms.

    ``offset_terms`` are the R texts inside the formula's ``offset()`` terms (each must be
    finite at every row); ``offset_arg`` is the ``offset=`` argument over the input rows,
    of which the model frame keeps ``row_index``.
    """
    total = np.zeros(len(frame))
    specs = []
    for off in offset_terms:
        vals, spec = eval_expr(frame, off, "offset", lang)
        if not np.isfinite(vals).all():
            i = int(np.flatnonzero(~np.isfinite(vals))[0])
            hint = "log of a zero exposure?" if vals[i] == -np.inf else "log of a negative value?"
            given = ", ".join(
                f"{c} = {value_text(frame[c].iloc[i])}"
                for c in sorted(columns_used(expr_spec(off), lang))
                if c in frame.columns
            )
            raise DataError(
                f"offset({off}) is {vals[i]:g} at row {row_label(frame.index, i)}"
                f"{f' ({given})' if given and hint.endswith('value?') else ''}; offsets must "
                f"be finite ({hint})"
            )
        total += vals
        specs.append(spec)
    if offset_arg is not None:
        total += offset_arg[row_index]
    return total, tuple(specs)
