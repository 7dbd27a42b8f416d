"""One model frame, built once: formula + DataFrame -> frozen :class:`Design`.

The steps mirror lme4's ``lFormula``/``mkReTrms``:

1. parse the formula (:mod:`bayesglmm.formula`) and check that every column exists;
2. build the model frame from the used columns, dropping rows with a missing or non-finite
   value (counted and reported, as lme4 does);
3. validate the response for the family;
4. build the fixed-effect matrix with formulaic, drop aliased columns;
5. build one :class:`~bayesglmm.design_types.RandomBlock` per random term: per-row term
   values and an integer group index (never a dense indicator matrix);
6. keep the encoding state so new data can be encoded the same way
   (:func:`encode_new_data`).
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.materializers import PandasMaterializer

from bayesglmm.design_types import Design, RandomBlock
from bayesglmm.errors import (
    DataError,
    DesignError,
    DroppedRowsWarning,
    FormulaError,
    IdentifiabilityWarning,
    RankDeficiencyWarning,
)
from bayesglmm.families import Family, get_family
from bayesglmm.formula import ParsedFormula, RandomTerm, parse_formula

__all__ = ["build_design", "encode_new_data", "NewData", "r_name"]


# --------------------------------------------------------------------------- names
def r_name(name: str) -> str:
    """Convert a formulaic column name to R's style (``"a[T.b]"`` -> ``"ab"``)."""
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    return re.sub(r"\[([^\]]*)\]", r"\1", name)


def _materialize(frame: pd.DataFrame, spec: str) -> Any:
    return PandasMaterializer(frame).get_model_matrix(Formula(spec), na_action="raise")


def _required(expr: str) -> set[str]:
    try:
        return set(Formula(expr).required_variables)
    except Exception as exc:  # formulaic's own syntax errors
        raise FormulaError(f"cannot parse `{expr}`: {exc}") from exc


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
        pos = formula.find(col)
        caret = f"\n    {formula}\n    {' ' * pos}^" if pos >= 0 else ""
        raise FormulaError(f"unknown column `{col}` in `{where}`{hint}{caret}")


