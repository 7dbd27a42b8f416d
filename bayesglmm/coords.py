"""Coordinates of the posterior variables (no PyMC: the fused-kernel sampler needs them too)."""

from __future__ import annotations

from bayesglmm.design_types import Design
from bayesglmm.priors import block_labels

__all__ = ["model_coords"]


def model_coords(design: Design) -> dict[str, list[str]]:
    """Coordinates of the PyMC model: fixed-effect names, level labels, term names."""
    coords: dict[str, list[str]] = {
        "fixed": [n for n in design.x_names if n != "(Intercept)"],
        "obs": [str(i) for i in range(design.n)],
    }
    for label, b in zip(block_labels(design), design.blocks, strict=True):
        coords[f"{label}__level"] = list(b.levels)
        coords[f"{label}__term"] = list(b.terms)
        coords[f"{label}__term_b"] = list(b.terms)
    return coords
