"""Complete and quasi-complete separation of a binary or binomial fixed-effect design.

The test is the linear program of Konis (2007), as in R's ``safeBinaryRegression`` and
``detectseparation``: the data are separated when there is a direction ``b != 0`` with

    x_i' b >= 0 for every success row and x_i' b <= 0 for every failure row

(a binomial row with ``0 < y < n`` is both, so ``x_i' b = 0`` there).  Along such a
direction the likelihood never decreases, so the maximum-likelihood estimates of the columns
with ``b_j != 0`` diverge.  The separation is *complete* when some ``b`` makes every
inequality strict, *quasi-complete* otherwise.  Priors keep the Bayesian posterior proper.

The columns are scaled to unit root mean square and ``b`` is boxed to ``[-1, 1]``.  Three
small LPs (HiGHS, through :func:`scipy.optimize.linprog`):

1. Konis' test: maximize the total margin ``sum_i s_i x_i' b`` (``s_i = +1`` for successes,
   ``-1`` for failures); it is positive exactly when the data are separated.
2. The columns to name: the separating direction with the least ``sum |b_j|`` (the
   max-margin one tilts every column a little), the constant column left free.
3. Complete or quasi-complete: maximize the smallest margin; complete when it is positive.

NumPy and SciPy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from scipy.optimize import linprog

__all__ = [
    "MAX_LP_ROWS",
    "ML_UNRELIABLE",
    "Separation",
    "detect_separation",
    "separation_message",
]

# how every ML fit message about separation starts (``fit.diagnostics()`` looks for it)
ML_UNRELIABLE = "ML estimates are unreliable"

# Above MAX_LP_ROWS rows the LPs are solved by constraint generation, so that the check stays
# cheap (a fraction of a second at 1e6 rows): each LP runs on a seeded working set of rows that
# has full column rank, its answer is checked on every row, and the rows it violates join the
# working set for the next round.  This is exact whenever it ends: a full-rank subset of
# separated data is separated, so "no direction" on the working set is a proof for all rows,
# and a direction is only reported once it holds on every row.  After _ROUNDS rounds without
# an answer the check gives up and reports nothing.
MAX_LP_ROWS = 2_000
# Up to this many rows a converging logistic fit (_finite_mle) rules separation out first:
# a few milliseconds, where one LP costs ~10 ms in HiGHS's set-up alone.
_IRLS_MAX_ROWS = 200_000
_ROUNDS = 5
_TOL = 1e-7


@dataclass(frozen=True)
class Separation:
    """A separating direction of the fixed-effect design.

    Attributes
    ----------
    kind : {"complete", "quasi-complete"}
        Complete when some direction separates every row strictly.
    columns : tuple of str
        Names of the columns with a nonzero coefficient in the direction found (their ML
        estimates are infinite).
    direction : ndarray, shape (k,)
        The direction ``b`` on the original column scale, normalized to max ``|b_j| = 1``.
    constant : {"success", "failure"} or None
        Set when every row has the same outcome (the extreme case: no predictor needed).
    """

    kind: str
    columns: tuple[str, ...]
    direction: np.ndarray
    constant: str | None = None


def _signs(y: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
    """``+1`` all successes, ``-1`` all failures, ``0`` both (binomial ``0 < y < n``)."""
    y = np.asarray(y, dtype=float)
    n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
    s = np.zeros(y.shape[0])
    s[y >= n] = 1.0
    s[y <= 0] = -1.0
    return s


def _lp(c: np.ndarray, A_ub: np.ndarray, A_eq: np.ndarray, bounds: list) -> Any:
    return linprog(
        c,
        A_ub=A_ub if A_ub.shape[0] else None,
        b_ub=np.zeros(A_ub.shape[0]) if A_ub.shape[0] else None,
        A_eq=A_eq if A_eq.shape[0] else None,
        b_eq=np.zeros(A_eq.shape[0]) if A_eq.shape[0] else None,
        bounds=bounds,
        method="highs",
    )


def _max_margin(Z: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    """Konis' LP: maximize ``sum s_i z_i' b`` s.t. ``s_i z_i' b >= 0``, ``|b_j| <= 1``."""
    one = s != 0
    A = s[one, None] * Z[one]
    res = _lp(-A.sum(axis=0), -A, Z[~one], [(-1.0, 1.0)] * Z.shape[1])
    if res.status != 0 or -res.fun <= _TOL:
        return None
    return np.where(np.abs(res.x) > 1e-6, res.x, 0.0)


