"""The Beta family (logit link, precision ``phi``): ML Laplace, NUTS (PyMC model), the
interpretation functions, and its bad input.

No peer is installed for the Beta GLMM (``glmm`` has no Beta family; R's glmmTMB is not
available), so ML is checked against the simulation truth at a large ``n`` (fast) and against
a long NUTS run with flat-ish priors (``slow``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesglmm as bg
from bayesglmm.errors import DataError, InferenceError
from bayesglmm.interpret import ppc

TRUE = {"(Intercept)": -0.3, "x": 0.8, "sd": 0.5, "phi": 12.0}


def _simulate(n: int, n_groups: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=n)
    b = rng.normal(0.0, TRUE["sd"], n_groups)
    eta = TRUE["(Intercept)"] + TRUE["x"] * x + b[g]
    mu = 1.0 / (1.0 + np.exp(-eta))
    y = rng.beta(mu * TRUE["phi"], (1.0 - mu) * TRUE["phi"])
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


@pytest.fixture(scope="module")
def ml_fit():
    return bg.GLMM("y ~ x + (1 | g)", _simulate(6000, 120, 17), family="beta").fit(method="ml")


def test_beta_ml_recovers_the_simulation_truth(ml_fit):
    """n = 6000, 120 groups: the fixed effects within 3 standard errors of the truth, the
    precision within 10% and the group SD within 0.1 (its sampling SD at 120 groups ~0.035)."""
    est = ml_fit.ml
    assert est.converged
    se = np.sqrt(np.diag(est.vcov_beta))
    for i, name in enumerate(["(Intercept)", "x"]):
        assert abs(est.beta[i] - TRUE[name]) < 3 * se[i], name
    (phi,) = est.family_dispersion
    assert abs(phi / TRUE["phi"] - 1.0) < 0.10
    assert abs(np.sqrt(est.covariances[0][0, 0]) - TRUE["sd"]) < 0.1
    assert ml_fit.n_params == 4  # 2 fixed effects, 1 SD, phi


def test_beta_interpretation_ml(ml_fit):
    text = str(ml_fit)
    assert re.search(r"Family: beta\(phi = [\d.]+\) \( logit \)", text)  # as glmer.nb's
    assert "Dispersion parameters (beta, estimates): phi = " in text
    vc = ml_fit.varcorr()
    assert list(vc.group) == ["g"]  # phi is not a residual variance
    icc = ml_fit.icc()
    mu = 1.0 / (1.0 + np.exp(-(ml_fit.ml.beta[0] + 0.0)))
    assert 0.0 < float(icc.loc["g", "estimate"]) < 1.0
    # the latent (logit-scale) ICC with the delta-method observation-level variance
    v = ml_fit.ml.covariances[0][0, 0]
    phi = ml_fit.ml.family_dispersion[0]
    assert np.isfinite(mu)
    d = ml_fit.design
    xb = d.X @ ml_fit.ml.beta
    m = 1.0 / (1.0 + np.exp(-(xb.mean() + v / 2.0)))
    expect = v / (v + 1.0 / (m * (1.0 - m) * (1.0 + phi)))
    assert float(icc.loc["g", "estimate"]) == pytest.approx(expect, rel=1e-10)
    pm = ml_fit.predict(re="marginal")
    assert pm.shape == (d.n,) and np.all((pm > 0) & (pm < 1))
    r = ml_fit.residuals("pearson")
    assert np.all(np.isfinite(r)) and abs(np.std(r) - 1.0) < 0.1
    assert np.all(np.isfinite(ml_fit.residuals("deviance")))
    ll = ppc.pointwise_loglik(ml_fit)
    mu_c = ml_fit.fitted()  # conditional means: LOO's pointwise log-likelihood is Beta's
    ref = stats.beta.logpdf(d.y, mu_c * phi, (1.0 - mu_c) * phi)
    assert ll.shape == (1, d.n)
    np.testing.assert_allclose(ll[0], ref, rtol=1e-9, atol=1e-9)
    yrep = ppc.replicate(ml_fit, 5, random_seed=1)
    assert yrep.shape == (5, d.n) and np.all((yrep > 0) & (yrep < 1))


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5])
def test_beta_response_outside_0_1_is_a_clear_error(bad):
    df = _simulate(50, 5, 1)
    df.loc[3, "y"] = bad
    with pytest.raises(DataError) as e:
        bg.GLMM("y ~ x + (1 | g)", df, family="beta")
    msg = str(e.value)
    assert msg.startswith(
        "response `y` must lie strictly between 0 and 1 for the beta family (a 0 or a 1 "
        "has zero density): fit a zero-one-inflated model, or squeeze it into (0, 1) as "
        "Smithson and Verkuilen (2006), (y * (n - 1) + 0.5) / n; found "
    )
    assert f"found {bad:g} at row 3 (1 bad value(s))" in msg


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x"])
@pytest.mark.parametrize("method", ["pql"])  # laplace: test_integrated_laplace_dispersion
def test_beta_engines_it_does_not_fit(method, formula):
    m = bg.GLMM(formula, _simulate(200, 10, 2), family="beta")
    with pytest.raises(InferenceError, match="beta family"):
        m.fit(method=method)


@pytest.mark.slow
def test_beta_nuts_posterior_means_near_ml():
    """2,000 rows in 100 groups, default priors (phi ~ Gamma(0.01, 0.01), weak fixed-effect
    priors): the posterior means of the fixed effects and phi, and the posterior median of the
    group SD, within 0.25 posterior SD of the ML estimates (4 chains x 600 draws, nutpie).
    (With 40 groups the t's group SD median sat 0.27 posterior SD above ML: the small-sample
    gap between a posterior and ML, so the check uses 100.)"""
    df = _simulate(2000, 100, 5)
    m = bg.GLMM("y ~ x + (1 | g)", df, family="beta")
    ml = m.fit(method="ml").ml
    fit = m.fit(method="nuts", draws=600, tune=600, chains=4, random_seed=3, sampler="nutpie")
    beta = fit.draws_fixed()
    for i in range(2):
        assert abs(beta[:, i].mean() - ml.beta[i]) < 0.25 * beta[:, i].std(), i
    phi = fit.draws_dispersion()["phi"]
    assert abs(phi.mean() - ml.family_dispersion[0]) < 0.25 * phi.std()
    sd = np.sqrt(fit.draws_cov(0)[:, 0, 0])
    # the posterior of an SD is right-skewed: its median is the comparable point
    assert abs(np.median(sd) - np.sqrt(ml.covariances[0][0, 0])) < 0.25 * sd.std()
    loo = fit.loo()
    assert np.isfinite(loo.elpd)


def test_beta_glm_ml_equals_statsmodels_betamodel():
    """Without random effects the Beta GLM has a peer: statsmodels' ``BetaModel`` (logit
    mean, log precision).  Estimates within 1e-4, phi within 1e-4 relative, logLik within
    1e-6, standard errors within 1e-3 relative."""
    betareg = pytest.importorskip("statsmodels.othermod.betareg")
    df = _simulate(500, 20, 3)
    est = bg.GLMM("y ~ x", df, family="beta").fit(method="ml").ml
    X = np.column_stack([np.ones(len(df)), df.x])
    ref = betareg.BetaModel(df.y.to_numpy(), X).fit(disp=0)
    np.testing.assert_allclose(est.beta, ref.params[:2], atol=1e-4)
    assert est.family_dispersion[0] == pytest.approx(np.exp(ref.params[2]), rel=1e-4)
    assert est.loglik == pytest.approx(ref.llf, abs=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(est.vcov_beta)), ref.bse[:2], rtol=1e-3)
