"""The random-effect structure of one scalar term (:class:`ScalarStructure`: ``M = A' W A + I``
is diagonal, every per-group sum one ``np.bincount``) and :func:`make_structure`, which picks
it or the blocked Cholesky of :mod:`~bayesglmm.engines.ml.blocked_cholesky`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesglmm.design.types import Design, RandomBlock
from bayesglmm.errors import InferenceError

__all__ = ["ScalarStructure", "Structure", "make_structure"]


class ScalarStructure:
    """One block with one term: ``A = z * theta`` per row, ``M`` diagonal (a vector).

    Independent units (for per-group step halving and AGQ) are the levels.
    """

    kind = "scalar"

    def __init__(self, block: RandomBlock, n: int) -> None:
        self.index = np.ascontiguousarray(block.index, dtype=np.intp)
        self.z = np.ascontiguousarray(block.Z[:, 0], dtype=float)
        self.ones_z = bool(np.all(self.z == 1.0))
        self.L = block.n_levels
        self.q = self.L
        self.n_units = self.L
        self.unit_of_u = np.arange(self.L)
        self.row_unit = self.index
        self.blocks = (block,)
        self.zl = self.z
        self.theta = 1.0

    def set_factors(self, factors: list[np.ndarray]) -> None:
        """Set ``Lambda`` (a 1 x 1 factor)."""
        self.theta = float(factors[0][0, 0])
        self.zl = self.z * self.theta

    def au(self, u: np.ndarray) -> np.ndarray:
        """``A u`` (n,)."""
        if self.ones_z:
            return (self.theta * u)[self.index]
        return self.zl * u[self.index]

    def atv(self, v: np.ndarray) -> np.ndarray:
        """``A' v`` for v of shape (n,) or (n, m)."""
        if v.ndim == 1:
            if self.ones_z:
                return self.theta * np.bincount(self.index, weights=v, minlength=self.L)
            return np.bincount(self.index, weights=self.zl * v, minlength=self.L)
        return np.stack(
            [
                np.bincount(self.index, weights=self.zl * v[:, j], minlength=self.L)
                for j in range(v.shape[1])
            ],
            axis=1,
        )

    def unit_sum(self, rows: np.ndarray) -> np.ndarray:
        """Per-unit sums of a per-row vector."""
        return np.bincount(self.index, weights=rows, minlength=self.L)

    def unit_sum_u(self, uu: np.ndarray) -> np.ndarray:
        """Per-unit sums of a per-u vector."""
        return uu

    def factor(self, w: np.ndarray) -> _DiagFactor:
        """Factor ``M = A' W A + I``."""
        zz = self.zl * self.zl if not self.ones_z else None
        s = np.bincount(self.index, weights=w if zz is None else zz * w, minlength=self.L)
        if zz is None:
            s *= self.theta * self.theta
        return _DiagFactor(1.0 + s)


class _DiagFactor:
    def __init__(self, d: np.ndarray) -> None:
        self.d = d

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return rhs / self.d if rhs.ndim == 1 else rhs / self.d[:, None]

    def logdet(self) -> float:
        return float(np.log(self.d).sum())

    def unit_logdet(self) -> np.ndarray:
        return np.log(self.d)

    def inv_blocks(self) -> list[np.ndarray]:
        return [(1.0 / self.d)[:, None, None]]


if TYPE_CHECKING:
    from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure

type Structure = ScalarStructure | BlockedStructure  # evaluated lazily (PEP 695)


def make_structure(design: Design) -> Structure:
    """The cheapest structure that represents the design's random effects."""
    blocks = design.blocks
    if not blocks:
        raise InferenceError("the model has no random effects; fit a GLM instead")
    if len(blocks) == 1:
        if blocks[0].n_terms == 1:
            return ScalarStructure(blocks[0], design.n)
    # (imported here: blocked_cholesky uses the row kernels of scalar_laplace, which
    # imports this module)
    from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure

    # one vector-valued term or several blocks: the blocked Cholesky (for one block it is
    # the (levels, p, p) stack, built in one pass over the rows, with the analytic gradient)
    return BlockedStructure(blocks, design.n)
