"""The negative binomial family (NB2, log link; lme4's ``glmer.nb``, glmmTMB's ``nbinom2``).

Reference values: ``glmm`` 0.6.2 (PyPI, Laplace), stored in ``fixtures/glmm_negbin.json`` by
``fixtures/make_glmm_negbin.py`` (seeded simulated data, 1 and 2 grouping factors).  The
dispersion is the NB shape (lme4's ``theta``, glmm's ``Fit.dispersion``), our ``shape``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesglmm as bg
from bayesglmm.families import get_family
from bayesglmm.interpret.ppc import fitted, simulate_response

FIXTURES = Path(__file__).parent / "fixtures"
REF = json.loads((FIXTURES / "glmm_negbin.json").read_text())


def _load_maker():
    spec = importlib.util.spec_from_file_location(
        "make_glmm_negbin", FIXTURES / "make_glmm_negbin.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKER = _load_maker()


def _data(case: str) -> pd.DataFrame:
    df = MAKER.simulate(**REF[case]["data"])
    assert float(df["y"].sum()) == REF[case]["sum_y"]  # the fixture's data set
    return df


@pytest.fixture(scope="module")
def ml_fit() -> bg.GLMMFit:
    return bg.GLMM("y ~ x + (1|g)", _data("ri_one_factor"), family="negativebinomial").fit(
        method="ml"
    )


# ---------------------------------------------------------------------------- the family
def test_nb_aliases_resolve_to_one_family() -> None:
    for name in ("negativebinomial", "NegBinomial", "nb", "nbinom2", "negative_binomial"):
        fam = get_family(name)
        assert (fam.name, fam.link) == ("negativebinomial", "log")
        assert [d.name for d in fam.dispersion] == ["shape"]


def test_nb_loglik_score_and_deviance_are_the_nb2_ones() -> None:
    fam = get_family("nb")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 30, 50).astype(float)
    eta = rng.normal(1.0, 1.2, 50)
    th = 1.7
    mu = np.exp(eta)
    ref = stats.nbinom.logpmf(y, th, th / (th + mu))
    np.testing.assert_allclose(fam.loglik(y, eta, sigma=th), ref, rtol=1e-12, atol=1e-12)
    # score = d loglik / d eta (central differences), Fisher weight mu theta / (mu + theta)
    h = 1e-6
    num = (fam.loglik(y, eta + h, sigma=th) - fam.loglik(y, eta - h, sigma=th)) / (2 * h)
    d1, w = fam.score_weights(y, eta, sigma=th)
    np.testing.assert_allclose(d1, num, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w, mu * th / (mu + th), rtol=1e-12)
    # unit deviance = 2 (loglik at mu = y - loglik at mu), R's negative.binomial(theta)
    sat = stats.nbinom.logpmf(y, th, th / (th + np.maximum(y, 1e-300)))
    dev = fam.spec.unit_deviance(y, mu, np.ones_like(y), th)
    np.testing.assert_allclose(dev, 2 * (sat - ref), rtol=1e-9, atol=1e-9)
    # PyMC's NegativeBinomial(mu, alpha) is the same density
    import pymc as pm

    lp = pm.logp(fam.spec.pymc_row_dist(fam.link_fn, eta, 1, {"shape": th}), y).eval()
    np.testing.assert_allclose(lp, ref, rtol=1e-10, atol=1e-10)


def test_nb_loglik_constant_per_distinct_count_and_cached() -> None:
    # the eta-free lgamma terms are computed per distinct count (few, next to 1e5 rows) and
    # kept for the last (y, theta): alternating thetas, a new y with the same theta, and a
    # y with mostly distinct values (computed row by row) all give scipy's log pmf
    fam = get_family("nb")
    rng = np.random.default_rng(8)
    y = rng.integers(0, 30, 4000).astype(float)
    eta = rng.normal(1.0, 1.0, y.size)
    mu = np.exp(eta)
    for th in (1.7, 2.3, 1.7, 1.7 + 1e-9):
        ref = stats.nbinom.logpmf(y, th, th / (th + mu))
        np.testing.assert_allclose(fam.loglik(y, eta, sigma=th), ref, rtol=1e-12, atol=1e-12)
    y2 = y[::-1].copy()  # same values, other order: its own index
    ref = stats.nbinom.logpmf(y2, 1.7, 1.7 / (1.7 + mu))
    np.testing.assert_allclose(fam.loglik(y2, eta, sigma=1.7), ref, rtol=1e-12, atol=1e-12)
    y3 = rng.permutation(np.arange(4000.0))  # every count distinct: the row-by-row path,
    for th in (1.7, 2.3, 1.7):  # remembered for this y (a second theta once crashed)
        ref = stats.nbinom.logpmf(y3, th, th / (th + mu))
        np.testing.assert_allclose(fam.loglik(y3, eta, sigma=th), ref, rtol=1e-12, atol=1e-9)


def test_nb_simulate_has_the_nb2_mean_and_variance() -> None:
    fam = get_family("nb")
    rng = np.random.default_rng(5)
    eta = np.full(200_000, math.log(4.0))
    y = fam.simulate(rng, eta, dispersion={"shape": 2.0})
    assert abs(y.mean() - 4.0) < 0.03
    assert abs(y.var() - (4.0 + 16.0 / 2.0)) < 0.15  # mu + mu^2 / theta = 12
    assert np.all(y == np.round(y)) and y.min() >= 0


# ---------------------------------------------------------------------------- ML vs glmm
@pytest.mark.parametrize("case", ["ri_one_factor", "ri_two_factors", "glm_no_groups"])
def test_nb_ml_matches_glmm(case: str) -> None:
    """Fixed effects and RE variances within 1e-3 of glmm's, theta within 1e-2 relative
    (without random effects, the GLM: glm.nb's fit, and the standard errors too),
    logLik within 1e-4; where they differed the higher logLik would be the better fit, so
    ours may only exceed glmm's."""
    ref = REF[case]
    fit = bg.GLMM(ref["formula"], _data(case), family="nb").fit(method="ml")
    assert fit.ml.converged
    np.testing.assert_allclose(fit.fixef().values, ref["beta"], atol=1e-3)
    vc = fit.varcorr()
    assert len(vc) == len(ref["re_variances"])
    if len(vc):
        np.testing.assert_allclose(vc["variance"].astype(float), ref["re_variances"], atol=1e-3)
    (theta,) = fit.ml.family_dispersion
    assert abs(theta / ref["theta"] - 1.0) < 1e-2
    assert fit.ml.loglik > ref["loglik"] - 1e-4
    assert fit.ml.loglik - ref["loglik"] < 1e-4  # not higher: glmm's optimum is the same
    assert list(vc["group"]) == [g for g in ("g", "h") if g in ref["formula"]]  # no Residual
    if case == "glm_no_groups":
        np.testing.assert_allclose(fit.se().values, ref["se"], rtol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("glmm") is None, reason="glmm (test extra)")
def test_nb_fixture_is_what_glmm_gives_now() -> None:
    formula, kw = MAKER.CASES["ri_one_factor"]
    now = MAKER.reference(formula, MAKER.simulate(**kw))
    ref = REF["ri_one_factor"]
    np.testing.assert_allclose(now["beta"], ref["beta"], atol=1e-8)
    assert abs(now["theta"] - ref["theta"]) < 1e-6
    assert abs(now["loglik"] - ref["loglik"]) < 1e-8


# ---------------------------------------------------------------------------- interpretation
def test_nb_print_shows_theta_as_lme4(ml_fit: bg.GLMMFit) -> None:
    text = str(ml_fit)
    theta = ml_fit.ml.family_dispersion[0]
    assert f" Family: negativebinomial(theta = {theta:.4g}) ( log )" in text
    assert "z value" in text and "Residual" not in text
    assert ml_fit.draws_dispersion()["shape"][0] == theta


def test_nb_icc_is_nakagawa_lognormal_and_trigamma(ml_fit: bg.GLMMFit) -> None:
    d = ml_fit.design
    theta = ml_fit.ml.family_dispersion[0]
    v = float(ml_fit.varcorr()["variance"].iloc[0])
    b = ml_fit.fixef().values
    lam = math.exp(float(np.mean(d.X @ b)) + v / 2)
    s2 = 1 / lam + 1 / theta
    for method, dist in (("lognormal", math.log1p(s2)), ("trigamma", special.polygamma(1, 1 / s2))):
        icc = ml_fit.icc(method=method)
        assert icc.loc["g"].iloc[0] == pytest.approx(v / (v + dist), rel=1e-10)


def test_nb_residuals_predict_and_simulate(ml_fit: bg.GLMMFit) -> None:
    d = ml_fit.design
    theta = ml_fit.ml.family_dispersion[0]
    mu = fitted(ml_fit)
    y = d.y
    np.testing.assert_allclose(
        ml_fit.residuals(type="pearson"), (y - mu) / np.sqrt(mu + mu**2 / theta), rtol=1e-10
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y > 0, y * np.log(y / mu), 0.0)
    dev = 2 * (t - (y + theta) * np.log((y + theta) / (mu + theta)))
    np.testing.assert_allclose(
        ml_fit.residuals(), np.sign(y - mu) * np.sqrt(dev), rtol=1e-9, atol=1e-12
    )
    # marginal predictions: E[exp(eta + b)] = exp(eta + v / 2) for a random intercept
    v = float(ml_fit.varcorr()["variance"].iloc[0])
    eta = d.X @ ml_fit.fixef().values
    np.testing.assert_allclose(
        np.asarray(ml_fit.predict(re="marginal")), np.exp(eta + v / 2), rtol=1e-6
    )
    rng = np.random.default_rng(0)
    sims = simulate_response(ml_fit, np.tile(np.log(mu), (400, 1)), rng)
    assert sims.shape == (400, d.n)
    # pooled variance across rows matches mu + mu^2 / theta on average
    assert abs(sims.var(axis=0).mean() / np.mean(mu + mu**2 / theta) - 1) < 0.05


def test_nb_default_prior_and_user_override() -> None:
    df = _data("ri_one_factor")
    m = bg.GLMM("y ~ x + (1|g)", df, family="nb")
    p = m.priors.dispersion("shape")
    assert (p.dist, p.params) == ("Gamma", {"alpha": 0.01, "beta": 0.01})
    m2 = bg.GLMM(
        "y ~ x + (1|g)", df, family="nb", priors={"shape": bg.Prior("Exponential", lam=0.5)}
    )
    assert m2.priors.dispersion("shape").dist == "Exponential"
    from bayesglmm.engines.bayes.pymc_model import build_pymc_model

    model = build_pymc_model(m2.design, m2.priors)
    assert "shape" in model.named_vars and "sigma" not in model.named_vars


# ---------------------------------------------------------------------------- engines
def test_nb_pql_and_agq_are_clear_errors() -> None:
    # method='laplace' integrates theta: tests/test_integrated_laplace_dispersion.py
    m = bg.GLMM("y ~ x + (1|g)", _data("ri_one_factor"), family="nb")
    with pytest.raises(bg.InferenceError, match="glmmPQL defines it only for a known theta"):
        m.fit(method="pql")
    # AGQ fits one grouping factor (tests/test_agq_dispersion.py); two are refused
    two = bg.GLMM("y ~ x + (1|g) + (1|h)", _data("ri_two_factors"), family="nb")
    with pytest.raises(bg.InferenceError, match="nagq > 1 needs one grouping factor"):
        two.fit(method="ml", nagq=5)


def test_nb_advi_is_near_ml(ml_fit: bg.GLMMFit) -> None:
    m = bg.GLMM("y ~ x + (1|g)", _data("ri_one_factor"), family="nb")
    fit = m.fit(method="advi", random_seed=1)
    np.testing.assert_allclose(fit.fixef().values, ml_fit.fixef().values, atol=0.1)
    assert abs(np.mean(fit.draws_dispersion()["shape"]) / ml_fit.ml.family_dispersion[0] - 1) < 0.3


@pytest.mark.parametrize("col", ["cnt"])
def test_nb_bad_counts_name_the_column(col: str) -> None:
    df = pd.DataFrame({col: [1, 2, -1, 3, 0, 2], "g": list("aabbcc")})
    with pytest.raises(bg.DataError, match="`cnt` must hold non-negative integer counts; found -1"):
        bg.GLMM(f"{col} ~ 1 + (1|g)", df, family="negativebinomial")
    df[col] = [1, 2, 1.5, 3, 0, 2]
    with pytest.raises(
        bg.DataError, match="`cnt` must hold non-negative integer counts; found 1.5"
    ):
        bg.GLMM(f"{col} ~ 1 + (1|g)", df, family="negativebinomial")


@pytest.mark.slow
def test_nb_nuts_posterior_means_near_ml_on_2000_rows() -> None:
    """Flat-ish priors (wide normals, the default Gamma(0.01, 0.01) on the shape): posterior
    means within 0.25 posterior SD of the Laplace ML estimates; LOO and the posterior
    predictive run on the draws."""
    df = MAKER.simulate(n=2000, ng=40, nh=0, seed=11)
    priors = {
        "intercept": bg.Prior("Normal", mu=0, sigma=10),
        "fixed": bg.Prior("Normal", mu=0, sigma=10),
        "sd": bg.Prior("HalfNormal", sigma=10),
    }
    m = bg.GLMM("y ~ x + (1|g)", df, family="nb", priors=priors)
    ml = m.fit(method="ml")
    fit = m.fit(method="nuts", draws=1000, tune=1000, chains=2, random_seed=7)
    s = fit.summary()
    for name, est in zip(["(Intercept)", "x"], ml.fixef().values, strict=True):
        assert abs(s.loc[name, "mean"] - est) < 0.25 * s.loc[name, "sd"], name
    theta = fit.draws_dispersion()["shape"]
    assert abs(theta.mean() - ml.ml.family_dispersion[0]) < 0.25 * theta.std()
    sd = s.loc["sd(g: (Intercept))"]
    # the posterior of an SD is right-skewed (its mean sits above the ML mode): 0.5 SD here
    assert abs(np.sqrt(float(ml.varcorr()["variance"].iloc[0])) - sd["mean"]) < 0.5 * sd["sd"]
    assert "shape" in s.index
    loo = fit.loo()
    assert np.isfinite(loo.elpd)
    pp = fit.posterior_predictive()
    assert pp is not None


def test_nb_observed_information_is_minus_the_score_derivative() -> None:
    fam = get_family("nb")
    rng = np.random.default_rng(8)
    y = rng.integers(0, 20, 40).astype(float)
    eta = rng.normal(0.5, 1.5, 40)
    th, h = 0.7, 1e-5
    w, dw = fam.spec.observed_information(fam.link_fn, y, eta, None, th)
    d1p, _ = fam.score_weights(y, eta + h, sigma=th)
    d1m, _ = fam.score_weights(y, eta - h, sigma=th)
    np.testing.assert_allclose(w, -(d1p - d1m) / (2 * h), rtol=1e-7, atol=1e-9)
    wp, _ = fam.spec.observed_information(fam.link_fn, y, eta + h, None, th)
    wm, _ = fam.spec.observed_information(fam.link_fn, y, eta - h, None, th)
    np.testing.assert_allclose(dw, (wp - wm) / (2 * h), rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_nb_sbc_random_intercept_nuts() -> None:
    """A small SBC of the negative binomial random intercept under NUTS (the fused kernel,
    row kernel ``nb_log``): 20 simulations from the prior, the shape ranked with the fixed effects and the group SD.
    An informative shape prior (Gamma(4, 1)): the default Gamma(0.01, 0.01) puts most of its
    mass on shapes that give all-zero or astronomically large counts.  20 simulations only
    reject gross miscalibration (``make sbc`` runs more)."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(12), 5)
    df = pd.DataFrame({"y": rng.poisson(2, g.size), "x": rng.normal(size=g.size), "g": g})
    m = bg.GLMM(
        "y ~ x + (1 | g)",
        df,
        "nb",
        priors={
            "sd": {"dist": "HalfNormal", "sigma": 1},
            "shape": {"dist": "Gamma", "alpha": 4, "beta": 1},
        },
    )
    from dask.distributed import Client

    # threads in this process: the kernel compiled (or loaded) once, no worker start-up
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        res = bg.sbc(
            m,
            n_sims=20,
            method="nuts",
            fit_kwargs=dict(draws=100, tune=200, chains=1),
            random_seed=1,
            client=c,
        )
    assert m.kernel_layout() is not None  # the default sampler is the kernel
    assert set(res.ranks.columns) == {"(Intercept)", "x", "sd(g: (Intercept))", "shape"}
    assert len(res.ranks) + len(res.failures) == 20 and len(res.failures) <= 1
    uni = res.uniformity()
    assert (uni[["p_chi2", "p_gamma"]] > 0.001).all().all(), uni


def test_nb_ml_fit_saves_and_loads(ml_fit: bg.GLMMFit, tmp_path: Path) -> None:
    path = tmp_path / "nb.nc"
    ml_fit.save(path)
    back = bg.load_fit(path)
    assert back.ml.family_dispersion[0] == pytest.approx(ml_fit.ml.family_dispersion[0])
    np.testing.assert_allclose(back.fixef().values, ml_fit.fixef().values)
    assert str(back).splitlines()[1] == str(ml_fit).splitlines()[1]  # the theta line
