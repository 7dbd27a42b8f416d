"""The state a design keeps to encode new data the way it encoded the fitted data.

Built by :func:`bayesglmm.design.build.build_design`, stored (opaque) as
``Design.encoder`` and read by :func:`bayesglmm.design.newdata.encode_new_data`, the
predictions and the saved-fit reader.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bayesglmm.formula.bars import ParsedFormula, RandomTerm
from bayesglmm.formula.rlang import Lang

__all__ = ["BlockEncoder", "Encoder"]


@dataclass(frozen=True)
class BlockEncoder:
    """How one random term encodes rows: its spec, the levels of its grouping factor (and,
    per factor of ``g1:g2``, each factor's levels and each level's factor codes)."""

    term: RandomTerm
    spec: Any  # formulaic ModelSpec of the term's left-hand side
    levels: tuple[str, ...]
    factor_levels: tuple[tuple[Any, ...], ...]
    combos: tuple[tuple[int, ...], ...] = ()  # per level: code of each factor


@dataclass(frozen=True)
class Encoder:
    """How a design encodes rows: the specs of the fixed part, offsets and random terms,
    the kept fixed-effect columns, and the predictors with their fitted dtypes and levels."""

    parsed: ParsedFormula
    fixed_spec: Any
    fixed_keep: tuple[int, ...]
    offset_specs: tuple[Any, ...]
    blocks: tuple[BlockEncoder, ...]
    predictors: tuple[str, ...]
    dtypes: dict[str, str]
    lang: Lang
    # training levels of every categorical predictor (str, category, bool-as-factor, `C(x)`)
    levels: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    # offset= given as a column (new data must supply it) or as an array (new data cannot)
    offset_column: str | None = None
    offset_array: bool = False
