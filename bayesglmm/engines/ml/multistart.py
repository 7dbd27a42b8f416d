"""Multi-start for a correlated vector term whose covariance is poorly determined (few
groups per covariance parameter, or a fit that ended on a boundary face): screened extra
starts from correlations near +-1, the best fit kept and reported in the fit's messages
(:func:`vector_multistart`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bayesglmm.design.types import RandomBlock
from bayesglmm.engines.ml.boundary import BOUNDARY_TOL, PROBE_ERRORS

__all__ = [
    "MultiStart",
    "ridge_starts",
    "suspect_vector_terms",
    "vector_multistart",
    "vector_starts",
]

FEW_GROUPS_PER_PARAMETER = 2
"""A correlated vector term with fewer groups than this many per covariance parameter
(``p (p + 1) / 2`` for ``p`` terms: <= 5 groups for ``(1 + x | g)``, <= 11 for three
terms) has a poorly determined covariance, with several local optima of the deviance."""

START_CORRELATION = 0.9
"""The correlation of the extra starts, with either sign (near the faces ``+-1``)."""

START_SD_FLOOR = 0.1
"""Floor of the extra starts' SDs, in units of ``1 / rms`` of the term's column of ``Z``."""

START_RIDGE = 0.1
"""The ridge start adds this fraction of each variance (floored as the SDs) to the fitted
covariance: every Cholesky diagonal leaves its boundary face at once, and the local search
can then flow to another face (a 3 x 3 covariance of rank 2 whose dependent term is
another one, ``test_ml_structures_property.py::test_pinned_other_rank_deficient_face``)."""


@dataclass
class MultiStart:
    """What :func:`vector_multistart` did.

    Attributes
    ----------
    reasons : tuple of str
        Why each suspect vector term was suspect (empty: no extra starts).
    starts : tuple of str
        Labels of the extra starts tried.
    best : str
        The start the returned fit came from (``"default"``: the first fit).
    gain : float
        Deviance decrease of the returned fit below the first one (0 if it was kept).
    """

    reasons: tuple[str, ...] = ()
    starts: tuple[str, ...] = ()
    best: str = "default"
    gain: float = 0.0

    def message(self) -> str | None:
        """The line for the fit's messages (None when no extra start was run)."""
        if not self.starts:
            return None
        head = f"multi-start: {'; '.join(self.reasons)}: {len(self.starts)} extra starts"
        if self.best == "default":
            return f"{head}; none beat the first fit"
        return f"{head}; the best came from {self.best} (deviance {self.gain:.4g} lower)"


def term_scales(block: RandomBlock) -> np.ndarray:
    """``1 / rms`` of each column of the block's ``Z`` (1 where the column is 0)."""
    rms = np.sqrt(np.mean(np.asarray(block.Z, dtype=float) ** 2, axis=0))
    return np.where(rms > 0, 1.0 / np.where(rms > 0, rms, 1.0), 1.0)


def suspect_vector_terms(
    blocks: tuple[RandomBlock, ...], factors: list[np.ndarray], correlated: tuple[bool, ...]
) -> list[tuple[int, str]]:
    """Correlated vector terms whose fitted covariance may be a local optimum only.

    Suspect: fewer than :data:`FEW_GROUPS_PER_PARAMETER` groups per covariance parameter,
    or a fitted factor on a boundary face (a Cholesky diagonal below :data:`BOUNDARY_TOL`:
    a variance of 0 or a correlation of +-1), where the deviance has other local optima
    on other faces (e.g. correlation -1 against +1).

    Returns
    -------
    list of (block index, reason)
    """
    out = []
    for i, (b, L, corr) in enumerate(zip(blocks, factors, correlated, strict=True)):
        p = b.n_terms
        if not corr or p < 2:
            continue
        n_par = p * (p + 1) // 2
        why = []
        if b.n_levels < FEW_GROUPS_PER_PARAMETER * n_par:
            why.append(f"{b.n_levels} groups for {n_par} covariance parameters")
        if np.any(np.abs(np.diag(L)) < BOUNDARY_TOL):
            why.append("a boundary fit")
        if why:
            out.append((i, f"({b.name}) on {' and '.join(why)}"))
    return out


def _cov_start(sd: np.ndarray, a: int, c: int, r: float) -> np.ndarray:
    """Lower Cholesky factor of the covariance with SDs ``sd``, correlation ``r`` between
    terms ``a`` and ``c`` and 0 elsewhere."""
    R = np.eye(sd.size)
    R[a, c] = R[c, a] = r
    return np.linalg.cholesky(sd[:, None] * R * sd[None, :])


def vector_starts(
    blocks: tuple[RandomBlock, ...],
    factors: list[np.ndarray],
    which: list[int],
    theta_of: Callable[[list[np.ndarray]], np.ndarray],
) -> list[tuple[str, np.ndarray]]:
    """Extra starts for the suspect vector terms ``which``: ``theta`` vectors, each equal to
    the fitted one except one term's factor.

    Per suspect term and pair of its columns, correlation ``+-``:data:`START_CORRELATION`
    (the neighbourhoods of both faces ``+-1``) with the fitted SDs floored at
    :data:`START_SD_FLOOR` of lme4's default scale (1 in units of ``1 / rms`` of each
    column of ``Z``).

    Parameters
    ----------
    blocks : tuple of RandomBlock
    factors : list of ndarray
        The fitted per-block Cholesky factors.
    which : list of int
        Indices of the suspect blocks.
    theta_of : callable
        Per-block factors -> flat ``theta`` (``ThetaLayout.from_factors``).

    Returns
    -------
    list of (label, theta)
    """
    out = []
    for i in which:
        b = blocks[i]
        s = term_scales(b)
        fitted = np.sqrt(np.sum(factors[i] ** 2, axis=1))
        sd = np.maximum(fitted, START_SD_FLOOR * s)
        p = b.n_terms
        for c in range(1, p):
            for a in range(c):
                for r in (START_CORRELATION, -START_CORRELATION):
                    fs = list(factors)
                    fs[i] = _cov_start(sd, a, c, r)
                    label = f"correlation {r:+.1f} between `{b.terms[a]}` and `{b.terms[c]}`"
                    out.append((label, theta_of(fs)))
    return out


