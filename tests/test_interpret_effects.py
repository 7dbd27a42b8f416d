"""marginaleffects-style verbs (bayesglmm.interpret.effects): shapes and intervals for every
engine, and the population-averaged contrast against a hand computation by quadrature."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import bayesglmm as bg


def _logit_data(seed: int = 1, G: int = 12, n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    trt = rng.integers(0, 2, G * n)
    b = rng.normal(0, 1.2, G)
    eta = -0.3 + 0.8 * x + 0.7 * trt + b[g]
    y = (rng.random(G * n) < special.expit(eta)).astype(int)
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "trt": np.where(trt == 1, "b", "a"),
            "g": [f"g{k}" for k in g],
            "half": np.where(g < G // 2, "first", "second"),  # not in the formula
        }
    )


@pytest.fixture(scope="module")
def model() -> bg.GLMM:
    return bg.GLMM("y ~ x + trt + (1 | g)", _logit_data(), family="bernoulli")


@pytest.fixture(scope="module")
def ml_fit(model: bg.GLMM) -> bg.GLMMFit:
    return model.fit(method="ml")


@pytest.fixture(scope="module")
def lap_fit(model: bg.GLMM) -> bg.GLMMFit:
    return model.fit(method="laplace", draws=200, random_seed=1)


def _pop_mean(eta: float, sd: float) -> float:
    """E[expit(eta + sd u)], u ~ N(0, 1), by adaptive quadrature (scipy.integrate.quad)."""
    f = lambda u: special.expit(eta + sd * u) * stats.norm.pdf(u)  # noqa: E731
    return integrate.quad(f, -12, 12, epsabs=1e-12, epsrel=1e-12)[0]


_U, _W = np.polynomial.legendre.leggauss(400)
_U, _W = 12.0 * _U, 12.0 * _W * stats.norm.pdf(12.0 * _U)


def _pop_mean_vec(eta: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The same integral, vectorized: Gauss-Legendre with 400 nodes on [-12, 12] (a rule
    unrelated to the package's Gauss-Hermite one; error < 1e-12 here)."""
    eta, sd = np.broadcast_arrays(np.asarray(eta, float), np.asarray(sd, float))
    return special.expit(eta[..., None] + sd[..., None] * _U) @ _W


def test_avg_comparisons_marginal_ml_matches_quadrature(ml_fit: bg.GLMMFit) -> None:
    d = ml_fit.design
    beta = np.asarray(ml_fit.ml.beta)
    sd = float(np.sqrt(ml_fit.ml.covariances[0][0, 0]))
    j = d.x_names.index("trtb")
    X0, X1 = d.X.copy(), d.X.copy()
    X0[:, j], X1[:, j] = 0.0, 1.0
    hand = np.mean(_pop_mean_vec(X1 @ beta, sd) - _pop_mean_vec(X0 @ beta, sd))
    # the vectorized rule agrees with adaptive quadrature on a few rows
    for e in (X0 @ beta)[:3]:
        assert _pop_mean_vec(e, sd) == pytest.approx(_pop_mean(e, sd), abs=1e-11)
    out = bg.avg_comparisons(ml_fit, "trt", re="marginal")
    assert list(out.columns[:3]) == ["term", "contrast", "estimate"]
    assert out.loc[0, "term"] == "trt" and out.loc[0, "contrast"] == "b - a"
    assert out.loc[0, "estimate"] == pytest.approx(hand, abs=1e-9)
    assert out.loc[0, "method"] == "delta"
    # the marginal effect is attenuated relative to the typical-group one
    none = bg.avg_comparisons(ml_fit, "trt", re="none")
    assert abs(out.loc[0, "estimate"]) < abs(none.loc[0, "estimate"])
    # delta-method SE (through beta and the SD) agrees with parametric simulation
    sim = bg.avg_comparisons(
        ml_fit, "trt", re="marginal", ml_method="simulation", n_sim=2000, random_seed=2
    )
    assert sim.loc[0, "method"] == "simulation"
    assert sim.loc[0, "estimate"] == pytest.approx(hand, abs=1e-9)
    assert sim.loc[0, "std.error"] == pytest.approx(out.loc[0, "std.error"], rel=0.1)
    z = stats.norm.ppf(0.975)
    assert out.loc[0, "conf.low"] == pytest.approx(hand - z * out.loc[0, "std.error"])


def test_avg_comparisons_marginal_bayes_matches_quadrature(lap_fit: bg.GLMMFit) -> None:
    grid = pd.DataFrame({"x": [-1.0, 0.0, 1.5], "trt": ["a", "a", "a"]})
    beta = lap_fit.draws_fixed()  # (S, k): (Intercept), x, trtb
    sd = np.sqrt(lap_fit.draws_cov(0)[:, 0, 0])
    eta_a = beta[:, :1] + beta[:, 1:2] * grid.x.to_numpy()[None, :]  # (S, 3)
    eta_b = eta_a + beta[:, 2:3]
    per_draw = (_pop_mean_vec(eta_b, sd[:, None]) - _pop_mean_vec(eta_a, sd[:, None])).mean(axis=1)
    out = bg.avg_comparisons(lap_fit, "trt", newdata=grid, re="marginal", conf_level=0.9)
    assert out.loc[0, "method"] == "posterior draws"
    assert out.loc[0, "estimate"] == pytest.approx(np.median(per_draw), abs=1e-8)
    lo, hi = np.quantile(per_draw, [0.05, 0.95])
    assert out.loc[0, "conf.low"] == pytest.approx(lo, abs=1e-8)
    assert out.loc[0, "conf.high"] == pytest.approx(hi, abs=1e-8)
    assert out.attrs["conf_level"] == 0.9


def test_datagrid_holds_numeric_group_ids_at_their_mode(load) -> None:  # noqa: ANN001
    df = load("toenail")  # patientID is int64
    fit = bg.GLMM("outcome ~ treatment + time + (1 | patientID)", df, family="bernoulli").fit(
        method="ml"
    )
    grid = bg.datagrid(fit, time=[0.0, 6.0])
    assert grid["patientID"].iloc[0] == df["patientID"].mode().iloc[0]
    assert grid["time"].tolist() == [0.0, 6.0]
    assert (grid["treatment"] == df["treatment"].mode().iloc[0]).all()


def test_comparison_functions_and_labels(ml_fit: bg.GLMMFit) -> None:
    grid = bg.datagrid(ml_fit, x=[0.0, 1.0], trt="a")
    assert len(grid) == 2 and set(grid.columns) == {"x", "trt", "g"}
    p = bg.predictions(ml_fit, grid, re="none")["estimate"].to_numpy()
    lnor = bg.comparisons(ml_fit, "x", newdata=grid.iloc[:1], re="none", comparison="lnor")
    # on the typical group the log odds ratio of +1 in x is beta_x exactly
    assert lnor.loc[0, "estimate"] == pytest.approx(ml_fit.fixef()["x"], rel=1e-8)
    assert lnor.loc[0, "contrast"] == "+1 (lnor)"
    ratio = bg.comparisons(ml_fit, "x", newdata=grid.iloc[:1], re="none", comparison="ratio")
    assert ratio.loc[0, "estimate"] == pytest.approx(p[1] / p[0], rel=1e-8)
    ravg = bg.avg_comparisons(ml_fit, {"x": 1.0}, newdata=grid, re="none", comparison="ratioavg")
    pb = bg.predictions(ml_fit, grid.assign(x=grid.x + 1), re="none")["estimate"].to_numpy()
    assert ravg.loc[0, "estimate"] == pytest.approx(pb.mean() / p.mean(), rel=1e-8)
    pair = bg.comparisons(ml_fit, {"trt": ["b", "a"]}, newdata=grid, re="none")
    assert (pair["contrast"] == "a - b").all() and len(pair) == 2


def test_slopes_match_the_analytic_derivative(ml_fit: bg.GLMMFit) -> None:
    grid = bg.datagrid(ml_fit, x=[-0.5, 0.7], trt="b")
    s = bg.slopes(ml_fit, "x", newdata=grid, re="none")
    p = bg.predictions(ml_fit, grid, re="none")["estimate"].to_numpy()
    bx = ml_fit.fixef()["x"]
    np.testing.assert_allclose(s["estimate"], bx * p * (1 - p), rtol=1e-6)
    assert (s["contrast"] == "dY/dX").all() and (s["term"] == "x").all()
    # population-averaged slope: derivative of the quadrature mean, by a wider difference
    m = bg.avg_slopes(ml_fit, "x", newdata=grid, re="marginal")
    h = 1e-3
    hi = bg.avg_predictions(ml_fit, grid.assign(x=grid.x + h), re="marginal")["estimate"][0]
    lo = bg.avg_predictions(ml_fit, grid.assign(x=grid.x - h), re="marginal")["estimate"][0]
    assert m.loc[0, "estimate"] == pytest.approx((hi - lo) / (2 * h), rel=1e-5)
    by = bg.avg_slopes(ml_fit, "x", re="marginal", by="trt")
    assert list(by["trt"]) == ["a", "b"]  # sorted, whatever the row order


def test_by_groups_average_the_rows(ml_fit: bg.GLMMFit) -> None:
    rows = bg.predictions(ml_fit, re="marginal")
    by = bg.avg_predictions(ml_fit, re="marginal", by="trt")
    for _, r in by.iterrows():
        assert r["estimate"] == pytest.approx(rows.loc[rows.trt == r["trt"], "estimate"].mean())
    # a by= column the formula does not use comes from the model's data frame
    half = bg.avg_comparisons(ml_fit, "trt", re="marginal", by="half")
    assert list(half["half"]) == ["first", "second"]
    first = bg.avg_comparisons(
        ml_fit,
        "trt",
        re="marginal",
        newdata=rows.loc[: ml_fit.design.n // 2 - 1, ["x", "trt", "g"]],
    )
    assert half.loc[0, "estimate"] == pytest.approx(first.loc[0, "estimate"])
    overall = bg.avg_predictions(ml_fit, re="marginal")
    assert len(overall) == 1
    assert overall.loc[0, "estimate"] == pytest.approx(rows["estimate"].mean())


def test_ml_new_level_prediction_is_deterministic(ml_fit: bg.GLMMFit) -> None:
    new = pd.DataFrame({"x": [0.0], "trt": ["a"], "g": ["unseen"]})
    a, b = ml_fit.predict(new), ml_fit.predict(new)
    assert a[0] == b[0]
    # default for ML: the typical group (random effect 0), as lme4's allow.new.levels
    assert a[0] == pytest.approx(ml_fit.predict(new, re="none")[0])


def test_conditional_predictions_use_each_groups_effect(ml_fit: bg.GLMMFit) -> None:
    out = bg.predictions(ml_fit)  # fitted rows, conditional
    np.testing.assert_allclose(out["estimate"], ml_fit.predict(), rtol=1e-12)
    assert len(out) == ml_fit.design.n and (out["rowid"] == np.arange(ml_fit.design.n)).all()
    # response-scale intervals: back-transformed from the link, so inside (0, 1)
    assert (out["conf.low"] > 0).all() and (out["conf.high"] < 1).all()
    assert (out["conf.low"] < out["estimate"]).all() and (out["estimate"] < out["conf.high"]).all()


ENGINES = [
    ("ml", {}),
    ("agq", {"nagq": 9}),
    ("pql", {}),
    ("laplace", {"draws": 100, "random_seed": 1}),
    pytest.param(
        "nuts",
        {"draws": 100, "tune": 150, "chains": 2, "sampler": "kernel", "random_seed": 1},
        marks=pytest.mark.slow,
    ),
    pytest.param("advi", {"draws": 100, "random_seed": 1}, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("engine", "opts"), ENGINES)
def test_predictions_shapes_and_intervals_every_engine(
    model: bg.GLMM, engine: str, opts: dict
) -> None:
    method = "ml" if engine == "agq" else engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        fit = model.fit(method=method, **opts)
    grid = bg.datagrid(fit, x=[-1.0, 0.0, 1.0], trt=["a", "b"])
    for re in ("conditional", "none", "marginal"):
        p = bg.predictions(fit, grid, re=re, conf_level=0.9)
        assert len(p) == 6 and (p["rowid"] == np.arange(6)).all()
        for c in ("estimate", "std.error", "conf.low", "conf.high", "method", "x", "trt", "g"):
            assert c in p.columns
        assert np.isfinite(p[["estimate", "std.error", "conf.low", "conf.high"]].to_numpy()).all()
        assert (p["conf.low"] <= p["estimate"]).all() and (p["estimate"] <= p["conf.high"]).all()
        assert p["method"].iloc[0] == ("posterior draws" if fit.is_bayesian else "delta")
    c = bg.avg_comparisons(fit, re="marginal")
    assert list(c["term"]) == ["x", "trt"] and list(c["contrast"]) == ["+1", "b - a"]
    assert np.isfinite(c[["estimate", "conf.low", "conf.high"]].to_numpy()).all()
    s = bg.avg_slopes(fit, "x", re="marginal", by="trt")
    assert len(s) == 2 and np.isfinite(s["estimate"]).all()
    assert fit.avg_predictions(re="marginal").shape[0] == 1


def test_bad_arguments_are_named(ml_fit: bg.GLMMFit) -> None:
    with pytest.raises(bg.ArgumentError, match=r"re must be 'conditional', 'none' or 'marginal'"):
        bg.predictions(ml_fit, re="population")
    with pytest.raises(
        bg.ArgumentError, match=r"variables: `z` is not a fixed-effect predictor of `y ~ x"
    ):
        bg.avg_comparisons(ml_fit, "z")
    with pytest.raises(bg.ArgumentError, match=r"datagrid: `z` is not a predictor of"):
        bg.datagrid(ml_fit, z=1)
    with pytest.raises(bg.ArgumentError, match=r"comparison must be one of difference, ratio"):
        bg.avg_comparisons(ml_fit, "x", comparison="odds")
    with pytest.raises(bg.ArgumentError, match=r"by: `w` is not a column of newdata"):
        bg.avg_predictions(ml_fit, by="w")
    with pytest.raises(bg.ArgumentError, match=r"slopes: `trt` is categorical; use comparisons"):
        bg.slopes(ml_fit, "trt")
    with pytest.raises(bg.ArgumentError, match=r"conf_level must be in \(0, 1\), got 95"):
        bg.predictions(ml_fit, conf_level=95)


def test_plot_predictions_draws_both_curves(ml_fit: bg.GLMMFit) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig = bg.plot_predictions(ml_fit, "x", by="trt", n_points=10)
    ax = fig.axes[0]
    assert "95% intervals" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "population average, trt = a" in labels and len(labels) == 4
    fig2 = ml_fit.plot_predictions("trt", re="marginal")
    assert fig2.axes[0].get_xlabel() == "trt"
