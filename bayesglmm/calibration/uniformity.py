"""Tests and bands for the uniformity of discrete ranks (NumPy/SciPy only).

SBC ranks take the values ``0 .. L - 1`` (``L`` = posterior draws + 1), uniformly when the
fitting method is calibrated.  Two tests per parameter:

* **chi-square on binned ranks** (Talts et al. 2018): ``bins`` bins of whole rank values,
  expected counts exact even when ``bins`` does not divide ``L``;
* **ECDF "gamma" test** (Säilynoja, Bürkner and Vehtari 2022, *Stat. Comput.* 32:32; the
  test of Modrák et al. 2023, eq. 7): at every ``z_i = i / L`` the count of ranks below
  ``i`` is Binomial(n, z_i) under uniformity; ``gamma`` is twice the smallest two-sided tail
  probability over all ``i``.  Its null distribution is simulated from discrete uniform
  ranks with the same ``n`` and ``L`` (exact for discrete ranks, no continuity
  approximation), which gives the p-value and the simultaneous ECDF band: the ECDF leaves
  the ``1 - alpha`` band somewhere with probability ``alpha`` under uniformity.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import stats

__all__ = [
    "bin_counts",
    "bin_edges",
    "chi2_test",
    "ecdf_band",
    "ecdf_counts",
    "gamma_statistic",
    "gamma_test",
]


def _edges(n_ranks: int, bins: int) -> np.ndarray:
    """Integer bin edges over the rank values ``0 .. n_ranks - 1`` (as equal as possible)."""
    bins = max(1, min(bins, n_ranks))
    return np.unique(np.round(np.linspace(0, n_ranks, bins + 1)).astype(np.int64))


def bin_counts(ranks: np.ndarray, n_ranks: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ranks per bin and the bin probabilities under uniformity.

    Parameters
    ----------
    ranks : array of int
        Ranks in ``0 .. n_ranks - 1``.
    n_ranks : int
        Number of possible rank values ``L``.
    bins : int
        Number of bins of whole rank values.

    Returns
    -------
    counts, probs : ndarray
        Observed counts and expected probabilities per bin; ``edges / n_ranks`` of the bins
        is available from :func:`bin_edges`.
    """
    edges = _edges(n_ranks, bins)
    counts = np.histogram(np.asarray(ranks), bins=edges)[0]
    return counts, np.diff(edges) / n_ranks


def bin_edges(n_ranks: int, bins: int) -> np.ndarray:
    """Bin edges on the normalized-rank scale ``[0, 1]`` (matching :func:`bin_counts`)."""
    return _edges(n_ranks, bins) / n_ranks


def chi2_test(ranks: np.ndarray, n_ranks: int, bins: int) -> tuple[float, int, float]:
    """Pearson chi-square test of uniformity on binned ranks: (statistic, df, p-value)."""
    counts, probs = bin_counts(ranks, n_ranks, bins)
    expected = counts.sum() * probs
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    df = counts.size - 1
    return chi2, df, float(stats.chi2.sf(chi2, df))


def ecdf_counts(ranks: np.ndarray, n_ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """``z_i = i / L`` and the counts of ranks below ``i``, for ``i = 1 .. L - 1``."""
    r = np.asarray(ranks, dtype=np.int64)
    below = np.cumsum(np.bincount(r, minlength=n_ranks))[:-1]
    return np.arange(1, n_ranks) / n_ranks, below


@lru_cache(maxsize=32)
def _tail_table(n: int, n_ranks: int) -> np.ndarray:
    """``min(P(X <= c), P(X >= c))`` for ``X ~ Binomial(n, z_i)``: shape ``(L - 1, n + 1)``."""
    z = np.arange(1, n_ranks) / n_ranks
    c = np.arange(n + 1)
    cdf = stats.binom.cdf(c[None, :], n, z[:, None])
    sf = stats.binom.sf(c[None, :] - 1, n, z[:, None])  # P(X >= c)
    return np.minimum(cdf, sf)


def _gamma_of_counts(counts: np.ndarray, n: int, n_ranks: int) -> np.ndarray:
    """Gamma statistic of ECDF counts ``(..., L - 1)``."""
    table = _tail_table(n, n_ranks)
    cols = np.arange(n_ranks - 1)
    return np.minimum(1.0, 2.0 * table[cols, counts].min(axis=-1))


def gamma_statistic(ranks: np.ndarray, n_ranks: int) -> float:
    """Säilynoja et al.'s ``gamma``: twice the smallest pointwise binomial tail of the ECDF."""
    _, counts = ecdf_counts(ranks, n_ranks)
    return float(_gamma_of_counts(counts, int(np.size(ranks)), n_ranks))


@lru_cache(maxsize=32)
def _gamma_null(n: int, n_ranks: int, n_null: int, seed: int) -> np.ndarray:
    """Sorted null draws of ``gamma`` for ``n`` discrete uniform ranks on ``0 .. L - 1``."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_null)
    chunk = max(1, min(n_null, 2_000_000 // max(n_ranks, n)))
    for start in range(0, n_null, chunk):
        b = min(chunk, n_null - start)
        r = rng.integers(0, n_ranks, size=(b, n))
        flat = (np.arange(b)[:, None] * n_ranks + r).ravel()
        hist = np.bincount(flat, minlength=b * n_ranks).reshape(b, n_ranks)
        counts = np.cumsum(hist, axis=1)[:, :-1]
        out[start : start + b] = _gamma_of_counts(counts, n, n_ranks)
    out.sort()
    return out


def gamma_test(
    ranks: np.ndarray, n_ranks: int, *, n_null: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """ECDF gamma test of uniformity: (gamma, p-value).

    The p-value is ``(1 + #{null gamma <= gamma}) / (1 + n_null)`` with ``n_null`` null
    draws (seeded, so repeated calls agree).
    """
    n = int(np.size(ranks))
    g = gamma_statistic(ranks, n_ranks)
    null = _gamma_null(n, n_ranks, n_null, seed)
    below = int(np.searchsorted(null, g, side="right"))
    return g, (1 + below) / (1 + n_null)


def ecdf_band(
    n: int, n_ranks: int, alpha: float = 0.05, *, n_null: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simultaneous ``1 - alpha`` band of the rank ECDF: ``(z, lower, upper)`` as fractions.

    An ECDF inside the band everywhere passes :func:`gamma_test` at level ``alpha`` (up to
    the Monte Carlo error of the null quantile).
    """
    null = _gamma_null(n, n_ranks, n_null, seed)
    crit = float(np.quantile(null, alpha))
    table = _tail_table(n, n_ranks)
    inside = 2.0 * table >= crit
    lower = inside.argmax(axis=1)
    upper = n - inside[:, ::-1].argmax(axis=1)
    z = np.arange(1, n_ranks) / n_ranks
    return z, lower / n, upper / n