def ridge_starts(
    blocks: tuple[RandomBlock, ...],
    factors: list[np.ndarray],
    which: list[int],
    theta_of: Callable[[list[np.ndarray]], np.ndarray],
) -> list[tuple[str, np.ndarray]]:
    """Per suspect vector term on a boundary face, the fitted covariance plus a ridge of
    :data:`START_RIDGE` times each variance (floored as in :func:`vector_starts`): every
    Cholesky diagonal of that term leaves its face at once, near the fitted point."""
    out = []
    for i in which:
        if not np.any(np.abs(np.diag(factors[i])) < BOUNDARY_TOL):
            continue
        b = blocks[i]
        sd = np.maximum(np.sqrt(np.sum(factors[i] ** 2, axis=1)), START_SD_FLOOR * term_scales(b))
        fs = list(factors)
        fs[i] = np.linalg.cholesky(factors[i] @ factors[i].T + START_RIDGE * np.diag(sd * sd))
        out.append((f"the fitted covariance of ({b.name}) with a ridge", theta_of(fs)))
    return out


def vector_multistart(
    screen: Callable[[np.ndarray], tuple],
    optimize_from: Callable[[np.ndarray], tuple],
    first: tuple,
    blocks: tuple[RandomBlock, ...],
    factors_of: Callable[[np.ndarray], list[np.ndarray]],
    theta_of: Callable[[list[np.ndarray]], np.ndarray],
    correlated: tuple[bool, ...],
    n_theta: int,
    *,
    min_gain: float = 1e-7,
) -> tuple[tuple, MultiStart]:
    """Restart a fit from :func:`vector_starts` when a vector term's optimum is suspect
    (:func:`suspect_vector_terms`), and keep the best.

    A covariance matrix estimated from few groups, or on a boundary face, can sit in a local
    optimum of the deviance (e.g. an intercept variance of 0 where correlation +1 is
    better); L-BFGS-B from lme4's default start finds the nearest.  Each extra start
    (correlations near both faces ``+-1``, the other parameters at the first fit's values)
    is screened by a short local search; only the best screened point that is already below
    the first fit goes through the full local optimizer (with its polish and boundary
    restarts).  Fits with no suspect term (an interior covariance estimated from many
    groups: the common case) cost nothing.

    Parameters
    ----------
    screen : callable
        ``x0 -> (x, f(x))``: a short local search (a few L-BFGS-B iterations).
    optimize_from : callable
        ``x0 -> (x, f(x), ...)``: the full local optimization (with boundary restarts).
    first : tuple
        What ``optimize_from`` returned from the default start.
    blocks : tuple of RandomBlock
    factors_of : callable
        Flat ``theta`` -> per-block Cholesky factors (``ThetaLayout.factors``).
    theta_of : callable
        Per-block factors -> flat ``theta`` (``ThetaLayout.from_factors``).
    correlated : tuple of bool
        Per block: a correlated vector term (``ThetaLayout.correlated``).
    n_theta : int
        ``theta`` is the first ``n_theta`` elements of the flat ``x``.
    min_gain : float
        A restart must lower the deviance by more than this to be kept.

    Returns
    -------
    result : tuple
        The best result of ``optimize_from``.
    info : MultiStart
    """
    x = np.asarray(first[0], dtype=float)
    factors = factors_of(x[:n_theta])
    suspect = suspect_vector_terms(blocks, factors, correlated)
    if not suspect:
        return first, MultiStart()
    which = [i for i, _ in suspect]
    starts = vector_starts(blocks, factors, which, theta_of)
    f0 = float(first[1])
    best, label = first, "default"
    # a boundary face: the full local optimizer from just off it (its path to another face
    # can be longer than the screen's few iterations: 7683.3906 after 15 iterations against
    # the first fit's 7683.3883, and 7683.2909 at its end, in the pinned case)
    ridges = ridge_starts(blocks, factors, which, theta_of)
    for lab, theta in ridges:
        xs = x.copy()
        xs[:n_theta] = theta
        try:
            ridged = optimize_from(xs)
        except PROBE_ERRORS:
            continue
        if np.isfinite(ridged[1]) and float(ridged[1]) < float(best[1]) - min_gain:
            best, label = ridged, lab
    f0 = float(best[1])
    lead: tuple[float, str, np.ndarray] | None = None
    for lab, theta in starts:
        xs = x.copy()
        xs[:n_theta] = theta
        try:
            xe, fe = screen(xs)[:2]
        except PROBE_ERRORS:
            continue  # a start the engine cannot evaluate is no evidence either way
        if np.isfinite(fe) and fe < f0 - min_gain and (lead is None or fe < lead[0]):
            lead = (float(fe), lab, np.asarray(xe, dtype=float))
    if lead is not None:
        try:
            res = optimize_from(lead[2])
        except PROBE_ERRORS:
            res = None
        if res is not None and np.isfinite(res[1]) and float(res[1]) < f0 - min_gain:
            best, label = res, lead[1]
    info = MultiStart(
        reasons=tuple(r for _, r in suspect),
        starts=tuple(lab for lab, _ in ridges + starts),
        best=label,
        gain=float(first[1]) - float(best[1]),
    )
    return best, info
