"""The random-effect terms, as lme4's ``mkReTrms`` builds them, without a dense Z.

Each bar term ``(expr | g)`` becomes one :class:`~bayesglmm.design.types.RandomBlock`: the
per-row values of its columns (the left-hand side materialized on the model frame) and an
integer index of each row's level of the grouping factor (``g``, or a combination such as
``g1:g2``).  ``||`` is split as lme4 splits it (:func:`expand_double_bars`).  A term with
more random effects than rows, or a grouping factor with one level, is refused; a weakly
identified one (fewer than 5 levels, one level per row) is warned about.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula
from formulaic.materializers import PandasMaterializer

from bayesglmm.design.encoder import BlockEncoder
from bayesglmm.design.levels import group_codes
from bayesglmm.design.materialize import categorical_levels, model_matrix
from bayesglmm.design.naming import r_name
from bayesglmm.design.types import RandomBlock
from bayesglmm.errors import DesignError, FormulaError, IdentifiabilityWarning
from bayesglmm.families import Family
from bayesglmm.formula.bars import RandomTerm
from bayesglmm.formula.rlang import Lang

__all__ = ["check_duplicate_terms", "expand_double_bars", "random_blocks"]


def random_blocks(
    random: Sequence[RandomTerm], frame: pd.DataFrame, lang: Lang, family: Family
) -> tuple[tuple[RandomBlock, ...], tuple[BlockEncoder, ...], dict[str, tuple[Any, ...]]]:
    """One block per random term as fitted, its encoder, and the training levels of the
    categorical columns of the terms (the first term that encodes a column gives them)."""
    blocks: list[RandomBlock] = []
    encoders: list[BlockEncoder] = []
    levels: dict[str, tuple[Any, ...]] = {}
    terms = expand_double_bars(random, frame, lang)
    for term, code in terms:
        zm, Z, z_names = model_matrix(
            frame, term.expr, f"random-effect term in `{term}`:", lang, code
        )
        Z = np.ascontiguousarray(Z)
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effect term `{term}` has no columns")
        for c, lv in categorical_levels(zm.model_spec, frame, lang).items():
            levels.setdefault(c, lv)
        index, labels, per_levels, combos = group_codes(frame, term.factors)
        _check_group(term, labels, Z.shape[1], len(frame), family)
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
        encoders.append(
            BlockEncoder(term, zm.model_spec, labels, tuple(tuple(lv) for lv in per_levels), combos)
        )
    check_duplicate_terms([t for t, _ in terms], blocks)
    return tuple(blocks), tuple(encoders), levels


def _check_group(
    term: RandomTerm, labels: Sequence[str], n_columns: int, n: int, family: Family
) -> None:
    """Refuse a term with more random effects than rows, or a grouping factor with one
    level; warn about a weakly identified one (warnings point at the caller of
    :func:`~bayesglmm.design.build.build_design`)."""
    q = len(labels) * n_columns
    if q > n:  # lme4's check.nobs.vs.nRE (as glmer, which allows q = n)
        raise DesignError(
            f"random-effect term `{term}` has {q} random effects ({len(labels)} levels x "
            f"{n_columns} column(s)) for {n} observations: its variance "
            "parameters are not identifiable; use fewer columns (e.g. (1 | "
            f"{term.group})) or a grouping factor with fewer levels"
        )
    if len(labels) < 2:
        raise DesignError(
            f"grouping factor `{term.group}` in `{term}` has only one level "
            f"({labels[0]!r}); a random effect needs at least two"
        )
    if family.spec.response_kind == "binary" and len(labels) == n:
        warnings.warn(
            f"grouping factor `{term.group}` has as many levels as rows "
            f"({len(labels)}) under a bernoulli response: the random-effect variance "
            "is not identifiable",
            IdentifiabilityWarning,
            stacklevel=4,
        )
    elif family.has_dispersion and len(labels) == n:
        warnings.warn(
            f"grouping factor `{term.group}` has one observation per level ({len(labels)} "
            f"levels, {n} rows) in a {family.name} model: its variance cannot be "
            "told apart from the residual variance; drop the term or use a grouping "
            "factor with repeated observations",
            IdentifiabilityWarning,
            stacklevel=4,
        )
    elif len(labels) < 5:
        warnings.warn(
            f"grouping factor `{term.group}` has only {len(labels)} levels: its SD is "
            "weakly identified (use at least 5 levels, or treat it as a fixed effect)",
            IdentifiabilityWarning,
            stacklevel=4,
        )


def check_duplicate_terms(terms: Sequence[RandomTerm], blocks: Sequence[RandomBlock]) -> None:
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
                    stacklevel=4,
                )


def expand_double_bars(
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
