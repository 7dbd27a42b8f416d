"""The plain-data contract between the design stage and every engine.

A :class:`Design` is what :func:`bayesglmm.design.build.build_design` returns: the response,
trials, offset, fixed-effect matrix and one :class:`RandomBlock` per random-effect term.
Engines (PyMC model builder, Laplace/AGQ/PQL) read only these arrays; they never see the
DataFrame or the formula.  There is no dense ``n x levels`` matrix anywhere: a block stores
its per-row term values ``Z`` (``n x p``) and an integer group index, and the random-effect
contribution to the linear predictor is ``sum_j Z[:, j] * b[index, j]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesglmm.families import Family


@dataclass(frozen=True, eq=False)
class RandomBlock:
    """One random-effect term ``(terms | group)``.

    Attributes
    ----------
    group : str
        Grouping-factor name, e.g. ``"patientID"`` or ``"Beach:Site"`` for an interaction.
    terms : tuple of str
        Names of the term columns, e.g. ``("(Intercept)", "followup")``.
    Z : ndarray, shape (n, p)
        Per-row values of the term columns.
    index : ndarray of int64, shape (n,)
        Level index of each row, in ``range(n_levels)``.
    levels : tuple of str
        Level labels, in index order.
    correlated : bool
        True for ``(x | g)`` (full covariance), False for ``(x || g)`` (diagonal).
    """

    group: str
    terms: tuple[str, ...]
    Z: np.ndarray
    index: np.ndarray
    levels: tuple[str, ...]
    correlated: bool = True

    @property
    def n_levels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def n_terms(self) -> int:
        """Number of term columns ``p``."""
        return len(self.terms)

    @property
    def name(self) -> str:
        """A label for the block, e.g. ``"1 + followup | subject"``."""
        bar = "|" if self.correlated else "||"
        return f"{' + '.join(self.terms)} {bar} {self.group}"


@dataclass(frozen=True, eq=False)
class Design:
    """A frozen model design: everything an engine needs, as arrays.

    Attributes
    ----------
    y : ndarray, shape (n,)
        Response: 0/1 (bernoulli), successes (binomial), counts (poisson) or reals.
    trials : ndarray or None
        Number of trials per row (binomial only).
    offset : ndarray, shape (n,)
        Offset added to the linear predictor (zeros when there is none).
    X : ndarray, shape (n, k)
        Fixed-effect design matrix (aliased columns already removed).
    x_names : tuple of str
        Fixed-effect column names in formula order, R style (``"(Intercept)"``).
    blocks : tuple of RandomBlock
        One block per random-effect term.
    family : Family
        Response family and link.
    formula : str
        The formula as given.
    response_name : str
        Name of the response (for labels).
    success_level : str or None
        For a two-level string response: the level counted as success.
    n_input : int
        Rows in the input frame.
    n_dropped : int
        Rows dropped for missing or non-finite values.
    dropped_columns : tuple of str
        Aliased fixed-effect columns dropped for rank deficiency.
    encoder : Any
        Opaque state used by :meth:`bayesglmm.design.build.encode_new_data`.
    separation : Separation or None
        (Quasi-)complete separation of this ``y`` by the fixed effects, found (and warned
        about) when the design was built; None when there is none or ``y`` was replaced.
    weights : ndarray or None
        Prior weights, lme4's meaning (None: unweighted).  Bernoulli, binomial and Poisson:
        case weights that multiply each row's log-likelihood; gaussian: precision weights
        (residual variance ``sigma^2 / w``).  A weight of 0 removes the row from the
        likelihood (it keeps its fitted value).  A binomial *proportion* response with
        ``weights=`` carries them as ``trials`` instead (glmer's reading), so here they are
        only the 0/1 flags of zero-weight rows, or None.
    """

    y: np.ndarray
    trials: np.ndarray | None
    offset: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    blocks: tuple[RandomBlock, ...]
    family: Family
    formula: str = ""
    response_name: str = "y"
    success_level: str | None = None
    n_input: int = 0
    n_dropped: int = 0
    dropped_columns: tuple[str, ...] = ()
    row_index: np.ndarray | None = None
    encoder: Any = field(default=None, repr=False)
    separation: Any = field(default=None, repr=False)
    weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of observations used."""
        return int(self.y.shape[0])

    @property
    def k(self) -> int:
        """Number of fixed-effect columns."""
        return int(self.X.shape[1])

    def row_mean(self, a: np.ndarray) -> np.ndarray:
        """Column means of a per-row array, weighted by the prior weights when there are
        any (a case-weight-``k`` row counts as ``k`` rows: default priors and the centring
        of the fixed effects then match the data with the row repeated)."""
        a = np.asarray(a, dtype=float)
        if self.weights is None or a.shape[0] == 0:
            return a.mean(axis=0)
        w = np.asarray(self.weights, dtype=float)
        if w.sum() <= 0:
            return a.mean(axis=0)
        return np.tensordot(w, a, axes=(0, 0)) / w.sum()

    def row_std(self, a: np.ndarray) -> np.ndarray:
        """Column SDs (ddof 0) of a per-row array, weighted as :meth:`row_mean`."""
        a = np.asarray(a, dtype=float)
        if self.weights is None or a.shape[0] == 0:
            return a.std(axis=0)
        d = a - self.row_mean(a)
        return np.sqrt(np.maximum(self.row_mean(d * d), 0.0))

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct grouping-factor names, in block order."""
        seen: dict[str, None] = {}
        for b in self.blocks:
            seen.setdefault(b.group, None)
        return tuple(seen)
