"""Arrays of draws -> a DataTree with the variable names and coords NUTS uses.

Shared by the engines that make draws outside PyMC (Bayesian Laplace) and by the
parametric bootstrap, so every results function reads them unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.priors import block_labels


def draws_to_tree(
    design: Design,
    betas: np.ndarray,
    covs: list[list[np.ndarray]],
    ranefs: list[list[np.ndarray]],
    sigma: np.ndarray | None = None,
) -> Any:
    """A one-chain DataTree with the NUTS variable names from arrays of draws.

    ``betas`` is (S, k); ``covs[s][i]`` and ``ranefs[s][i]`` are block ``i``'s covariance and
    random effects in draw ``s``; ``sigma`` (S,), when given, the draws of the family's
    dispersion parameter, stored under its name (``Family.dispersion``; gaussian ``sigma``).
    """
    labels = block_labels(design)
    S = betas.shape[0]
    coords: dict[str, Any] = {"chain": [0], "draw": np.arange(S)}
    data: dict[str, Any] = {}
    slopes = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
    if "(Intercept)" in design.x_names:
        data[nm.INTERCEPT] = (
            ("chain", "draw"),
            betas[None, :, design.x_names.index("(Intercept)")],
        )
    if slopes:
        coords[nm.FIXED_DIM] = [design.x_names[i] for i in slopes]
        data[nm.BETA] = (("chain", "draw", nm.FIXED_DIM), betas[None][:, :, slopes])
    for i, (lab, b) in enumerate(zip(labels, design.blocks, strict=True)):
        cov = np.stack([c[i] for c in covs])
        sd = np.sqrt(np.einsum("sii->si", cov))
        coords[nm.term_dim(lab)] = list(b.terms)
        coords[nm.term_b_dim(lab)] = list(b.terms)
        coords[nm.level_dim(lab)] = list(b.levels)
        data[nm.sd(lab)] = (("chain", "draw", nm.term_dim(lab)), sd[None])
        if b.correlated:
            with np.errstate(invalid="ignore", divide="ignore"):
                cor = cov / (sd[:, :, None] * sd[:, None, :])
            cor = np.nan_to_num(cor)
            data[nm.cor(lab)] = (("chain", "draw", nm.term_dim(lab), nm.term_b_dim(lab)), cor[None])
        r = np.stack([m[i] for m in ranefs])
        data[nm.r(lab)] = (("chain", "draw", nm.level_dim(lab), nm.term_dim(lab)), r[None])
    if sigma is not None:  # the family's dispersion variable (gaussian: ``sigma``)
        name = design.family.dispersion[0].name
        data[name] = (("chain", "draw"), np.asarray(sigma, dtype=float)[None])
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data, coords=coords)})
