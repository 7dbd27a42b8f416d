"""Bayesian integrated Laplace vs NUTS, and the comparison table across methods."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesglmm as bg
from bayesglmm.calibration.prior_simulation import simulate_from_prior
from bayesglmm.engines.bayes.cov_param import CovParam, corr_cholesky
from bayesglmm.engines.bayes.inla_grid import explore_grid, sample_grid

TOENAIL = "outcome ~ treatment * time + (1 | patientID)"
EPI_RS = "y ~ offset(log(weeks)) + followup * group + (1 + followup | subject)"


@pytest.fixture(scope="module")
def toenail_model():
    return bg.GLMM(TOENAIL, bg.datasets.load("toenail"), "bernoulli")


def test_does_not_collapse_and_is_seeded(toenail_model):
    """The joint-mode Laplace collapses (pymc-extras: SD 19, statsmodels: ~0; NUTS 4.15);
    integrating the random effects out does not."""
    a = toenail_model.fit(method="laplace", random_seed=3, draws=300)
    b = toenail_model.fit(method="laplace", random_seed=3, draws=300)
    sd = np.sqrt(a.draws_cov(0)[:, 0, 0])
    assert 3.0 < np.median(sd) < 5.5
    np.testing.assert_array_equal(a.draws_fixed(), b.draws_fixed())
    assert a.approximate and a.idata["log_likelihood"]["y"].shape == (1, 300, 1908)
    assert set(a.icc().columns) == {"mean", "sd", "eti95_lb", "eti95_ub"}


@pytest.mark.parametrize("p", [2, 3])
@pytest.mark.parametrize("eta", [1.0, 2.0, 4.0])
def test_lkj_prior_through_partial_correlations(p, eta):
    """The prior of the unconstrained correlations is LKJ(eta) on C times |dC/dy|: the
    difference from (eta - 1) log det C + log |dC/dy| (finite differences) is constant."""
    n = p * (p - 1) // 2
    lower = np.tril_indices(p, -1)

    def offdiag(y):
        L, _ = corr_cholesky(y, p)
        return (L @ L.T)[lower]

    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(6):
        y = rng.normal(size=n)
        L, log_jac = corr_cholesky(y, p)
        ours = (p - np.arange(1, p) - 1 + 2 * (eta - 1)) @ np.log(np.diag(L)[1:]) + log_jac
        J = np.column_stack(
            [(offdiag(y + 1e-6 * e) - offdiag(y - 1e-6 * e)) / 2e-6 for e in np.eye(n)]
        )
        ref = (eta - 1) * np.linalg.slogdet(L @ L.T)[1] + np.linalg.slogdet(J)[1]
        gaps.append(ours - ref)
    assert np.ptp(gaps) < 1e-6


def test_cov_param_round_trip_and_prior():
    m = bg.GLMM(EPI_RS, bg.datasets.load("epilepsy"), "poisson", priors={"cor": 3.0})
    cp = CovParam(m.design, m.priors)
    assert cp.size == 3 and cp.names[2] == "cpc_subject[followup,(Intercept)]"
    psi = np.array([np.log(0.7), np.log(0.5), np.arctanh(0.3)])
    theta = cp.to_theta(psi)  # lme4 order: L11, L21, L22 of diag(sd) chol(C)
    np.testing.assert_allclose(theta, [0.7, 0.5 * 0.3, 0.5 * np.sqrt(1 - 0.09)])
    np.testing.assert_allclose(cp.from_theta(theta), psi)
    # SD priors with the log Jacobian, and LKJ(3) in tanh space: (1 - r^2)^eta
    sd_prior = m.priors.sd["subject"][0]
    expected = float(np.sum(sd_prior.logpdf(np.exp(psi[:2])) + psi[:2])) + 3.0 * np.log(0.91)
    assert cp.log_prior(psi) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("formula", "data", "family"),
    [
        ("remission ~ Age + Married + IL6 + (1 | DID)", "hdp", "bernoulli"),
        (
            "y ~ offset(log(weeks)) + followup * group + (1 + followup | subject)",
            "epilepsy",
            "poisson",
        ),
    ],
)
def test_prior_gradient_matches_differences_of_the_prior(formula, data, family):
    """The term-by-term prior gradient equals central differences of the whole log prior."""
    from bayesglmm.engines.bayes.laplace_posterior import IntegratedPosterior
    from bayesglmm.engines.ml.laplace import LaplaceObjective

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bg.GLMM(formula, bg.datasets.load(data), family)
    post = IntegratedPosterior(model.design, model.priors, LaplaceObjective(model.design), 1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        phi = rng.normal(scale=0.7, size=post.m + post.k)
        h = 1e-5
        ref = [
            (post.log_prior(phi + e) - post.log_prior(phi - e)) / (2 * h)
            for e in h * np.eye(phi.size)
        ]
        np.testing.assert_allclose(post._prior_grad(phi), ref, rtol=1e-6, atol=1e-6)


def test_grid_sampler_captures_a_skewed_density():
    """log Gamma(2) (skewness -0.78): the flood-filled grid and the in-cell sampler give its
    mean, SD and skewness; the Gaussian at the mode would give skewness 0 and a shifted mean."""
    a = 2.0
    logdens = lambda x, hint: (a * x[0] - np.exp(x[0]), None)  # noqa: E731
    mode, var = np.log(a), 1.0 / a  # mode and inverse curvature there
    grid = explore_grid(logdens, np.array([mode]), np.array([[var]]), step=0.5, threshold=3.0)
    assert 8 <= grid.lp.size <= 20
    _, z = sample_grid(grid, 40_000, np.random.default_rng(1))
    x = grid.psi(z)[:, 0]
    exact = np.log(np.random.default_rng(2).gamma(a, size=400_000))
    assert x.mean() == pytest.approx(exact.mean(), abs=0.015)
    assert x.std() == pytest.approx(exact.std(), rel=0.03)
    assert stats.skew(x) == pytest.approx(stats.skew(exact), abs=0.1)


def test_strategy_info_and_correlated_draws():
    m = bg.GLMM(EPI_RS, bg.datasets.load("epilepsy"), "poisson")
    fit = m.fit(method="laplace", random_seed=2, draws=200)
    assert fit.options["strategy"] == "grid" and fit.options["n_hyper"] == 3
    assert fit.options["grid_points"] > 20
    post = fit.idata["posterior"]
    assert post["cor_subject"].dims == ("chain", "draw", "subject__term", "subject__term_b")
    assert post["r_subject"].shape == (1, 200, 59, 2)
    cor = post["cor_subject"].values[0, :, 0, 1]
    assert np.all(np.abs(cor) < 1) and 0.0 < cor.mean() < 0.35
    gauss = m.fit(method="laplace", random_seed=2, draws=200, strategy="gaussian")
    assert gauss.options["strategy"] == "gaussian" and "grid_points" not in gauss.options
    # checked before any work, with the valid choices (bayesglmm.validate)
    with pytest.raises(bg.ArgumentError, match="`strategy` must be one of"):
        m.fit(method="laplace", strategy="ccd")


@pytest.mark.slow
@pytest.mark.parametrize(
    "formula,data,family",
    [
        (TOENAIL, "toenail", "bernoulli"),
        ("bush ~ black + female + (1 | state)", "polls", "bernoulli"),
        ("y ~ offset(log(weeks)) + followup * group + (1 | subject)", "epilepsy", "poisson"),
    ],
)
def test_laplace_agrees_with_nuts(formula, data, family):
    """Fixed-effect means within 0.25 NUTS posterior SD; group-SD medians within 15%."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM(formula, bg.datasets.load(data), family)
        nuts = m.fit(draws=1000, tune=1000, chains=4, random_seed=1)
        lap = m.fit(method="laplace", random_seed=1)
    diff = (lap.fixef() - nuts.fixef()).abs()
    assert (diff < 0.25 * nuts.se()).all(), (lap.fixef(), nuts.fixef(), nuts.se())
    med = lambda f: float(np.median(np.sqrt(f.draws_cov(0)[:, 0, 0])))  # noqa: E731
    assert med(lap) == pytest.approx(med(nuts), rel=0.15)
    if data == "toenail":
        ml = m.fit(method="ml")
        agq = m.fit(method="ml", nagq=25)
        table = bg.compare([nuts, lap, ml, agq])
        assert table.loc["(Intercept)", "ml"] == pytest.approx(-2.51, abs=0.02)
        assert table.loc["(Intercept)", "agq25"] == pytest.approx(-1.61, abs=0.01)
        assert table.attrs["reference"] == "nuts"
        assert abs(table.loc["(Intercept)", "ml dist"]) > 1.5  # Laplace ML is badly off
        assert {"logLik", "elapsed_s", "ICC(patientID)"} <= set(table.index)


