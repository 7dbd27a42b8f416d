"""A spec's ``[simulation]`` table: checked when the spec is loaded, and the seeded
course simulation it describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.spec.schema import SIMULATION, Checker

__all__ = ["SIM_KINDS", "check_simulation", "simulate_logistic"]

SIM_KINDS = ("logistic",)


def check_simulation(c: Checker, sim: Mapping[str, Any], family: str) -> None:
    """Validate a ``[simulation]`` table for a spec of ``family`` (raises ``SpecError``)."""
    c.table(sim, SIMULATION, "[simulation]")
    if sim["kind"] not in SIM_KINDS:
        raise c.fail(f"unknown simulation kind `{sim['kind']}` (available: {', '.join(SIM_KINDS)})")
    if sim["kind"] == "logistic" and family != "bernoulli":
        raise c.fail(f'a logistic simulation needs family = "bernoulli", not `{family}`')
    c.positive(sim, ("n_clusters", "n_per_cluster"), "[simulation]")
    c.positive(sim, ("ri_sd", "rs_sd"), "[simulation]", zero_ok=True)
    if sim.get("x_min", -8.0) >= sim.get("x_max", 4.0):
        raise c.fail("[simulation] needs x_min < x_max")


def simulate_logistic(
    beta0: float,
    beta1: float,
    ri_sd: float,
    rs_sd: float,
    n_clusters: int,
    seed: int,
    n_per_cluster: int = 20,
    x_min: float = -8.0,
    x_max: float = 4.0,
) -> pd.DataFrame:
    """Clustered binary data with a random intercept and slope (the course simulation).

    The cluster effects are drawn first, as :func:`bayesglmm.simulate_marginal_vs_conditional`
    draws them with the same seed (so the fitted clusters are the plotted curves); then
    ``x ~ Uniform(x_min, x_max)`` and ``y ~ Bernoulli(expit(beta0 + b0 + (beta1 + b1) x))``.

    Returns
    -------
    pandas.DataFrame
        Columns ``y`` (0/1), ``x``, ``cluster`` (``"c01"``, ...).
    """
    rng = np.random.default_rng(seed)
    b0 = rng.normal(0.0, ri_sd, n_clusters)
    b1 = rng.normal(0.0, rs_sd, n_clusters) if rs_sd > 0 else np.zeros(n_clusters)
    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    x = rng.uniform(x_min, x_max, cluster.size)
    eta = beta0 + b0[cluster] + (beta1 + b1[cluster]) * x
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    width = len(str(n_clusters))
    return pd.DataFrame(
        {"y": y, "x": x, "cluster": [f"c{i + 1:0{width}d}" for i in cluster]},
    )