def _sparsest(
    j: int, sign: float, free: np.ndarray
) -> Callable[[np.ndarray, np.ndarray], np.ndarray | None]:
    """LP: the separating direction with ``b_j = sign`` and the least ``sum |b_i|``.

    The max-margin direction tilts every column a little to widen the margins; this one
    names only the columns the separation needs.  Columns in ``free`` (a constant column:
    the threshold) cost nothing.
    """

    def lp(Z: np.ndarray, s: np.ndarray) -> np.ndarray | None:
        k = Z.shape[1]
        one = s != 0
        A = s[one, None] * Z[one]
        # b = p - q with p, q >= 0; minimize sum(p + q) over the columns other than j
        cost = np.r_[np.ones(k), np.ones(k)]
        cost[[j, k + j]] = 0.0
        cost[np.r_[free, k + free]] = 0.0
        bounds: list[tuple[float, float | None]] = [(0.0, 1.0)] * (2 * k)
        for i in free:
            bounds[i] = bounds[k + i] = (0.0, None)
        bounds[j] = (1.0, 1.0) if sign > 0 else (0.0, 0.0)
        bounds[k + j] = (0.0, 0.0) if sign > 0 else (1.0, 1.0)
        res = _lp(cost, np.column_stack([-A, A]), np.column_stack([Z[~one], -Z[~one]]), bounds)
        if res.status != 0:
            return None
        b = res.x[:k] - res.x[k:]
        return np.where(np.abs(b) > 1e-6, b, 0.0)

    return lp