@pytest.mark.slow
def test_laplace_agrees_with_nuts_correlated_slopes():
    """Epilepsy with a correlated random intercept and slope (LKJ prior on the correlation):
    fixed-effect means within 0.25 NUTS SD, SD medians within 15%, correlation within 0.15."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM(EPI_RS, bg.datasets.load("epilepsy"), "poisson")
        nuts = m.fit(draws=500, tune=500, chains=2, random_seed=1, target_accept=0.95)
        lap = m.fit(method="laplace", random_seed=1)
    diff = (lap.fixef() - nuts.fixef()).abs()
    assert (diff < 0.25 * nuts.se()).all(), (lap.fixef(), nuts.fixef(), nuts.se())
    sd_med, cor_mean = {}, {}
    for name, f in (("lap", lap), ("nuts", nuts)):
        cov = f.draws_cov(0)
        sd_med[name] = np.median(np.sqrt(np.einsum("sii->si", cov)), axis=0)
        cor_mean[name] = np.mean(cov[:, 0, 1] / np.sqrt(cov[:, 0, 0] * cov[:, 1, 1]))
    np.testing.assert_allclose(sd_med["lap"], sd_med["nuts"], rtol=0.15)
    assert cor_mean["lap"] == pytest.approx(cor_mean["nuts"], abs=0.15)


@pytest.mark.slow
def test_grid_captures_skewed_sd_posterior():
    """RIKZ has 9 beaches, so the SD posterior is skewed (NUTS: median 0.57, 95% 1.00).
    The grid over log sd matches NUTS's quantiles; one Gaussian in log sd cannot (its 95%
    quantile is ~20% too low)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
        nuts = m.fit(draws=1000, tune=1000, chains=2, random_seed=1, target_accept=0.95)
        grid = m.fit(method="laplace", random_seed=1, draws=4000)
        gauss = m.fit(method="laplace", random_seed=1, draws=4000, strategy="gaussian")
    q = {
        name: np.quantile(np.sqrt(f.draws_cov(0)[:, 0, 0]), [0.05, 0.5, 0.95])
        for name, f in (("nuts", nuts), ("grid", grid), ("gauss", gauss))
    }
    np.testing.assert_allclose(q["grid"], q["nuts"], rtol=0.08)
    err_grid = np.abs(q["grid"] / q["nuts"] - 1)
    err_gauss = np.abs(q["gauss"] / q["nuts"] - 1)
    assert err_gauss[2] > 0.1 and err_grid[2] < 0.5 * err_gauss[2]
    assert err_grid[1] < err_gauss[1]
    log_sd = np.log(np.sqrt(grid.draws_cov(0)[:, 0, 0]))
    assert stats.skew(log_sd) > 0.1  # the Gaussian's is 0 by construction


