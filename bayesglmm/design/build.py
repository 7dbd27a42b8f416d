"""One model frame, built once: formula + DataFrame -> frozen :class:`Design`.

:func:`build_design` runs the steps of lme4's ``lFormula`` / ``mkReTrms``, one module each:

1. parse the formula (:mod:`bayesglmm.formula.bars`) and check that every column it uses
   exists (:mod:`.columns`);
2. read ``weights=`` / ``offset=`` (:mod:`.weights_offset`) and build the model frame from
   the used columns, dropping rows with a missing or non-finite value, counted and reported
   as lme4 does (:mod:`.frame`);
3. parse the response by the family's ``response_kind`` (:mod:`.response`) and give the
   prior weights their meaning for the family (:mod:`.weights_offset`);
4. build the fixed-effect matrix with formulaic and our R language, drop aliased columns,
   check a binary or binomial response for separation (:mod:`.fixed`); add the offsets;
5. build one :class:`~bayesglmm.design.types.RandomBlock` per random term: per-row term
   values and an integer group index, never a dense indicator matrix (:mod:`.random_terms`);
6. keep the encoding state (:mod:`.encoder`) so new data can be encoded the same way
   (:func:`~bayesglmm.design.newdata.encode_new_data`, re-exported here).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.design.columns import (
    UsedColumns,
    check_columns,
    used_columns,
    warn_response_on_right,
)
from bayesglmm.design.encoder import Encoder
from bayesglmm.design.fixed import drop_unused_categories, fixed_part
from bayesglmm.design.frame import model_frame
from bayesglmm.design.levels import factor_levels, is_numeric
from bayesglmm.design.materialize import categorical_levels, is_column_ref
from bayesglmm.design.naming import r_name
from bayesglmm.design.newdata import NewData, encode_new_data
from bayesglmm.design.random_terms import random_blocks
from bayesglmm.design.response import parse_response
from bayesglmm.design.types import Design
from bayesglmm.design.weights_offset import apply_weights, offsets, row_argument
from bayesglmm.errors import DesignError
from bayesglmm.families import Family, get_family
from bayesglmm.formula.bars import ParsedFormula, parse_formula
from bayesglmm.formula.rlang import Lang

__all__ = ["build_design", "encode_new_data", "NewData", "r_name"]


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
    lang = Lang(data.columns, parsed.formula)

    # 1. every column the formula and the arguments use, and where; they must exist
    cols = used_columns(parsed, data, lang, trials, weights, offset)
    check_columns(parsed.formula, cols.needed, data)
    w_all = None if weights is None else row_argument(weights, data, "weights")
    o_all = None if offset is None else row_argument(offset, data, "offset")
    warn_response_on_right(cols, parsed.formula)

    # 2. the model frame: used columns, rows with missing / non-finite values dropped
    arrays = {"weights=": (w_all, weights), "offset=": (o_all, offset)}
    mf = model_frame(
        data,
        cols,
        {k: a for k, (a, arg) in arrays.items() if a is not None and not isinstance(arg, str)},
    )
    frame, row_index = mf.frame, mf.row_index

    # 3. the response, and the prior weights' meaning for the family
    y, n_trials, success = parse_response(
        parsed, frame, fam, trials, row_index, lang, w_all is not None
    )
    prior_w = None
    if w_all is not None:
        w_lab = f"`{weights}`" if isinstance(weights, str) else "weights="
        y, n_trials, prior_w = apply_weights(
            parsed, fam, trials, y, n_trials, w_all[row_index], w_lab, frame.index
        )

    # 4. the fixed part (unused levels of categorical predictors dropped), the offsets
    dtypes = {c: str(frame[c].dtype) for c in cols.needed}
    predictors = cols.predictors()
    drop_unused_categories(frame, predictors, cols.groups)
    fixed = fixed_part(frame, parsed.fixed, lang, fam, y, n_trials)
    offset_vec, offset_specs = offsets(parsed.offsets, frame, lang, o_all, row_index)

    # 5. the random-effect blocks
    blocks, block_encoders, random_levels = random_blocks(parsed.random, frame, lang, fam)

    # 6. the state that encodes new data
    encoder = Encoder(
        parsed=parsed,
        fixed_spec=fixed.spec,
        fixed_keep=fixed.keep,
        offset_specs=offset_specs,
        blocks=block_encoders,
        predictors=predictors,
        dtypes=dtypes,
        lang=lang,
        levels=_predictor_levels(
            frame, lang, cols, predictors, [fixed.levels, random_levels], offset_specs
        ),
        offset_column=offset if isinstance(offset, str) else None,
        offset_array=offset is not None and not isinstance(offset, str),
    )
    return Design(
        y=y,
        trials=n_trials,
        offset=offset_vec,
        X=fixed.X,
        x_names=fixed.x_names,
        blocks=blocks,
        family=fam,
        formula=parsed.formula,
        response_name=_response_name(parsed, data),
        success_level=success,
        n_input=mf.n_input,
        n_dropped=mf.n_dropped,
        dropped_columns=fixed.dropped,
        row_index=row_index,
        encoder=encoder,
        separation=fixed.separation,
        weights=prior_w,
    )


def _predictor_levels(
    frame: pd.DataFrame,
    lang: Lang,
    cols: UsedColumns,
    predictors: tuple[str, ...],
    encoded: list[dict[str, tuple[Any, ...]]],
    offset_specs: tuple[Any, ...],
) -> dict[str, tuple[Any, ...]]:
    """Training levels of every categorical predictor (str, category, bool-as-factor,
    ``C(x)``): as formulaic encoded them in the fixed part, the random terms and the
    offsets (the first one wins), else the observed levels of a non-numeric predictor."""
    levels: dict[str, tuple[Any, ...]] = {}
    for found in [*encoded, *(categorical_levels(s, frame, lang) for s in offset_specs)]:
        for c, lv in found.items():
            levels.setdefault(c, lv)
    for c in predictors:
        if c not in cols.groups and not is_numeric(frame[c]):
            levels.setdefault(c, tuple(factor_levels(frame[c])))
    return levels


def _response_name(parsed: ParsedFormula, data: pd.DataFrame) -> str:
    """The response as the fit shows it (``y``, ``cbind(s, f)``, ``log(y)``)."""
    if parsed.is_cbind:
        return f"cbind({parsed.response}, {parsed.failures})"
    if is_column_ref(parsed.response, data):
        return parsed.response.strip("`")
    return parsed.response
