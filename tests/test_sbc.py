"""Simulation-based calibration on a dask LocalCluster with 2 workers."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg


@pytest.fixture(scope="module")
def small_poisson():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(12), 5)
    df = pd.DataFrame({"y": rng.poisson(2, g.size), "x": rng.normal(size=g.size), "g": g})
    return bg.GLMM(
        "y ~ x + (1 | g)", df, "poisson", priors={"sd": {"dist": "HalfNormal", "sigma": 1}}
    )


def test_sbc_nuts_localcluster(small_poisson, tmp_path):
    res = bg.sbc(
        small_poisson,
        n_sims=20,
        method="nuts",
        fit_kwargs=dict(draws=100, tune=200, chains=1),
        random_seed=1,
    )
    assert list(res.ranks.index) == list(range(20))  # order kept
    assert set(res.ranks.columns) == {"(Intercept)", "x", "sd(g: (Intercept))"}
    assert res.ranks.to_numpy().min() >= 0 and res.ranks.to_numpy().max() <= res.n_draws
    assert not res.failures
    assert list(res.diagnostics.index) == list(range(20))
    assert {"elapsed_s", "divergences", "max_rhat"} <= set(res.diagnostics.columns)
    uni = res.uniformity()
    assert list(uni.columns) == ["chi2", "df", "p_chi2", "gamma", "p_gamma"]
    # 20 sims: only gross miscalibration rejects
    assert (uni[["p_chi2", "p_gamma"]] > 0.001).all().all(), uni
    assert uni.equals(res.uniformity())  # seeded null: same p-values on every call
    fig = res.plot()
    fig.savefig(tmp_path / "sbc.png")
    assert (tmp_path / "sbc.png").stat().st_size > 1000


def test_sbc_failures_counted_not_lost(small_poisson):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.sbc(small_poisson, n_sims=3, method="no_such_method")
    assert len(res.failures) == 3 and len(res.ranks) == 0
    assert all("unknown method `no_such_method`" in msg for msg in res.failures.values())


def test_prior_simulation_seeded(small_poisson):
    from bayesglmm.sbc import simulate_from_prior

    y1, t1 = simulate_from_prior(small_poisson, np.random.default_rng(5))
    y2, t2 = simulate_from_prior(small_poisson, np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)
    assert t1 == t2 and y1.shape == (60,)


def test_lkj_draw_is_correlation_matrix():
    from bayesglmm.sbc import _draw_lkj

    C = _draw_lkj(4, 2.0, np.random.default_rng(0))
    np.testing.assert_allclose(np.diag(C), 1.0)
    assert np.all(np.linalg.eigvalsh(C) > 0)


def test_result_plot_without_dask(tmp_path):
    from bayesglmm.sbc import SBCResult

    rng = np.random.default_rng(0)
    ranks = pd.DataFrame({"a": rng.integers(0, 100, 60), "b": rng.integers(0, 100, 60)})
    res = SBCResult(ranks=ranks, n_draws=99, method="test")
    fig = res.plot(alpha=0.01)
    assert len(fig.axes) == 4
    assert "p(ECDF)" in fig.axes[0].get_title()
    fig.savefig(tmp_path / "r.png")
