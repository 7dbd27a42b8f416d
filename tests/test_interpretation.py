"""ICC formulas, predictions (marginal identity, new levels), plots."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from helpers import fake_ml_fit
from scipy import special

import bayesglmm as bg
from bayesglmm.interpret.icc import distribution_variance, hdi


@pytest.fixture(scope="module")
def sim_data():
    rng = np.random.default_rng(42)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=g.size)
    b = rng.normal(0, 0.5, 30)[g]
    return pd.DataFrame(
        {
            "y": rng.poisson(np.exp(0.3 + 0.5 * x + b)),
            "yb": rng.binomial(1, special.expit(0.3 + 0.5 * x + b)),
            "x": x,
            "g": g,
        }
    )


def test_distribution_variances_exact():
    assert distribution_variance("bernoulli", "logit") == pytest.approx(math.pi**2 / 3, abs=0)
    assert distribution_variance("binomial", "probit") == 1.0
    assert distribution_variance("bernoulli", "cloglog") == pytest.approx(math.pi**2 / 6, abs=0)
    lam = np.array([0.5, 2.0])
    np.testing.assert_allclose(distribution_variance("poisson", "log", lam), np.log1p(1 / lam))
    np.testing.assert_allclose(distribution_variance("poisson", "log", lam, "delta"), 1 / lam)
    np.testing.assert_allclose(
        distribution_variance("poisson", "log", lam, "trigamma"), special.polygamma(1, lam)
    )
    assert distribution_variance("gaussian", "identity", sigma2=2.5) == 2.5


def test_icc_logit_exact(sim_data):
    model = bg.GLMM("yb ~ 1 + (1 | g)", sim_data, "bernoulli")
    fit = fake_ml_fit(model, [0.0], [0.4113])
    icc = fit.icc()
    expect = 0.4113**2 / (0.4113**2 + math.pi**2 / 3)
    assert icc.loc["g", "estimate"] == pytest.approx(expect, rel=1e-12)
    assert icc.loc["total", "estimate"] == pytest.approx(expect, rel=1e-12)
    # intercept-only: var(X beta) = 0, so the conditional ICC equals the adjusted one
    assert icc.loc["conditional", "estimate"] == pytest.approx(expect, rel=1e-12)
    assert round(expect, 4) == 0.0489  # the polls number of the course notes


def test_icc_poisson_lognormal_exact(sim_data):
    model = bg.GLMM("y ~ 1 + (1 | g)", sim_data, "poisson")
    fit = fake_ml_fit(model, [0.3], [0.5])
    lam = math.exp(0.3 + 0.25 / 2)
    expect = 0.25 / (0.25 + math.log1p(1 / lam))
    assert fit.icc().loc["g", "estimate"] == pytest.approx(expect, rel=1e-12)
    assert fit.icc(method="delta").loc["g", "estimate"] == pytest.approx(0.25 / (0.25 + 1 / lam))


def test_icc_conditional_uses_fixed_variance(sim_data):
    model = bg.GLMM("yb ~ x + (1 | g)", sim_data, "bernoulli")
    fit = fake_ml_fit(model, [0.1, 0.7], [1.0])
    vf = np.var(0.7 * sim_data["x"].to_numpy())
    got = fit.icc().loc["conditional", "estimate"]
    assert got == pytest.approx(1.0 / (1.0 + math.pi**2 / 3 + vf), rel=1e-12)


def test_poisson_marginal_identity(sim_data):
    """E[exp(x b + u)] = exp(x b + tau^2 / 2) for u ~ N(0, tau^2): the course identity."""
    model = bg.GLMM("y ~ x + (1 | g)", sim_data, "poisson")
    fit = fake_ml_fit(model, [0.3, 0.5], [0.8])
    got = fit.predict(re="marginal")
    expect = np.exp(0.3 + 0.5 * sim_data["x"].to_numpy() + 0.8**2 / 2)
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    typical = fit.predict(re="none")
    np.testing.assert_allclose(typical, np.exp(0.3 + 0.5 * sim_data["x"].to_numpy()), rtol=1e-12)


def test_logit_marginal_is_flatter(sim_data):
    model = bg.GLMM("yb ~ x + (1 | g)", sim_data, "bernoulli")
    fit = fake_ml_fit(model, [0.0, 1.0], [2.0])
    new = pd.DataFrame({"x": np.linspace(-3, 3, 7)})
    marg = fit.predict(new, re="marginal")
    cond0 = fit.predict(new, re="none")
    assert np.ptp(marg) < np.ptp(cond0)
    assert marg[3] == pytest.approx(0.5)


def test_new_levels_seeded_and_modes(sim_data):
    model = bg.GLMM("y ~ x + (1 | g)", sim_data, "poisson")
    fit = fake_ml_fit(model, [0.3, 0.5], [0.8])
    new = pd.DataFrame({"x": [0.0, 0.0, 0.0], "g": [0, 1000, 1000]})
    a = fit.predict(new, random_seed=7)
    b = fit.predict(new, random_seed=7)
    np.testing.assert_array_equal(a, b)
    assert a[1] == a[2]  # rows of one new level share its draw
    assert fit.predict(new, new_levels="zero")[1] == pytest.approx(math.exp(0.3))
    with pytest.raises(bg.DesignError, match=r"level\(s\) \['1000'\] of `g` not seen"):
        fit.predict(new, new_levels="error")
    with pytest.raises(bg.DesignError, match="missing column"):
        fit.predict(pd.DataFrame({"g": [0]}))


def test_predict_at_quantiles(sim_data):
    model = bg.GLMM("y ~ x + (1 | g)", sim_data, "poisson")
    fit = fake_ml_fit(model, [0.3, 0.5], [0.8])
    tab = fit.predict_at_quantiles(q=[0.2, 0.8])
    x = sim_data["x"].to_numpy()
    np.testing.assert_allclose(tab["q0.8"], np.exp(0.3 + 0.5 * x + 0.8 * 0.8416212335729143))
    assert (tab["q0.2"] < tab["q0.8"]).all()


def test_hdi_simple():
    x = np.arange(101, dtype=float)
    lo, hi = hdi(x, 0.5)
    assert hi - lo == 50


def test_plots_render(tmp_path, sim_data):
    model = bg.GLMM("y ~ x + (1 | g)", sim_data, "poisson")
    fit = fake_ml_fit(model, [0.3, 0.5], [0.8])
    figs = {
        "ppc": fit.plot_ppc(n_draws=20),
        "ranef": fit.plot_ranef(),
        "resid": fit.plot_residuals(),
        "compare": bg.plot_compare([fit]),
        "mvc": bg.plot_marginal_vs_conditional(),
    }
    modelb = bg.GLMM("yb ~ x + (1 | g)", sim_data, "bernoulli")
    figs["ppc_binary"] = fake_ml_fit(modelb, [0.0, 1.0], [1.0]).plot_ppc(n_draws=20)
    for name, fig in figs.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.stat().st_size > 1000
        for ax in fig.axes:
            assert ax.get_xlabel(), name
        assert fig.axes[0].get_ylabel(), name


def test_marginal_vs_conditional_simulation_seeded():
    a = bg.simulate_marginal_vs_conditional(random_seed=3, rs_sd=1.0)
    b = bg.simulate_marginal_vs_conditional(random_seed=3, rs_sd=1.0)
    np.testing.assert_array_equal(a["clusters"], b["clusters"])
    assert a["clusters"].shape == (30, a["x"].size)
    # population average is flatter than the b = 0 curve: closer to 1/2 in the tails
    assert abs(a["marginal"][0] - 0.5) < abs(a["typical"][0] - 0.5)


def _level_names(ax) -> list[str]:  # noqa: ANN001
    """A caterpillar panel's level names, lowest effect first: tick labels, or the fanned-out
    texts (``gid="level-name"``) when the rows are closer than a line of text."""
    texts = [t for t in ax.texts if t.get_gid() == "level-name"]
    if texts:
        return [t.get_text() for t in sorted(texts, key=lambda t: t.get_position()[1])]
    return [t.get_text() for t in ax.get_yticklabels()]


def test_caterpillar_level_names_do_not_overlap_at_407_levels():
    """Issue 18: at 294 / 407 levels the 30 lowest and highest names were tick labels on
    consecutive rows ~2 pt apart, one black smear; now they are fanned out, one text line
    apart, each joined to its row."""
    import warnings

    import matplotlib.pyplot as plt

    rng = np.random.default_rng(5)
    n, k = 2000, 407
    g = rng.integers(0, k, n)
    df = pd.DataFrame({"y": rng.poisson(np.exp(0.3 + rng.normal(0, 0.6, k)[g])), "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.GLMM("y ~ 1 + (1 | g)", df, "poisson").fit(method="ml")
    fig = fit.plot_ranef()
    ax = fig.axes[0]
    names = _level_names(ax)
    order = fit.ranef()["g"]["(Intercept)"].sort_values(kind="stable").index.astype(str)
    n_end = len(names) // 2
    assert 10 <= n_end <= 30
    assert names[:n_end] == list(order[:n_end]) and names[n_end:] == list(order[-n_end:])
    assert f"lowest and highest {n_end} named" in ax.get_ylabel()
    fig.canvas.draw()
    boxes = sorted(
        (t.get_window_extent() for t in ax.texts if t.get_gid() == "level-name"),
        key=lambda b: b.y0,
    )
    gaps = [b2.y0 - b1.y1 for b1, b2 in zip(boxes, boxes[1:], strict=False)]
    assert min(gaps) > -0.5  # no two names overlap (pixels; rounding)
    # and none is cut off by the figure edge
    fig_box = fig.bbox
    assert all(fig_box.x0 <= b.x0 and b.x1 <= fig_box.x1 + 1 for b in boxes)
    plt.close(fig)


def test_caterpillar_names_levels_and_draws_every_factor_and_term():
    """Caterpillar plots name the levels (they were ranks 0..L-1), show every factor and
    term, and name only the extremes when there are many levels (issue 18)."""
    import warnings

    import matplotlib.pyplot as plt

    rng = np.random.default_rng(3)
    n = 600
    g = rng.integers(0, 100, n)
    h = rng.integers(0, 6, n)
    x = rng.normal(size=n)
    eta = 0.5 + 0.3 * x + rng.normal(0, 0.5, 100)[g] + rng.normal(0, 0.4, 6)[h]
    df = pd.DataFrame(
        {
            "y": rng.poisson(np.exp(eta)),
            "x": x,
            "g": [f"site{k:03d}" for k in g],
            "h": [f"beach_{k}" for k in h],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.GLMM("y ~ x + (1 + x | g) + (1 | h)", df, "poisson").fit(method="ml")
    fig = fit.plot_ranef(max_labels=20)
    assert len(fig.axes) == 3  # g: (Intercept), x; h: (Intercept)
    names = [_level_names(ax) for ax in fig.axes]
    assert len(names[0]) == 20 and all(s.startswith("site") for s in names[0])
    # the named extremes are the lowest and highest conditional modes
    modes = fit.ranef()["g"]["(Intercept)"].sort_values()
    assert names[0][0] == modes.index[0] and names[0][-1] == modes.index[-1]
    assert sorted(names[2]) == [f"beach_{k}" for k in range(6)]  # few levels: all named
    assert "95%" in fig.axes[0].get_title()
    plt.close(fig)
    one = fit.plot_ranef(block="h")
    assert len(one.axes) == 1 and one.axes[0].get_ylabel().startswith("h (6 levels")
    plt.close(one)
    with pytest.raises(bg.BayesGLMMError, match="no grouping factor 'nope'"):
        fit.plot_ranef(block="nope")


def test_prior_predictive_plot_and_prior_summary_before_fitting():
    """Issue 18: sample_prior_predictive had no plot; prior_summary only existed on fits."""
    import matplotlib.pyplot as plt

    m = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
    ps = m.prior_summary()
    assert list(ps.columns) == ["class", "term", "prior"]
    assert list(ps["term"]) == ["(Intercept)", "NAP", "Beach"]
    fig = m.plot_prior_predictive(draws=100, random_seed=1)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4 and all(t.startswith("observed at ") for t in titles)
    assert [ax.get_xlabel() for ax in fig.axes][2] == "share of zeros"
    # the observed share of zeros is drawn where it is
    line = fig.axes[2].get_lines()[0]
    obs_zeros = float(np.mean(bg.datasets.load("rikz")["Richness"] == 0))
    assert line.get_xdata()[0] == pytest.approx(obs_zeros)
    plt.close(fig)
    mb = bg.GLMM("yb ~ x + (1 | g)", _binary_frame(), "bernoulli")
    fig = mb.plot_prior_predictive(draws=50, random_seed=1)
    assert [ax.get_xlabel() for ax in fig.axes] == [
        "proportion of successes",
        "SD of the proportions per g",
    ]
    plt.close(fig)


def _binary_frame():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 5)
    return pd.DataFrame({"yb": rng.integers(0, 2, g.size), "x": rng.normal(size=g.size), "g": g})
