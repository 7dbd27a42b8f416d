"""Which models adaptive Gauss-Hermite quadrature (``nagq > 1``) covers: one grouping
factor with one scalar term (any ``nagq``), or 2 or 3 terms up to a node cap."""

from __future__ import annotations

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.agq import MAX_NAGQ_VECTOR
from bayesglmm.engines.ml.laplace_eval import AGQError

__all__ = ["check_nagq"]


def check_nagq(design: Design, nagq: int) -> None:
    """Raise :class:`AGQError` unless AGQ is possible for this design.

    ``nagq > 1`` needs one grouping factor: one scalar term (any ``nagq``), or 2 or 3
    terms with ``nagq`` at most :data:`~bayesglmm.engines.ml.agq.MAX_NAGQ_VECTOR`
    (25 for 2 terms, 11 for 3: ``nagq^q`` nodes per level).
    """
    if nagq < 1:
        raise AGQError(f"nagq must be >= 1, got {nagq}")
    blocks = design.blocks
    scalar = len(blocks) == 1 and blocks[0].n_terms == 1
    if nagq == 1 or scalar:
        return
    desc = ", ".join(f"({b.name})" for b in blocks)
    if not (len(blocks) == 1 and blocks[0].n_terms in MAX_NAGQ_VECTOR):
        raise AGQError(
            "nagq > 1 needs one grouping factor with at most 3 random-effect terms "
            f"(e.g. (1 | g), (1 + x | g), (1 + x + z | g)); this model has {len(blocks)} "
            f"block(s): {desc}. Use nagq=1 (Laplace)"
        )
    q = blocks[0].n_terms
    cap = MAX_NAGQ_VECTOR[q]
    if nagq > cap:
        raise AGQError(
            f"nagq={nagq} with {q} random-effect terms in {desc} needs {nagq}^{q} = "
            f"{nagq**q} quadrature nodes per level; the limits are nagq <= "
            f"{MAX_NAGQ_VECTOR[2]} for 2 terms and nagq <= {MAX_NAGQ_VECTOR[3]} for 3 terms. "
            f"Use nagq <= {cap}"
        )
