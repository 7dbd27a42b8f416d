"""The one interval convention of bayesglmm: 95%, equal-tailed.

Every table, print-out and figure uses it unless the caller asks for another ``prob``:
posterior draws give the 2.5% and 97.5% quantiles (brms's and marginaleffects' default),
ML estimates ``estimate +- 1.96 SE`` (Wald, as lme4's ``confint(method = "Wald")``).
Equal-tailed rather than highest-density intervals because they are invariant under
monotone transformations (an SD's interval is the square root of the variance's) and
agree with the Wald interval when the posterior is normal.  Table columns are named as
ArviZ names them, ``eti95_lb`` and ``eti95_ub``.
"""

from __future__ import annotations

import numpy as np

CI_PROB = 0.95


def eti(draws: np.ndarray, prob: float = CI_PROB, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of ``draws`` along ``axis``: (lower, upper)."""
    tail = (1.0 - prob) / 2.0
    lo, hi = np.quantile(np.asarray(draws, dtype=float), [tail, 1.0 - tail], axis=axis)
    return lo, hi


def column_names(prob: float = CI_PROB) -> tuple[str, str]:
    """ArviZ's column names for an equal-tailed interval, e.g. ``eti95_lb, eti95_ub``."""
    pct = f"{100 * prob:g}".replace(".", "_")
    return f"eti{pct}_lb", f"eti{pct}_ub"


def describe(prob: float = CI_PROB) -> str:
    """``"95% equal-tailed interval"``, for titles and headers."""
    return f"{100 * prob:g}% equal-tailed interval"


def wald_z(prob: float = CI_PROB) -> float:
    """The normal quantile of a two-sided ``prob`` Wald interval (1.96 for 95%)."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + prob / 2.0))
