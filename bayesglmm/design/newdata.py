"""New data encoded the way the fitted data were: :func:`encode_new_data` -> :class:`NewData`.

The formulaic specs kept in the design's :class:`~bayesglmm.design.encoder.Encoder` carry
the fitted data's state (the means and SDs of ``scale(x)``, the coefficients of
``poly(x, 2)``, the levels of factors); new rows are checked first (missing columns and
values, a numeric column given as text, a level the fit has not seen), and rows of an
unseen group level get index ``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic.errors import FormulaicError, FormulaicWarning

from bayesglmm.design.encoder import Encoder
from bayesglmm.design.levels import is_numeric, level_codes
from bayesglmm.design.naming import row_label
from bayesglmm.design.types import Design
from bayesglmm.errors import DesignError
from bayesglmm.formula.rlang import Lang
from bayesglmm.quiet import erroring_warnings

__all__ = ["NewData", "encode_new_data"]


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


def _check_new_frame(enc: Encoder, newdata: pd.DataFrame, need_groups: bool) -> pd.DataFrame:
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
                f"{row_label(newdata.index, int(np.flatnonzero(na)[0]))})"
            )
        if c in group_cols and c not in enc.levels:
            continue  # group labels are matched by value or by their string form
        was_numeric = enc.dtypes[c].lower().startswith(("int", "float", "uint", "bool"))
        if was_numeric:
            if not is_numeric(col):
                raise DesignError(
                    f"column `{c}` was numeric ({enc.dtypes[c]}) in the fitted data but is "
                    f"{col.dtype} in newdata (first value {col.iloc[0]!r}); convert it with "
                    "pd.to_numeric"
                )
            vals = col.to_numpy(dtype=float)
            if not np.isfinite(vals).all():
                i = int(np.flatnonzero(~np.isfinite(vals))[0])
                raise DesignError(
                    f"newdata column `{c}` is {vals[i]:g} at row {row_label(newdata.index, i)}; "
                    "values must be finite"
                )
        if c in enc.levels:
            seen = enc.levels[c]
            codes = level_codes(col, seen)
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


def _new_offset_argument(enc: Encoder, newdata: pd.DataFrame) -> np.ndarray | float:
    """The ``offset=`` argument's values for new data: its column, which must be there."""
    if enc.offset_array:
        raise DesignError(
            "the model was fitted with offset= given as an array, so the offsets of new rows "
            "are unknown; fit with offset='column' (a column of data) to predict on newdata"
        )
    col = enc.offset_column
    if col is None:
        return 0.0
    if col not in newdata.columns:
        raise DesignError(
            f"newdata is missing column `{col}`: the model was fitted with offset='{col}'"
        )
    c = newdata[col]
    if not is_numeric(c):
        raise DesignError(f"newdata column `{col}` (offset=) must be numeric; it is {c.dtype}")
    vals = c.to_numpy(dtype=float, na_value=np.nan)
    if not np.isfinite(vals).all():
        i = int(np.flatnonzero(~np.isfinite(vals))[0])
        raise DesignError(
            f"newdata column `{col}` (offset=) is {vals[i]:g} at row {row_label(newdata.index, i)}; "
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
    enc: Encoder = design.encoder
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
                f"offset({off}) is {vals[i]:g} at row {row_label(newdata.index, i)} of newdata; "
                "offsets must be finite"
            )
        offset += vals
    offset += _new_offset_argument(enc, newdata)
    Zs, idxs, unseen, new_levels = [], [], [], []
    for b in enc.blocks:
        Zs.append(_apply_spec(b.spec, frame, f"`{b.term}`", enc.lang))
        factors = list(b.term.factors)
        if all(f in frame.columns for f in factors):
            codes = [
                level_codes(frame[f], lv) for f, lv in zip(factors, b.factor_levels, strict=True)
            ]
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
