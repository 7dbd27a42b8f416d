"""The names of the posterior's variables and dimensions, in one place.

Every Bayesian engine writes its draws under these names, and every reader (the fit's
accessors, summaries, predictions, saved fits) reads them back by the same functions:

* ``Intercept`` (scalar) and ``beta`` (dim ``fixed``: the slope names), sampled as
  ``Intercept_centered`` and ``beta_scaled``;
* per grouping block with label ``L``: ``sd_L`` (dim ``L__term``), ``cor_L`` (dims
  ``L__term``, ``L__term_b``; correlated blocks), ``chol_cov_L`` (the packed Cholesky factor
  of a correlated block), ``z_L`` (standardized effects, non-centred) and ``r_L`` (dims
  ``L__level``, ``L__term``);
* ``sigma``: the residual SD of a gaussian family.

PyMC names the unconstrained value of a positive variable ``<name>_log__`` and of an LKJ
Cholesky factor ``<name>_cholesky-cov-packed__`` (:func:`log_value`, :func:`packed_chol`).
"""

from __future__ import annotations

__all__ = [
    "BETA",
    "BETA_SCALED",
    "FIXED_DIM",
    "INTERCEPT",
    "INTERCEPT_CENTERED",
    "PACKED_SUFFIX",
    "SIGMA",
    "chol_cov",
    "cor",
    "level_dim",
    "log_value",
    "packed_chol",
    "r",
    "sd",
    "term_b_dim",
    "term_dim",
    "z",
]

INTERCEPT = "Intercept"
"""The intercept (scalar)."""
INTERCEPT_CENTERED = "Intercept_centered"
"""The intercept at centred predictors (what the samplers draw)."""
BETA = "beta"
"""The slopes (dim :data:`FIXED_DIM`)."""
BETA_SCALED = "beta_scaled"
"""The slopes per SD of their column (what the samplers draw)."""
FIXED_DIM = "fixed"
"""The dimension of :data:`BETA`: the slope names."""
SIGMA = "sigma"
"""The gaussian family's residual SD."""
PACKED_SUFFIX = "_cholesky-cov-packed__"
"""PyMC's suffix of an LKJ Cholesky factor's unconstrained value."""


def sd(label: str) -> str:
    """The random-effect SDs of block ``label`` (dim :func:`term_dim`)."""
    return f"sd_{label}"


def cor(label: str) -> str:
    """The correlation matrix of a correlated block (dims :func:`term_dim`, :func:`term_b_dim`)."""
    return f"cor_{label}"


def chol_cov(label: str) -> str:
    """The packed lower Cholesky factor of a correlated block's covariance."""
    return f"chol_cov_{label}"


def r(label: str) -> str:
    """The random effects of block ``label`` (dims :func:`level_dim`, :func:`term_dim`)."""
    return f"r_{label}"


def z(label: str) -> str:
    """The standardized random effects of a non-centred block."""
    return f"z_{label}"


def term_dim(label: str) -> str:
    """The dimension of a block's terms."""
    return f"{label}__term"


def term_b_dim(label: str) -> str:
    """The second dimension of a block's correlation matrix."""
    return f"{label}__term_b"


def level_dim(label: str) -> str:
    """The dimension of a block's levels."""
    return f"{label}__level"


def log_value(name: str) -> str:
    """PyMC's name of the log-transformed value of a positive variable."""
    return f"{name}_log__"


def packed_chol(label: str) -> str:
    """PyMC's name of the unconstrained packed Cholesky factor of a correlated block."""
    return chol_cov(label) + PACKED_SUFFIX
