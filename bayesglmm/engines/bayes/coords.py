"""Coordinates of the posterior variables (no PyMC: the fused-kernel sampler needs them too)."""

from __future__ import annotations

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.priors import block_labels

__all__ = ["model_coords"]


def model_coords(design: Design) -> dict[str, list[str]]:
    """Coordinates of the PyMC model: fixed-effect names, level labels, term names."""
    coords: dict[str, list[str]] = {
        nm.FIXED_DIM: [n for n in design.x_names if n != "(Intercept)"],
        "obs": [str(i) for i in range(design.n)],
    }
    for label, b in zip(block_labels(design), design.blocks, strict=True):
        coords[nm.level_dim(label)] = list(b.levels)
        coords[nm.term_dim(label)] = list(b.terms)
        coords[nm.term_b_dim(label)] = list(b.terms)
    return coords
