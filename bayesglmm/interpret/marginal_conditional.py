"""The course's marginal-vs-conditional picture: in a logistic GLMM the curve at random effect
0 is not the population average (:func:`simulate_marginal_vs_conditional`,
:func:`plot_marginal_vs_conditional`).  Seeded, so a notebook reproduces it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy import special

from bayesglmm.interpret.figure_style import COLORS

__all__ = ["plot_marginal_vs_conditional", "simulate_marginal_vs_conditional"]


def simulate_marginal_vs_conditional(
    beta0: float = 3.0,
    beta1: float = 1.0,
    ri_sd: float = 2.0,
    rs_sd: float = 0.0,
    n_clusters: int = 30,
    random_seed: int = 1,
    x: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The course's logistic simulation: cluster curves, the b = 0 curve and the population
    average (exact, by Gauss-Hermite over the random intercept and slope)."""
    rng = np.random.default_rng(random_seed)
    x = np.linspace(-8, 4, 121) if x is None else np.asarray(x, dtype=float)
    b0 = rng.normal(0, ri_sd, n_clusters)
    b1 = rng.normal(0, rs_sd, n_clusters) if rs_sd > 0 else np.zeros(n_clusters)
    clusters = special.expit(beta0 + b0[:, None] + (beta1 + b1[:, None]) * x[None, :])
    typical = special.expit(beta0 + beta1 * x)
    node, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    sd = np.sqrt(ri_sd**2 + (rs_sd * x) ** 2)  # independent intercept and slope
    marginal = special.expit(beta0 + beta1 * x[:, None] + sd[:, None] * node[None, :]) @ w
    return {"x": x, "clusters": clusters, "typical": typical, "marginal": marginal}


def plot_marginal_vs_conditional(
    beta0: float = 3.0,
    beta1: float = 1.0,
    ri_sd: float = 2.0,
    rs_sd: float = 1.0,
    n_clusters: int = 30,
    random_seed: int = 1,
):  # noqa: ANN201
    """Two panels: random intercept (SD ``ri_sd``), then random intercept and slope
    (``rs_sd``): 30 cluster curves, the "not the mean" curve at b = 0, and the population
    average.  Seeded, so a notebook reproduces it."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, slope_sd, title in zip(
        axes, (0.0, rs_sd), ("random intercept", "random intercept and slope"), strict=True
    ):
        sim = simulate_marginal_vs_conditional(
            beta0, beta1, ri_sd, slope_sd, n_clusters, random_seed
        )
        for c in sim["clusters"]:
            ax.plot(sim["x"], c, color="0.75", lw=0.7)
        ax.plot(sim["x"], sim["typical"], color=COLORS[3], lw=2, label="b = 0 (not the mean)")
        ax.plot(
            sim["x"], sim["marginal"], color=COLORS[0], lw=2, ls="--", label="population average"
        )
        ax.set_xlabel("x")
        ax.set_title(title)
    axes[0].set_ylabel("P(y = 1)")
    axes[0].legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig
