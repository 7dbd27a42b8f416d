"""The fixed-effect matrix ``X``: formulaic with our R language, aliased columns dropped.

Unused levels of categorical predictors are dropped first (as lme4's model frame does,
with a warning naming them); the fixed part is materialized on the model frame
(stateful transforms such as ``scale(x)`` and ``poly(x, 2)`` keep their state in the
spec, for new data); columns that are linear combinations of earlier ones are dropped, as
R's pivoting QR does (named in a :class:`~bayesglmm.errors.RankDeficiencyWarning`); for a
binary or binomial response, (quasi-)complete separation is looked for
(:mod:`bayesglmm.design.separation`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.design.materialize import categorical_levels, model_matrix
from bayesglmm.design.naming import r_name
from bayesglmm.design.separation import Separation, detect_separation, separation_message
from bayesglmm.errors import IdentifiabilityWarning, RankDeficiencyWarning
from bayesglmm.families import Family
from bayesglmm.formula.rlang import Lang

__all__ = ["FixedPart", "aliased_columns", "drop_unused_categories", "fixed_part"]


@dataclass(frozen=True, eq=False)
class FixedPart:
    """The fixed-effect matrix and what building it found.

    Attributes
    ----------
    X : ndarray
        The kept columns, C-contiguous.
    x_names : tuple of str
        Their names, in R's spelling.
    keep : tuple of int
        Positions of the kept columns in the full model matrix (for new data).
    dropped : tuple of str
        Names of the aliased columns dropped.
    spec : formulaic.ModelSpec
        The spec that encodes new data the same way.
    levels : dict of str to tuple
        Training levels of the columns formulaic encoded as categorical.
    separation : Separation or None
        (Quasi-)complete separation of a binary or binomial response.
    """

    X: np.ndarray
    x_names: tuple[str, ...]
    keep: tuple[int, ...]
    dropped: tuple[str, ...]
    spec: Any
    levels: dict[str, tuple[Any, ...]]
    separation: Separation | None


def drop_unused_categories(
    frame: pd.DataFrame, predictors: Iterable[str], group_cols: set[str]
) -> None:
    """Drop unused levels of categorical predictors (in place), warning for non-groups."""
    for c in predictors:
        col = frame[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            unused = [v for v in col.cat.categories if v not in set(col.unique())]
            if unused and c not in group_cols:
                warnings.warn(
                    f"categorical column `{c}` has unused level(s) "
                    f"{', '.join(repr(v) for v in unused)}; they are dropped",
                    RankDeficiencyWarning,
                    stacklevel=3,
                )
            if unused:
                frame[c] = col.cat.remove_unused_categories()


def fixed_part(
    frame: pd.DataFrame,
    fixed: str,
    lang: Lang,
    family: Family,
    y: np.ndarray,
    trials: np.ndarray | None,
) -> FixedPart:
    """Materialize the fixed part ``fixed`` (R text), drop aliased columns, check separation."""
    mm, X_all, mm_names = model_matrix(frame, fixed, "fixed-effect term", lang)
    names_all = [r_name(c) for c in mm_names]
    drop = aliased_columns(X_all) if X_all.shape[1] else []
    if drop:
        warnings.warn(
            "fixed-effect model matrix is rank deficient so dropping "
            f"{len(drop)} column(s): {', '.join(names_all[j] for j in drop)}",
            RankDeficiencyWarning,
            stacklevel=3,
        )
    keep = tuple(j for j in range(X_all.shape[1]) if j not in set(drop))
    X = np.ascontiguousarray(X_all[:, keep])
    x_names = tuple(names_all[j] for j in keep)
    levels = categorical_levels(mm.model_spec, frame, lang)
    sep = None
    if family.is_binomial:
        sep = detect_separation(X, y, trials, x_names)
        if sep is not None:
            warnings.warn(separation_message(sep), IdentifiabilityWarning, stacklevel=3)
    return FixedPart(
        X=X,
        x_names=x_names,
        keep=keep,
        dropped=tuple(names_all[j] for j in drop),
        spec=mm.model_spec,
        levels=levels,
        separation=sep,
    )


def aliased_columns(X: np.ndarray) -> list[int]:
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
