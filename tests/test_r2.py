"""R² (bayesglmm.interpret.r2): Nakagawa's R² against published values (stored with their
source in tests/fixtures/r2_nakagawa_published.json) and hand computations; Bayesian R²
against a hand computation from the draws."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesglmm as bg
from bayesglmm.engines.ml.estimate import MLEstimate
from bayesglmm.interpret import r2 as R2

FIX = Path(__file__).parent / "fixtures"
PUB = json.loads((FIX / "r2_nakagawa_published.json").read_text())


def _fit_at(design, beta, covs, sigma=None) -> bg.GLMMFit:  # noqa: ANN001
    """A GLMMFit holding given parameter values (as an ML estimate)."""
    est = MLEstimate(
        method="ml",
        nagq=1,
        beta=np.asarray(beta, float),
        vcov_beta=np.eye(len(beta)),
        theta=np.zeros(sum(b.n_terms * (b.n_terms + 1) // 2 for b in design.blocks)),
        covariances=tuple(np.asarray(c, float) for c in covs),
        sigma=sigma,
        loglik=float("nan"),
        modes=tuple(np.zeros((b.n_levels, b.n_terms)) for b in design.blocks),
        cond_var=tuple(np.zeros((b.n_levels, b.n_terms, b.n_terms)) for b in design.blocks),
    )
    return bg.GLMMFit(design, None, "ml", ml=est)


def test_nakagawa_sleepstudy_published_marginal() -> None:
    """lme4's sleepstudy REML fit: performance's r2_nakagawa gives marginal R² 0.27865."""
    ref = PUB["sleepstudy_reml"]
    days = np.tile(np.arange(10.0), 18)
    subj = np.repeat([f"s{i}" for i in range(18)], 10)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"Reaction": rng.normal(300, 50, 180), "Days": days, "Subject": subj})
    design = bg.build_design("Reaction ~ Days + (Days | Subject)", df, "gaussian")
    vc = ref["varcorr"]
    v0, v1 = vc["Subject.(Intercept).variance"], vc["Subject.Days.variance"]
    c01 = vc["Subject.cor"] * math.sqrt(v0 * v1)
    cov = np.array([[v0, c01], [c01, v1]])
    fit = _fit_at(
        design, [ref["fixef"]["(Intercept)"], ref["fixef"]["Days"]], [cov],
        sigma=math.sqrt(vc["Residual.variance"]),
    )  # fmt: skip
    tab = fit.r2()
    assert tab.loc["Nakagawa marginal", "estimate"] == pytest.approx(ref["R2_marginal"], abs=1e-3)
    # conditional: no published value; the hand formula with the same components
    s2_f = np.var(ref["fixef"]["Days"] * days, ddof=1)
    s2_re = np.mean(v0 + 2 * days * c01 + days**2 * v1)  # Johnson (2014): mean z' Sigma z
    hand_c = (s2_f + s2_re) / (s2_f + s2_re + vc["Residual.variance"])
    assert tab.loc["Nakagawa conditional", "estimate"] == pytest.approx(hand_c, rel=1e-12)
    assert tab.loc["Nakagawa marginal", "estimate"] == pytest.approx(
        s2_f / (s2_f + s2_re + vc["Residual.variance"]), rel=1e-12
    )
    assert (tab["method"] == "ML plug-in (no interval)").all()


def test_nakagawa_binomial_crossed_fit_matches_published_icc_and_hand_r2() -> None:
    ref = PUB["binomial_crossed"]
    df = pd.read_csv(
        FIX / "performance_r2_nakagawa_binomial.csv", dtype={"x1": str, "a1": str, "a2": str}
    )
    fit = bg.GLMM("y ~ x1 + (1 | a1) + (1 | a2)", df, family="bernoulli").fit(method="ml")
    icc = fit.icc()["estimate"]
    # our Laplace ML vs glmer's: the published ICCs to 5e-4
    assert icc["a2"] == pytest.approx(ref["icc_by_group"]["a2"], abs=5e-4)
    assert icc["a1"] == pytest.approx(ref["icc_by_group"]["a1"], abs=5e-4)
    v = {
        b.group: float(c[0, 0]) for b, c in zip(fit.design.blocks, fit.ml.covariances, strict=True)
    }
    s2_f = np.var(fit.design.X @ fit.ml.beta, ddof=1)
    total = s2_f + v["a1"] + v["a2"] + math.pi**2 / 3
    tab = fit.r2()
    assert tab.loc["Nakagawa marginal", "estimate"] == pytest.approx(s2_f / total, rel=1e-12)
    assert tab.loc["Nakagawa conditional", "estimate"] == pytest.approx(
        (s2_f + v["a1"] + v["a2"]) / total, rel=1e-12
    )


def _sim(family: str, link: str, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    G, n = 15, 12
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    eta = 0.2 + 0.6 * x + rng.normal(0, 0.8, G)[g]
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        p = bg.Family(family, link).linkinv(eta)
        y = (rng.random(G * n) < p).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


@pytest.mark.parametrize(
    ("family", "link", "method", "dist"),
    [
        ("bernoulli", "probit", "lognormal", lambda lam: 1.0),
        ("bernoulli", "cloglog", "lognormal", lambda lam: math.pi**2 / 6),
        ("poisson", "log", "lognormal", lambda lam: math.log1p(1 / lam)),
        ("poisson", "log", "delta", lambda lam: 1 / lam),
        ("poisson", "log", "trigamma", lambda lam: float(special.polygamma(1, lam))),
    ],
)
def test_nakagawa_by_family_against_hand(family, link, method, dist) -> None:  # noqa: ANN001
    df = _sim(family, link)
    fit = bg.GLMM("y ~ x + (1 | g)", df, family=family, link=link).fit(method="ml")
    X, beta = fit.design.X, fit.ml.beta
    s2_f = np.var(X @ beta, ddof=1)
    s2_re = float(fit.ml.covariances[0][0, 0])
    lam = math.exp(np.mean(X @ beta) + s2_re / 2)  # as the ICC (Nakagawa et al. 2017)
    s2_d = dist(lam)
    tab = fit.r2(method=method)
    total = s2_f + s2_re + s2_d
    assert tab.loc["Nakagawa marginal", "estimate"] == pytest.approx(s2_f / total, rel=1e-10)
    assert tab.loc["Nakagawa conditional", "estimate"] == pytest.approx(
        (s2_f + s2_re) / total, rel=1e-10
    )


@pytest.fixture(scope="module")
def lap_fit() -> bg.GLMMFit:
    df = _sim("bernoulli", "logit", seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        return bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").fit(
            method="laplace", draws=200, random_seed=4
        )


def test_bayes_r2_against_draws_by_hand(lap_fit: bg.GLMMFit) -> None:
    d = lap_fit.design
    beta = lap_fit.draws_fixed()  # (S, 2)
    r = lap_fit.draws_ranef(0)[:, :, 0]  # (S, L)
    y = d.y.astype(float)
    hand, hand_none = [], []
    for s in range(beta.shape[0]):
        mu = special.expit(d.X @ beta[s] + r[s, d.blocks[0].index])
        hand.append(np.var(mu, ddof=1) / (np.var(mu, ddof=1) + np.var(y - mu, ddof=1)))
        mu0 = special.expit(d.X @ beta[s])
        hand_none.append(np.var(mu0, ddof=1) / (np.var(mu0, ddof=1) + np.var(y - mu0, ddof=1)))
    np.testing.assert_allclose(R2.bayes_r2_draws(lap_fit), hand, rtol=1e-10)
    np.testing.assert_allclose(R2.bayes_r2_draws(lap_fit, "none"), hand_none, rtol=1e-10)
    tab = lap_fit.r2(conf_level=0.9)
    row = tab.loc["Bayes R2 (conditional)"]
    assert row["estimate"] == pytest.approx(np.median(hand), rel=1e-10)
    assert row["conf.low"] == pytest.approx(np.quantile(hand, 0.05), rel=1e-10)
    assert row["conf.high"] == pytest.approx(np.quantile(hand, 0.95), rel=1e-10)
    assert tab.attrs["conf_level"] == 0.9 and (tab["method"] == "posterior draws").all()


def test_nakagawa_posterior_per_draw(lap_fit: bg.GLMMFit) -> None:
    d = lap_fit.design
    beta = lap_fit.draws_fixed()
    s2_f = np.var(beta @ d.X.T, axis=1, ddof=1)
    s2_re = lap_fit.draws_cov(0)[:, 0, 0]
    marg = s2_f / (s2_f + s2_re + math.pi**2 / 3)
    draws = R2.nakagawa_draws(lap_fit)
    np.testing.assert_allclose(draws["marginal"], marg, rtol=1e-12)
    tab = lap_fit.r2()
    assert tab.loc["Nakagawa marginal", "estimate"] == pytest.approx(np.median(marg))
    assert tab.loc["Nakagawa marginal", "conf.low"] < tab.loc["Nakagawa marginal", "conf.high"]


def test_r2_bad_input() -> None:
    df = _sim("poisson", "log")
    fit = bg.GLMM("y ~ x + (1 | g)", df, family="poisson").fit(method="ml")
    with pytest.raises(
        bg.ArgumentError, match=r"method must be 'lognormal', 'delta' or 'trigamma'"
    ):
        fit.r2(method="exact")
    with pytest.raises(bg.ArgumentError, match=r"conf_level must be in \(0, 1\), got 95"):
        fit.r2(conf_level=95)


def test_bootstrap_fit_gives_r2_intervals() -> None:
    df = _sim("bernoulli", "logit", seed=6)
    fit = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").fit(method="ml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        boot = fit.bootstrap(n_boot=8, random_seed=1)
    tab = boot.r2()
    assert (tab["method"] == "bootstrap draws").all()
    row = tab.loc["Nakagawa marginal"]
    assert row["conf.low"] <= row["estimate"] <= row["conf.high"]
    assert bg.avg_predictions(boot, re="marginal").loc[0, "method"] == "bootstrap draws"