# --------------------------------------------------------------------------- levels
def _factor_levels(col: pd.Series) -> list[Any]:
    """Levels in R's order: category order for categoricals, else sorted unique values."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        used = set(col.dropna().unique())
        return [c for c in col.cat.categories if c in used]
    vals = pd.unique(col.dropna())
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _group_codes(
    frame: pd.DataFrame, factors: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...], list[list[Any]]]:
    """Integer index and labels of the (interaction of the) grouping factors."""
    per_levels = [_factor_levels(frame[f]) for f in factors]
    codes = []
    for f, lev in zip(factors, per_levels, strict=True):
        c = pd.Categorical(frame[f], categories=lev).codes.astype(np.int64)
        codes.append(c)
    if len(factors) == 1:
        labels = tuple(str(v) for v in per_levels[0])
        return codes[0], labels, per_levels
    sizes = [len(lv) for lv in per_levels]
    combined = np.ravel_multi_index(codes, sizes)
    used, index = np.unique(combined, return_inverse=True)
    parts = np.unravel_index(used, sizes)
    labels = tuple(
        ":".join(str(per_levels[j][parts[j][i]]) for j in range(len(factors)))
        for i in range(used.size)
    )
    return index.astype(np.int64), labels, per_levels


# --------------------------------------------------------------------------- response
def _two_level_response(col: pd.Series, name: str) -> tuple[np.ndarray, str | None]:
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=float), None
    if pd.api.types.is_numeric_dtype(col):
        y = col.to_numpy(dtype=float, copy=True)
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"response `{name}` must be 0/1 for the bernoulli family; found {y[i]:g} "
                f"(row {col.index[i]!r}) and {int(bad.sum())} value(s) outside {{0, 1}}"
            )
        return y, None
    levels = _factor_levels(col)
    if len(levels) != 2:
        shown = ", ".join(repr(str(v)) for v in levels[:6])
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
            f"{index[i]!r} ({int(bad.sum())} bad value(s))"
        )


def _response(
    parsed: ParsedFormula,
    frame: pd.DataFrame,
    family: Family,
    trials: str | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    def values(expr: str) -> np.ndarray:
        if _is_column_ref(expr, frame):
            return frame[expr.strip("`")].to_numpy(dtype=float, copy=True)
        mm = _materialize(frame, f"0 + {expr}")
        if mm.shape[1] != 1:
            raise FormulaError(f"response expression `{expr}` must give one numeric column")
        return mm.to_numpy(dtype=float)[:, 0]

    if parsed.is_cbind:
        if family.name != "binomial":
            raise DataError(f"cbind() response needs family='binomial', not '{family.name}'")
        s, f = values(parsed.response), values(parsed.failures or "")
        _check_counts(s, parsed.response, frame.index, "successes")
        _check_counts(f, parsed.failures or "", frame.index, "failures")
        return s, s + f, None
    expr = parsed.response
    if family.name == "bernoulli":
        if _is_column_ref(expr, frame):
            y, success = _two_level_response(frame[expr.strip("`")], expr)
            return y, None, success
        y = values(expr)
        _two_level_response(pd.Series(y, index=frame.index), expr)
        return y, None, None
    y = values(expr)
    if family.name == "binomial":
        if trials is None:
            raise DataError(
                "family='binomial' needs cbind(successes, failures) as the response, or a "
                "proportion response with trials='column'"
            )
        n = (
            frame[trials].to_numpy(dtype=float, copy=True)
            if isinstance(trials, str)
            else np.asarray(trials, dtype=float)[frame.index.to_numpy()]
        )
        tname = trials if isinstance(trials, str) else "trials"
        _check_counts(n, tname, frame.index, "trials")
        zero = n == 0
        if zero.any():
            raise DataError(
                f"`{tname}` is 0 in {int(zero.sum())} row(s) (first at row "
                f"{frame.index[int(np.flatnonzero(zero)[0])]!r}); drop them: they carry no "
                "information"
            )
        if ((y < 0) | (y > 1) | ~np.isfinite(y)).any():
            i = int(np.flatnonzero((y < 0) | (y > 1) | ~np.isfinite(y))[0])
            raise DataError(
                f"with trials=, the response `{expr}` must be a proportion in [0, 1]; found "
                f"{y[i]:g} at row {frame.index[i]!r}. For counts write "
                f"cbind({expr}, {tname} - {expr})"
            )
        s = y * n
        if np.abs(s - np.round(s)).max() > 1e-8:
            raise DataError(f"`{expr}` * `{tname}` is not a whole number of successes")
        return np.round(s), n, None
    if family.name == "poisson":
        _check_counts(y, expr, frame.index, "counts")
    elif not np.isfinite(y).all():
        raise DataError(f"response `{expr}` has non-finite values")
    return y, None, None


def _check_successes(y: np.ndarray, n: np.ndarray | None, name: str, idx: pd.Index) -> None:
    if n is None:
        return
    bad = y > n
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"successes exceed trials in {int(bad.sum())} row(s) of `{name}` "
            f"(first at row {idx[i]!r}: {y[i]:g} > {n[i]:g})"
        )


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


@dataclass(frozen=True)
class _BlockEncoder:
    term: RandomTerm
    spec: Any  # formulaic ModelSpec of the term's left-hand side
    levels: tuple[str, ...]
    factor_levels: tuple[tuple[Any, ...], ...]


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


def build_design(
    formula: str | ParsedFormula,
    data: pd.DataFrame,
    family: str | Family = "gaussian",
    link: str | None = None,
    trials: str | np.ndarray | None = None,
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
        For ``family="binomial"`` with a proportion response: column of trial counts.

    Returns
    -------
    Design

    Warns
    -----
    DroppedRowsWarning
        When rows with missing or non-finite values are dropped (with the count).
    RankDeficiencyWarning
        When aliased fixed-effect columns are dropped (named).
    IdentifiabilityWarning
        For grouping factors with fewer than 5 levels, or one level per row (bernoulli).
    """
    if not isinstance(data, pd.DataFrame):
        raise DesignError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    fam = get_family(family, link)
    text = parsed.formula

    # 1. every column the formula uses, and where it is used
    needed: dict[str, str] = {}
    response_cols: set[str] = set()
    for expr in (parsed.response, parsed.failures):
        if expr is None:
            continue
        cols = {expr.strip("`")} if _is_column_ref(expr, data) else _required(expr)
        response_cols |= cols
        for c in cols:
            needed.setdefault(c, expr)
    for c in sorted(_required(parsed.fixed), key=text.find):
        needed.setdefault(c, parsed.fixed)
    for off in parsed.offsets:
        for c in _required(off):
            needed.setdefault(c, f"offset({off})")
    for term in parsed.random:
        for c in _required(term.expr):
            needed.setdefault(c, str(term))
        for c in term.factors:
            needed.setdefault(c, str(term))
    if isinstance(trials, str):
        needed.setdefault(trials, "trials=")
    _check_columns(text, needed, data)

    # 2. the model frame: used columns, rows with missing / non-finite values dropped
    used = list(needed)
    frame = data.loc[:, used]
    bad = frame.isna()
    for c in used:
        if c not in response_cols and pd.api.types.is_numeric_dtype(frame[c]):
            bad[c] = bad[c] | ~np.isfinite(frame[c].to_numpy(dtype=float))
    drop_mask = bad.any(axis=1).to_numpy()
    n_input, n_dropped = len(frame), int(drop_mask.sum())
    if n_dropped:
        per_col = ", ".join(f"{c}: {int(v)}" for c, v in bad.sum().items() if v)
        warnings.warn(
            f"dropped {n_dropped} of {n_input} rows with missing or non-finite values "
            f"({per_col}); {n_input - n_dropped} rows used",
            DroppedRowsWarning,
            stacklevel=2,
        )
        frame = frame.loc[~drop_mask]
    if len(frame) == 0:
        raise DesignError(
            f"no rows left after dropping {n_dropped} rows with missing values in "
            f"{', '.join(f'`{c}`' for c in used)}"
        )
    row_index = np.flatnonzero(~drop_mask)

    # 3. response
    y, n_trials, success = _response(parsed, frame, fam, trials)
    _check_successes(y, n_trials, parsed.response, frame.index)

    # 4. fixed part
    dtypes = {c: str(frame[c].dtype) for c in used}
    categories = {
        c: tuple(frame[c].cat.categories)
        for c in used
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    for c, cats in categories.items():
        unused = [v for v in cats if v not in set(frame[c].unique())]
        if unused and c not in {f for t in parsed.random for f in t.factors}:
            warnings.warn(
                f"categorical column `{c}` has unused level(s) {unused}; their columns are dropped",
                RankDeficiencyWarning,
                stacklevel=2,
            )
    mm = _materialize(frame, parsed.fixed)
    X_all = mm.to_numpy(dtype=float)
    names_all = [r_name(str(c)) for c in mm.columns]
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

    # offsets
    offset = np.zeros(len(frame))
    offset_specs = []
    for off in parsed.offsets:
        om = _materialize(frame, f"0 + {off}")
        vals = om.to_numpy(dtype=float)
        if vals.shape[1] != 1:
            raise FormulaError(f"offset({off}) must give one numeric column")
        if not np.isfinite(vals).all():
            i = int(np.flatnonzero(~np.isfinite(vals[:, 0]))[0])
            raise DataError(f"offset({off}) is not finite at row {frame.index[i]!r}")
        offset += vals[:, 0]
        offset_specs.append(om.model_spec)

    # 5. random-effect blocks
    blocks: list[RandomBlock] = []
    block_enc: list[_BlockEncoder] = []
    for term in parsed.random:
        zm = _materialize(frame, term.expr)
        Z = np.ascontiguousarray(zm.to_numpy(dtype=float))
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effect term `{term}` has no columns")
        index, labels, per_levels = _group_codes(frame, term.factors)
        if len(labels) < 2:
            raise DesignError(
                f"grouping factor `{term.group}` in `{term}` has only one level "
                f"({labels[0]!r}); a random effect needs at least two"
            )
        if fam.name == "bernoulli" and len(labels) == len(frame):
            warnings.warn(
                f"grouping factor `{term.group}` has as many levels as rows "
                f"({len(labels)}) under a bernoulli response: the random-effect variance "
                "is not identifiable",
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
                terms=tuple(r_name(str(c)) for c in zm.columns),
                Z=Z,
                index=index,
                levels=labels,
                correlated=term.correlated and Z.shape[1] > 1,
            )
        )
        block_enc.append(
            _BlockEncoder(term, zm.model_spec, labels, tuple(tuple(lv) for lv in per_levels))
        )

    predictors = tuple(c for c in used if c not in response_cols and c != trials)
    encoder = _Encoder(
        parsed=parsed,
        fixed_spec=mm.model_spec,
        fixed_keep=keep,
        offset_specs=tuple(offset_specs),
        blocks=tuple(block_enc),
        predictors=predictors,
        dtypes=dtypes,
        categories=categories,
    )
    return Design(
        y=y,
        trials=n_trials,
        offset=offset,
        X=X,
        x_names=x_names,
        blocks=tuple(blocks),
        family=fam,
        formula=text,
        response_name=parsed.response if not parsed.is_cbind else f"cbind({parsed.response})",
        success_level=success,
        n_input=n_input,
        n_dropped=n_dropped,
        dropped_columns=tuple(names_all[j] for j in drop),
        row_index=row_index,
        encoder=encoder,
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


def _check_new_frame(enc: _Encoder, newdata: pd.DataFrame, need_groups: bool) -> None:
    group_cols = {f for b in enc.blocks for f in b.term.factors}
    needed = [c for c in enc.predictors if need_groups or c not in group_cols]
    missing = [c for c in needed if c not in newdata.columns]
    if missing:
        raise DesignError(
            f"newdata is missing column(s) {', '.join(f'`{c}`' for c in missing)} used by "
            f"the formula `{enc.parsed.formula}`"
        )
    for c in needed:
        col = newdata[c]
        was_numeric = enc.dtypes[c].startswith(("int", "float", "uint", "bool"))
        if was_numeric and c not in group_cols and not pd.api.types.is_numeric_dtype(col):
            raise DesignError(
                f"column `{c}` was numeric ({enc.dtypes[c]}) in the fitted data but is "
                f"{col.dtype} in newdata"
            )
        if col.isna().any():
            raise DesignError(f"newdata column `{c}` has {int(col.isna().sum())} missing value(s)")
    # unseen levels of categorical fixed predictors would be silently encoded as the reference
    for c in enc.fixed_spec.required_variables:
        if c in newdata.columns and c in enc.categories:
            new = set(newdata[c].astype(str)) - {str(v) for v in enc.categories[c]}
            if new:
                raise DesignError(f"column `{c}` has level(s) {sorted(new)} not seen in the fit")
        elif c in newdata.columns and not enc.dtypes[c].startswith(("int", "float", "bool")):
            seen = (
                {
                    str(v)
                    for v in enc.fixed_spec.encoder_state.get(c, (None, {}))[1].get(
                        "categories", []
                    )
                }
                if isinstance(enc.fixed_spec.encoder_state.get(c), tuple)
                else None
            )
            if seen:
                new = set(newdata[c].astype(str)) - seen
                if new:
                    raise DesignError(
                        f"column `{c}` has level(s) {sorted(new)} not seen in the fit"
                    )


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
    """
    enc: _Encoder = design.encoder
    if not isinstance(newdata, pd.DataFrame):
        raise DesignError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    _check_new_frame(enc, newdata, need_groups)
    n = len(newdata)
    frame = newdata.reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X = enc.fixed_spec.get_model_matrix(frame, na_action="raise").to_numpy(dtype=float)
    X = X[:, list(enc.fixed_keep)] if X.shape[1] else X.reshape(n, 0)
    offset = np.zeros(n)
    for spec in enc.offset_specs:
        offset += spec.get_model_matrix(frame, na_action="raise").to_numpy(dtype=float)[:, 0]
    Zs, idxs, unseen, new_levels = [], [], [], []
    for b in enc.blocks:
        Zs.append(b.spec.get_model_matrix(frame, na_action="raise").to_numpy(dtype=float))
        if all(f in frame.columns for f in b.term.factors):
            labels = frame[list(b.term.factors)].astype(str).agg(":".join, axis=1)
            lookup = {lab: i for i, lab in enumerate(b.levels)}
            idx = labels.map(lookup).fillna(-1).to_numpy(dtype=np.int64)
        else:
            labels = pd.Series(["<new>"] * n)
            idx = np.full(n, -1, dtype=np.int64)
        flags = idx < 0
        idxs.append(idx)
        unseen.append(flags)
        new_levels.append(tuple(pd.unique(labels[flags].to_numpy(dtype=str))))
    return NewData(X, offset, tuple(Zs), tuple(idxs), tuple(unseen), tuple(new_levels))
