"""lme4-style accessors (bayesglmm.interpret.coefficients, .confidence_intervals, .anova_table): coef, confint, anova."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import bayesglmm as bg
from bayesglmm.engines.ml.laplace import LaplaceObjective, fit_ml


def _data(seed: int = 7, G: int = 10, n: int = 15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    z = rng.normal(size=G * n)
    eta = 0.3 + 0.9 * x + 0.25 * z + rng.normal(0, 0.9, G)[g] + rng.normal(0, 0.5, G)[g] * x
    y = (rng.random(G * n) < special.expit(eta)).astype(int)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{k:02d}" for k in g]})


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return _data()


@pytest.fixture(scope="module")
def ml_fit(df: pd.DataFrame) -> bg.GLMMFit:
    return bg.GLMM("y ~ x + z + (1 | g)", df, family="bernoulli").fit(method="ml")


@pytest.fixture(scope="module")
def ml_fit0(df: pd.DataFrame) -> bg.GLMMFit:
    return bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").fit(method="ml")


def test_coef_is_fixef_plus_ranef(ml_fit: bg.GLMMFit, df: pd.DataFrame) -> None:
    c = bg.coef(ml_fit)
    assert list(c) == ["g"]
    tab = c["g"]
    fe, re = ml_fit.fixef(), ml_fit.ranef()["g"]
    assert list(tab.columns) == ["(Intercept)", "x", "z"] and len(tab) == 10
    np.testing.assert_allclose(tab["(Intercept)"], fe["(Intercept)"] + re["(Intercept)"])
    np.testing.assert_allclose(tab["x"], fe["x"])  # no random slope: the fixed value
    # a random slope, and a second block of the same factor, are combined per factor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        f2 = bg.GLMM("y ~ x + (1 | g) + (0 + x | g)", df, family="bernoulli").fit(method="ml")
    c2 = f2.coef()["g"]
    r = f2.ranef()
    np.testing.assert_allclose(
        c2["x"], f2.fixef()["x"] + r[list(r)[1]]["x"].reindex(c2.index).to_numpy()
    )


def test_coef_bayesian_is_posterior_mean_of_sum(df: pd.DataFrame) -> None:
    fit = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").fit(
        method="laplace", draws=100, random_seed=1
    )
    tab = fit.coef()["g"]
    b = fit.draws_fixed()[:, 0][:, None] + fit.draws_ranef(0)[:, :, 0]
    np.testing.assert_allclose(tab["(Intercept)"], b.mean(axis=0), rtol=1e-12)


def test_confint_wald_is_estimate_pm_z_se(ml_fit: bg.GLMMFit) -> None:
    ci = ml_fit.confint(level=0.9)
    z = stats.norm.ppf(0.95)
    est, se = ml_fit.fixef(), ml_fit.se()
    assert list(ci.columns) == ["estimate", "5 %", "95 %", "method"]
    np.testing.assert_allclose(ci["5 %"], est - z * se, rtol=1e-12)
    np.testing.assert_allclose(ci["95 %"], est + z * se, rtol=1e-12)
    assert (ci["method"] == "Wald").all()
    assert list(bg.confint(ml_fit, ["x"]).index) == ["x"]


def _brute_force_profile(fit: bg.GLMMFit, name: str, limit: float, lo: float, hi: float):  # noqa: ANN202
    """The profile limit by brute force: refit with x_j * value moved into the offset (the
    column dropped), through the package's ordinary ML fit, and find where the deviance
    rises by chi2_1(0.95) with a bracketing root search."""
    d = fit.design
    j = d.x_names.index(name)
    keep = [k for k in range(d.k) if k != j]
    dev_hat = -2 * fit.ml.loglik

    def excess(v: float) -> float:
        dj = dataclasses.replace(
            d,
            X=d.X[:, keep],
            x_names=tuple(d.x_names[k] for k in keep),
            offset=d.offset + v * d.X[:, j],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bg.BayesGLMMWarning)
            return -2 * fit_ml(dj).loglik - dev_hat - limit

    return optimize.brentq(excess, lo, hi, xtol=1e-6)


def test_profile_interval_against_brute_force(ml_fit: bg.GLMMFit) -> None:
    ci = ml_fit.confint(method="profile")
    assert (ci["method"] == "profile").all()
    assert list(ci.index) == ["(Intercept)", "x", "z", "sd(g: (Intercept))"]
    cut = stats.chi2.ppf(0.95, 1)
    est, se = ml_fit.fixef()["x"], ml_fit.se()["x"]
    lo = _brute_force_profile(ml_fit, "x", cut, est - 4 * se, est)
    hi = _brute_force_profile(ml_fit, "x", cut, est, est + 4 * se)
    assert ci.loc["x", "2.5 %"] == pytest.approx(lo, abs=2e-4)
    assert ci.loc["x", "97.5 %"] == pytest.approx(hi, abs=2e-4)
    # SD of the random intercept: at the upper limit, the deviance minimized over the fixed
    # effects (Nelder-Mead, no gradients) is the cut-off above the optimum
    obj = LaplaceObjective(ml_fit.design)
    dev_hat = obj.deviance(np.r_[ml_fit.ml.theta, ml_fit.ml.beta])
    up = ci.loc["sd(g: (Intercept))", "97.5 %"]
    res = optimize.minimize(
        lambda b: obj.deviance(np.r_[up, b]),
        ml_fit.ml.beta,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
    )
    assert res.fun - dev_hat == pytest.approx(cut, abs=2e-3)
    assert 0 <= ci.loc["sd(g: (Intercept))", "2.5 %"] < ci.loc["sd(g: (Intercept))", "estimate"]


def test_profile_refused_with_a_reason(df: pd.DataFrame) -> None:
    pql = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").fit(method="pql")
    with pytest.raises(bg.ArgumentError, match=r"PQL has no likelihood to profile"):
        pql.confint(method="profile")


def test_profile_lmm_fixed_effects(df: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    gdf = df.assign(yg=df.x + rng.normal(size=len(df)) + rng.normal(size=10)[df.index // 15])
    lmm = bg.GLMM("yg ~ x + (1 | g)", gdf).fit(method="ml")
    with pytest.warns(bg.BayesGLMMWarning, match=r"profiles the fixed effects only"):
        ci = lmm.confint(method="profile")
    assert list(ci.index) == ["(Intercept)", "x"]
    # for an LMM the fixed-effect profile is close to Wald (slightly wider: sigma and the
    # variance re-estimated), and the deviance at each limit is the cut-off by construction
    wald = lmm.confint()
    assert ci.loc["x", "2.5 %"] == pytest.approx(wald.loc["x", "2.5 %"], abs=0.1 * lmm.se()["x"])
    assert ci.loc["x", "97.5 %"] - ci.loc["x", "2.5 %"] >= 0.99 * (
        wald.loc["x", "97.5 %"] - wald.loc["x", "2.5 %"]
    )
    cut = stats.chi2.ppf(0.95, 1)
    assert _brute_force_profile(
        lmm, "x", cut, ci.loc["x", "97.5 %"] - 0.05, ci.loc["x", "97.5 %"] + 0.05
    ) == pytest.approx(ci.loc["x", "97.5 %"], abs=1e-5)


def test_anova_lrt_by_hand(ml_fit: bg.GLMMFit, ml_fit0: bg.GLMMFit) -> None:
    tab = bg.anova(ml_fit, ml_fit0, names=["full", "reduced"])
    assert list(tab.index) == ["reduced", "full"]  # ordered by npar, as lme4
    chisq = 2 * (ml_fit.loglik - ml_fit0.loglik)
    assert tab.loc["full", "Chisq"] == pytest.approx(chisq, rel=1e-10)
    assert tab.loc["full", "Df"] == 1
    assert tab.loc["full", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(chisq, 1), rel=1e-10)
    assert tab.loc["full", "AIC"] == pytest.approx(ml_fit.aic)
    assert np.isnan(tab.loc["reduced", "Chisq"])
    assert np.isnan(tab["Pr(>Chisq) boundary"]).all()  # same random effects
    assert "note" not in tab.attrs


def test_anova_boundary_mixture(df: pd.DataFrame, ml_fit0: bg.GLMMFit) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        slope = bg.GLMM("y ~ x + (x || g)", df, family="bernoulli").fit(method="ml")
    tab = ml_fit0.anova(slope)
    chisq = tab.iloc[1]["Chisq"]
    # anova clips at 0: the slope variance is estimated at 0 here, so both fits agree to
    # the optimizer's tolerance (the bigger one was once 2e-12 lower)
    assert chisq == pytest.approx(max(0.0, 2 * (slope.loglik - ml_fit0.loglik)), abs=1e-8)
    assert tab.iloc[1]["Df"] == 1
    # one variance component at its boundary: 0.5 chi2_0 + 0.5 chi2_1
    expected = 0.5 * float(chisq <= 0) + 0.5 * stats.chi2.sf(chisq, 1)
    assert tab.iloc[1]["Pr(>Chisq) boundary"] == pytest.approx(expected, rel=1e-10)
    assert "conservative" in tab.attrs["note"]


def test_anova_bad_input(ml_fit: bg.GLMMFit, df: pd.DataFrame) -> None:
    other = bg.GLMM("y ~ x + (1 | g)", _data(seed=8), family="bernoulli").fit(method="ml")
    with pytest.raises(bg.ArgumentError, match=r"`model2` is fitted to different data"):
        bg.anova(ml_fit, other)
    pql = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").fit(method="pql")
    with pytest.raises(bg.ArgumentError, match=r"`model2` is a PQL fit, which has no likelihood"):
        bg.anova(ml_fit, pql)
    with pytest.raises(bg.ArgumentError, match=r"anova needs at least two fits"):
        bg.anova(ml_fit)


def test_bayesian_confint_and_loo_anova(df: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        a = bg.GLMM("y ~ x + z + (1 | g)", df, family="bernoulli").fit(
            method="laplace", draws=200, random_seed=1
        )
        b = bg.GLMM("y ~ 1 + (1 | g)", df, family="bernoulli").fit(
            method="laplace", draws=200, random_seed=1
        )
    ci = a.confint(level=0.8)
    beta = a.draws_fixed()
    np.testing.assert_allclose(ci.loc["x", ["10 %", "90 %"]], np.quantile(beta[:, 1], [0.1, 0.9]))
    assert "sd(g: (Intercept))" in ci.index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = bg.anova(a, b, names=["full", "null"])
        la, lb = a.loo(), b.loo()
    ea, eb = np.asarray(la.elpd_i).ravel(), np.asarray(lb.elpd_i).ravel()
    assert tab.loc["full", "elpd_loo"] == pytest.approx(ea.sum())
    best, worst = ("full", "null") if ea.sum() > eb.sum() else ("null", "full")
    assert tab.loc[best, "elpd_diff"] == 0.0
    d = (eb - ea) if best == "full" else (ea - eb)
    assert tab.loc[worst, "elpd_diff"] == pytest.approx(d.sum())
    assert tab.loc[worst, "se_diff"] == pytest.approx(np.sqrt(d.size * d.var()))