def test_small_sd_poisson_fit_does_not_fail():
    """SBC simulation 112 of 200 (benchmarks/sbc.py, seed 2018), true SD 0.16.

    L-BFGS-B stopped short (relative-reduction stop after backing off a step where the
    inner mode search failed) at a point where the Hessian is indefinite, and the fit
    raised "no proper mode". The Newton polish (Levenberg-shifted) now finishes the search.
    """
    rng = np.random.default_rng(20240601)
    n = 200
    df = pd.DataFrame(
        {
            "y": np.arange(n) % 2,
            "x": rng.normal(size=n),
            "g": np.repeat([f"g{i:02d}" for i in range(25)], 8),
        }
    )
    priors = {
        "intercept": {"dist": "Normal", "mu": 0, "sigma": 1},
        "fixed": {"dist": "Normal", "mu": 0, "sigma": 1},
        "sd": {"dist": "HalfNormal", "sigma": 1},
    }
    model = bg.GLMM("y ~ x + (1 | g)", df, "poisson", priors=priors)
    seed = np.random.SeedSequence(2018).spawn(200)[112]
    y, truth = simulate_from_prior(model, np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.with_response(y).fit(method="laplace", draws=400, random_seed=1)
    assert fit.options["converged"]
    sd = fit.idata["posterior"]["sd_g"].values.ravel()
    assert 0.0 < np.median(sd) < 0.6
    assert abs(fit.fixef()["(Intercept)"] - truth["(Intercept)"]) < 0.3
