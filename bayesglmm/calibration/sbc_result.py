"""The result of an SBC run: ranks, diagnostics, failures, uniformity tests and the
rank plot (:class:`SBCResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bayesglmm.calibration.uniformity import (
    bin_counts,
    bin_edges,
    chi2_test,
    ecdf_band,
    ecdf_counts,
    gamma_test,
)


@dataclass
class SBCResult:
    """Ranks, per-simulation diagnostics and uniformity tests of an SBC run.

    Attributes
    ----------
    ranks : DataFrame
        One row per successful simulation (index = simulation id), one column per parameter.
    n_draws : int
        Posterior draws the ranks are taken among (ranks lie in ``0 .. n_draws``).
    method : str
        The fitting method.
    failures : dict
        Simulation id -> why it failed: the error (type, message and where it was raised),
        or that its worker died.  The simulation is reproduced by ``sbc(..., n_sims=id + 1,
        random_seed=same)``: simulation ``i`` always uses the ``i``-th spawned seed.
    diagnostics : DataFrame
        Per successful simulation: ``elapsed_s`` and the fit's health (NUTS: divergences,
        ``max_rhat``, ``min_ess_bulk``, ...; Laplace/ADVI: ``converged``).
    """

    ranks: pd.DataFrame
    n_draws: int
    method: str
    failures: dict[int, str] = field(default_factory=dict)
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_ranks(self) -> int:
        """Number of possible rank values, ``n_draws + 1``."""
        return self.n_draws + 1

    @property
    def n_sims(self) -> int:
        """Simulations run: the finished ones (rows of ``ranks``) and the failed ones."""
        return len(self.ranks) + len(self.failures)

    def failure_report(self, limit: int | None = 10) -> str:
        """One line per failed simulation (at most ``limit``; None for all): id and reason."""
        if not self.failures:
            return f"all {self.n_sims} simulations finished"
        items = sorted(self.failures.items())
        shown = items if limit is None else items[:limit]
        lines = [
            f"{len(self.failures)} of {self.n_sims} SBC simulations failed "
            f"({len(self.ranks)} finished, kept):"
        ]
        lines += [f"  simulation {i}: {msg}" for i, msg in shown]
        if len(shown) < len(items):
            lines.append(f"  ... and {len(items) - len(shown)} more (see SBCResult.failures)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        failed = f"; {self.failure_report(limit=5)}" if self.failures else ""
        return (
            f"SBCResult(method={self.method!r}, {len(self.ranks)} of {self.n_sims} "
            f"simulations finished, n_draws={self.n_draws}, parameters="
            f"{list(self.ranks.columns)}{failed})"
        )

    def _bins(self, bins: int | None) -> int:
        return bins or max(2, min(20, len(self.ranks) // 5))

    def uniformity(
        self, bins: int | None = None, *, n_null: int = 10_000, seed: int = 0
    ) -> pd.DataFrame:
        """Tests of rank uniformity per parameter.

        Parameters
        ----------
        bins : int, optional
            Bins of whole rank values for the chi-square test (default ``n // 5``, at most
            20, so about 10 ranks are expected per bin at 200 simulations).
        n_null, seed : int
            Null draws of the ECDF statistic (seeded: repeated calls give the same p-values).

        Returns
        -------
        DataFrame
            Rows: parameters.  Columns: ``chi2``, ``df``, ``p_chi2`` (Pearson chi-square on
            binned ranks, Talts et al. 2018) and ``gamma``, ``p_gamma`` (the ECDF test of
            Säilynoja et al. 2022, as Modrák et al. 2023; sensitive to small shifts and to
            over-/under-dispersion that binning hides); see :mod:`bayesglmm.calibration.uniformity`.
        """
        bins = self._bins(bins)
        rows = {}
        for col in self.ranks:
            r = self.ranks[col].to_numpy(dtype=np.int64)
            chi2, df, p_chi2 = chi2_test(r, self.n_ranks, bins)
            g, p_gamma = gamma_test(r, self.n_ranks, n_null=n_null, seed=seed)
            rows[col] = {"chi2": chi2, "df": df, "p_chi2": p_chi2, "gamma": g, "p_gamma": p_gamma}
        return pd.DataFrame(rows, index=["chi2", "df", "p_chi2", "gamma", "p_gamma"]).T

    def plot(self, bins: int | None = None, *, alpha: float = 0.05, title: str | None = None):  # noqa: ANN201
        """Rank histograms (top) and ECDF-difference plots (bottom), one column per parameter.

        Histograms carry the pointwise ``1 - alpha`` binomial band per bin; the ECDF
        difference ``F(z) - z`` carries the *simultaneous* ``1 - alpha`` band of Säilynoja
        et al. (2022), which an ECDF of uniform ranks leaves anywhere with probability
        ``alpha``.  Column titles give both uniformity p-values.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        params = list(self.ranks.columns)
        n = len(self.ranks)
        bins = self._bins(bins)
        uni = self.uniformity(bins) if n else None
        ncol = max(1, len(params))
        fig, axes = plt.subplots(2, ncol, figsize=(3.3 * ncol, 5.6), squeeze=False)
        edges = bin_edges(self.n_ranks, bins)
        if n:
            z, lo_band, hi_band = ecdf_band(n, self.n_ranks, alpha)
        for j, p in enumerate(params):
            r = self.ranks[p].to_numpy(dtype=np.int64)
            counts, probs = bin_counts(r, self.n_ranks, bins)
            ax = axes[0, j]
            lo, hi = stats.binom.ppf([[alpha / 2], [1 - alpha / 2]], n, probs[None, :])
            ax.stairs(hi, edges, baseline=lo, fill=True, color="C0", alpha=0.2, lw=0)
            ax.stairs(counts, edges, fill=True, color="0.45", alpha=0.75)
            ax.stairs(n * probs, edges, color="C0", lw=0.8)
            ax.set_xlim(0, 1)
            pvalues = (
                ""
                if uni is None
                else f"\np(chi2) = {_fmt_p(uni.loc[p, 'p_chi2'])}, "
                f"p(ECDF) = {_fmt_p(uni.loc[p, 'p_gamma'], floor=1 / 10_001)}"
            )
            ax.set_title(
                f"{p}{pvalues}",
                fontsize="small",
            )
            ax.set_xlabel("normalized rank")
            ax.set_ylabel("count")
            _, below = ecdf_counts(r, self.n_ranks)
            zz = np.concatenate([[0.0], z, [1.0]])
            ax = axes[1, j]
            ax.fill_between(
                zz,
                np.concatenate([[0.0], lo_band - z, [0.0]]),
                np.concatenate([[0.0], hi_band - z, [0.0]]),
                step="post",
                color="C0",
                alpha=0.2,
                lw=0,
            )
            diff = np.concatenate([[0.0], below / n - z, [0.0]])
            ax.step(zz, diff, where="post", color="C3", lw=1.2)
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xlim(0, 1)
            ax.set_xlabel("normalized rank z")
            ax.set_ylabel("ECDF(z) - z")
        fig.suptitle(
            title
            or f"SBC: {self.method}, {n} simulations, {len(self.failures)} failed "
            f"(bands: {100 * (1 - alpha):.0f}%; ECDF band simultaneous)",
            fontsize="medium",
        )
        fig.tight_layout()
        return fig


def _fmt_p(p: float, floor: float = 0.0) -> str:
    """Two significant digits below 0.01 (``3.2e-04``), else two decimals; ``<=`` at the
    Monte Carlo floor of a simulated p-value."""
    if p <= floor * (1 + 1e-9):
        return f"<= {p:.1e}"
    return f"{p:.1e}" if p < 0.01 else f"{p:.2f}"