def _strict(Z: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    """Maximize ``t`` s.t. ``s_i z_i' b >= t``, ``|b_j| <= 1``, ``t <= 1``: complete if ``t > 0``."""
    k = Z.shape[1]
    A = s[:, None] * Z
    res = _lp(
        np.r_[np.zeros(k), -1.0],
        np.column_stack([-A, np.ones(A.shape[0])]),
        np.zeros((0, k + 1)),
        [(-1.0, 1.0)] * k + [(None, 1.0)],
    )
    return res.x[:k] if res.status == 0 and -res.fun > _TOL else None


def _violations(Z: np.ndarray, s: np.ndarray, b: np.ndarray, strict: bool) -> np.ndarray:
    """How far each row is from satisfying the direction ``b`` (positive = violated)."""
    m = Z @ b
    if strict:
        return _TOL - s * m
    tol = 1e-8 * max(1.0, float(np.abs(m).max()))
    return np.where(s != 0, -s * m, np.abs(m)) - tol


def _finite_mle(Z: np.ndarray, y: np.ndarray, trials: np.ndarray | None) -> bool:
    """True when plain logistic regression converges to a finite MLE: then there is no
    (quasi-)complete separation (Albert & Anderson 1984), and the LPs can be skipped.

    Newton's method on the concave log-likelihood; "finite" means converged with every
    standardized coefficient below 10.  Under separation the coefficients run off along
    the separating direction, so this returns False and the LP decides.
    """
    n_tr = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
    b = np.zeros(Z.shape[1])
    for _ in range(30):
        eta = Z @ b
        p = special.expit(eta)
        w = n_tr * p * (1.0 - p)
        H = Z.T @ (w[:, None] * Z)
        try:
            step = np.linalg.solve(H, Z.T @ (y - n_tr * p))
        except np.linalg.LinAlgError:
            return False
        b = b + step
        if not np.all(np.isfinite(b)) or np.abs(b).max() > 10.0:
            return False
        if np.abs(step).max() < 1e-8:
            return True
    return False


def _working_set(Z: np.ndarray) -> np.ndarray | None:
    """A seeded subsample of rows with full column rank (None: use every row)."""
    n, k = Z.shape
    if n <= MAX_LP_ROWS:
        return None
    rng = np.random.default_rng(0)
    sample = rng.choice(n, MAX_LP_ROWS, replace=False)
    rows = [sample]
    # a sparse column (a rare level) may have no row in the sample: add up to 50 of its rows
    for j in np.flatnonzero((Z[sample] != 0).sum(axis=0) < 50):
        nz = np.flatnonzero(Z[:, j])
        rows.append(nz if nz.size <= 50 else rng.choice(nz, 50, replace=False))
    out = np.unique(np.concatenate(rows))
    return out if np.linalg.matrix_rank(Z[out]) == k else None


def _solve(
    Z: np.ndarray,
    s: np.ndarray,
    lp: Callable[[np.ndarray, np.ndarray], np.ndarray | None],
    rows: np.ndarray | None,
    strict: bool = False,
) -> np.ndarray | None:
    """A direction from ``lp`` that holds on every row (constraint generation from ``rows``)."""
    if rows is None:
        b = lp(Z, s)
        ok = b is not None and np.any(b) and not np.any(_violations(Z, s, b, strict) > 0)
        return b if ok else None
    for _ in range(_ROUNDS):
        b = lp(Z[rows], s[rows])
        if b is None or not np.any(b):
            return None  # exact: the working set is a full-rank subset of the rows
        viol = _violations(Z, s, b, strict)
        bad = np.flatnonzero(viol > 0)
        if bad.size == 0:
            return b
        rows = np.union1d(rows, bad[np.argsort(-viol[bad])[: MAX_LP_ROWS // 4]])
    return None


def detect_separation(
    X: np.ndarray,
    y: np.ndarray,
    trials: np.ndarray | None = None,
    names: Sequence[str] | None = None,
) -> Separation | None:
    """Detect complete or quasi-complete separation of a binary/binomial design.

    Parameters
    ----------
    X : ndarray, shape (n, k)
        Fixed-effect design matrix of full column rank (aliased columns already dropped).
    y : ndarray, shape (n,)
        0/1 responses, or numbers of successes when ``trials`` is given.
    trials : ndarray, optional
        Numbers of trials (binomial).
    names : sequence of str, optional
        Column names for :attr:`Separation.columns` (``x0``, ``x1``, ... by default).

    Returns
    -------
    Separation or None
        None when the data are not separated (or, rarely, when constraint generation on more
        than :data:`MAX_LP_ROWS` distinct rows does not settle within its rounds).
    """
    X = np.asarray(X, dtype=float)
    n, k = X.shape
    names = tuple(names) if names is not None else tuple(f"x{j}" for j in range(k))
    if n == 0 or k == 0:
        return None
    s = _signs(y, trials)
    scale = np.sqrt((X * X).mean(axis=0))
    scale[scale == 0] = 1.0
    Z = X / scale
    if n <= _IRLS_MAX_ROWS and _finite_mle(Z, np.asarray(y, dtype=float), trials):
        return None
    rows = _working_set(Z)
    b = _solve(Z, s, _max_margin, rows)
    if b is None:
        return None
    j = int(np.argmax(np.abs(b)))
    const = np.flatnonzero(np.ptp(X, axis=0) == 0)
    sparse = _solve(Z, s, _sparsest(j, float(np.sign(b[j])), const), rows)
    b = b if sparse is None else sparse
    complete = not np.any(s == 0) and _solve(Z, s, _strict, rows, strict=True) is not None
    constant = None
    if np.all(s == s[0]):
        constant = "success" if s[0] > 0 else "failure"
    direction = b / scale
    return Separation(
        kind="complete" if complete else "quasi-complete",
        columns=tuple(nm for nm, bj in zip(names, b, strict=True) if bj != 0.0),
        direction=direction / np.abs(direction).max(),
        constant=constant,
    )


def _join(names: Sequence[str], most: int = 5) -> str:
    shown = [f"`{n}`" for n in names[:most]]
    if len(names) > most:
        shown.append(f"{len(names) - most} more")
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def separation_message(sep: Separation) -> str:
    """The design-time warning text, naming the separating columns."""
    involved = [c for c in sep.columns if c != "(Intercept)"]
    if sep.constant is not None:
        what = f"every row is a {sep.constant}, so no predictor is needed to separate the outcome"
    elif not involved:
        what = "`(Intercept)` separates the outcome"
    else:
        verb = "separates" if len(involved) == 1 else "together separate"
        what = f"{_join(involved)} {verb} the outcome"
    return (
        f"{sep.kind} separation in the fixed effects: {what}; the ML estimates are unreliable "
        "(infinite); the Bayesian fit's priors keep the posterior proper"
    )
