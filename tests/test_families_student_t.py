"""The Student-t family (identity link; ``sigma`` and ``nu``): ML Laplace with Fisher
scoring, NUTS (PyMC model), the interpretation functions, and its limit, the gaussian LMM.

No peer is installed for the t GLMM (``glmm`` has no t family; R's glmmTMB is not
available), so ML is checked against the simulation truth at a large ``n`` (fast), against
the gaussian LMM as ``nu -> infinity`` (fast) and against a long NUTS run (``slow``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import bayesglmm as bg
from bayesglmm.errors import InferenceError
from bayesglmm.families import get_family
from bayesglmm.interpret import ppc

TRUE = {"(Intercept)": 1.0, "x": 0.5, "sd": 0.5, "sigma": 0.7, "nu": 5.0}


def _simulate(n: int, n_groups: int, seed: int, nu: float = TRUE["nu"]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=n)
    b = rng.normal(0.0, TRUE["sd"], n_groups)
    e = rng.standard_t(nu, n) if np.isfinite(nu) else rng.standard_normal(n)
    y = TRUE["(Intercept)"] + TRUE["x"] * x + b[g] + TRUE["sigma"] * e
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


@pytest.fixture(scope="module")
def ml_fit():
    return bg.GLMM("y ~ x + (1 | g)", _simulate(8000, 120, 11), family="t").fit(method="ml")


def test_student_t_aliases():
    assert get_family("t").name == get_family("student").name == "student_t"
    assert [d.name for d in get_family("t").dispersion] == ["sigma", "nu"]


def test_student_t_ml_recovers_the_simulation_truth(ml_fit):
    """n = 8000, 120 groups, nu = 5: fixed effects within 3 SE, sigma within 5%, nu within
    25% (its sampling SD at this n is ~8%), the group SD within 0.1."""
    est = ml_fit.ml
    assert est.converged
    se = np.sqrt(np.diag(est.vcov_beta))
    for i, name in enumerate(["(Intercept)", "x"]):
        assert abs(est.beta[i] - TRUE[name]) < 3 * se[i], name
    sigma, nu = est.family_dispersion
    assert abs(sigma / TRUE["sigma"] - 1.0) < 0.05
    assert abs(nu / TRUE["nu"] - 1.0) < 0.25
    assert abs(np.sqrt(est.covariances[0][0, 0]) - TRUE["sd"]) < 0.1
    assert ml_fit.n_params == 5  # 2 fixed effects, 1 SD, sigma, nu


def test_student_t_with_nu_fixed_large_is_the_gaussian_lmm():
    """With ``nu = 1e8`` the t log-likelihood is the normal one (exactly: the family switches
    to it above 1e7) and the Fisher weight ``(nu + 1) / ((nu + 3) sigma^2)`` is
    ``1 / sigma^2``, so the Laplace deviance is the LMM's exact one: ML over
    ``[theta, beta, sigma]`` at that ``nu`` equals the gaussian LMM fit (profiled ML)."""
    from bayesglmm.engines.ml.laplace_dispersion import DispersionObjective

    df = _simulate(1500, 30, 4, nu=np.inf)
    lmm = bg.GLMM("y ~ x + (1 | g)", df, family="gaussian").fit(method="ml").ml
    dobj = DispersionObjective(bg.GLMM("y ~ x + (1 | g)", df, family="t").design)
    log_nu = np.log(1e8)

    def f(z: np.ndarray) -> float:
        return dobj.deviance(np.concatenate([z, [log_nu]]))

    z0 = np.concatenate([[0.3], [0.0, 0.0], [0.0]])
    z = optimize.minimize(
        f, z0, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 20000}
    ).x
    z = optimize.minimize(f, z, method="BFGS", options={"gtol": 1e-7}).x
    # the LMM's estimates give the same deviance as the t's optimum
    assert -0.5 * f(z) == pytest.approx(lmm.loglik, abs=1e-5)
    np.testing.assert_allclose(z[1:3], lmm.beta, atol=1e-4)
    assert np.exp(z[3]) == pytest.approx(lmm.sigma, rel=1e-4)
    assert z[0] ** 2 == pytest.approx(lmm.covariances[0][0, 0], rel=1e-3)


def test_student_t_ml_near_gaussian_data_approaches_the_lmm():
    """Gaussian data: the free-nu ML fit runs nu up and its estimates approach the LMM's."""
    df = _simulate(1500, 30, 4, nu=np.inf)
    lmm = bg.GLMM("y ~ x + (1 | g)", df, family="gaussian").fit(method="ml").ml
    t = bg.GLMM("y ~ x + (1 | g)", df, family="t").fit(method="ml").ml
    sigma, nu = t.family_dispersion
    assert nu > 30
    np.testing.assert_allclose(t.beta, lmm.beta, atol=0.01)
    assert sigma == pytest.approx(lmm.sigma, rel=0.05)
    assert t.loglik >= lmm.loglik - 1e-6  # the t nests the normal


def test_student_t_interpretation_ml(ml_fit):
    text = str(ml_fit)
    assert re.search(r"Family: student_t\(nu = [\d.]+\) \( identity \)", text)
    assert "Dispersion parameters (student_t, estimates): sigma = " in text and "nu = " in text
    sigma, nu = ml_fit.ml.family_dispersion
    vc = ml_fit.varcorr()
    assert list(vc.group) == ["g", "Residual"]
    assert float(vc.sd_cor.iloc[1]) == pytest.approx(sigma)
    v = ml_fit.ml.covariances[0][0, 0]
    icc = float(ml_fit.icc().loc["g", "estimate"])
    assert icc == pytest.approx(v / (v + sigma**2 * nu / (nu - 2.0)), rel=1e-10)
    d = ml_fit.design
    pm = ml_fit.predict(re="marginal")
    np.testing.assert_allclose(pm, d.X @ ml_fit.ml.beta, rtol=1e-10)  # identity link
    r = ml_fit.residuals("pearson")
    assert np.all(np.isfinite(r)) and abs(np.std(r) - 1.0) < 0.1
    ll = ppc.pointwise_loglik(ml_fit)
    ref = stats.t.logpdf(d.y, nu, loc=ml_fit.fitted(), scale=sigma)
    np.testing.assert_allclose(ll[0], ref, rtol=1e-9, atol=1e-9)
    yrep = ppc.replicate(ml_fit, 4, random_seed=1)
    assert yrep.shape == (4, d.n) and np.all(np.isfinite(yrep))


def test_student_t_fisher_weight_is_the_laplace_weight():
    """The inner mode search and the determinant use the Fisher weight (positive), not the
    observed information, which is negative for an outlying row."""
    from bayesglmm.engines.ml.pirls import FamilyKernel

    fam = get_family("t")
    y = np.array([0.0, 10.0])
    k = FamilyKernel(fam, y)
    k.set_dispersion(np.array([1.0, 3.0]))
    eta = np.zeros(2)
    d1, w = k.score(eta)
    np.testing.assert_allclose(w, 4.0 / 6.0)
    np.testing.assert_allclose(d1, [0.0, 4.0 * 10.0 / (3.0 + 100.0)])
    w_lap, dw = k.laplace_curvature(eta, d1, w)
    np.testing.assert_allclose(w_lap, w)
    np.testing.assert_allclose(dw, 0.0, atol=1e-8)
    observed = -(k.score(eta + 1e-5)[0] - k.score(eta - 1e-5)[0]) / 2e-5
    assert observed[1] < 0 < w_lap[1]


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x"])
@pytest.mark.parametrize("method", ["pql"])  # laplace: test_integrated_laplace_dispersion
def test_student_t_engines_it_does_not_fit(method, formula):
    m = bg.GLMM(formula, _simulate(200, 10, 2), family="t")
    with pytest.raises(InferenceError, match="student_t family"):
        m.fit(method=method)


@pytest.mark.slow
def test_student_t_nuts_posterior_means_near_ml():
    """2,000 rows in 100 groups (20 a group): the posterior means of the fixed effects and
    sigma, and the posterior medians of the group SD and nu (right-skewed), within 0.25
    posterior SD of ML (4 chains x 600 draws, nutpie; with 40 groups the group SD's median
    sat 0.27 posterior SD above ML, the small-sample gap between a posterior and ML).  Priors:
    the defaults for the fixed effects and sigma; nu ~ Gamma(2, 0.02), flatter than brms's
    Gamma(2, 0.1) (mean 100: the data decide nu at this n)."""
    df = _simulate(2000, 100, 6)
    m = bg.GLMM(
        "y ~ x + (1 | g)", df, family="t", priors={"nu": bg.Prior("Gamma", alpha=2.0, beta=0.02)}
    )
    ml = m.fit(method="ml").ml
    fit = m.fit(method="nuts", draws=600, tune=600, chains=4, random_seed=3, sampler="nutpie")
    beta = fit.draws_fixed()
    for i in range(2):
        assert abs(beta[:, i].mean() - ml.beta[i]) < 0.25 * beta[:, i].std(), i
    disp = fit.draws_dispersion()
    assert abs(disp["sigma"].mean() - ml.family_dispersion[0]) < 0.25 * disp["sigma"].std()
    assert abs(np.median(disp["nu"]) - ml.family_dispersion[1]) < 0.25 * disp["nu"].std()
    sd = np.sqrt(fit.draws_cov(0)[:, 0, 0])
    assert abs(np.median(sd) - np.sqrt(ml.covariances[0][0, 0])) < 0.25 * sd.std()
    assert np.isfinite(fit.loo().elpd)


def test_student_t_glm_ml_equals_statsmodels_tlinearmodel():
    """Without random effects the t regression has a peer: statsmodels' ``TLinearModel``
    (location, ``df``, ``scale`` by ML).  Estimates within 1e-5, sigma and nu within 1e-4
    relative, logLik within 1e-6, standard errors of beta within 1e-3 relative."""
    import warnings

    tmodel = pytest.importorskip("statsmodels.miscmodels.tmodel")
    df = _simulate(500, 20, 3)
    est = bg.GLMM("y ~ x", df, family="t").fit(method="ml").ml
    X = np.column_stack([np.ones(len(df)), df.x])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = tmodel.TLinearModel(df.y.to_numpy(), X).fit(
            disp=0, method="bfgs", maxiter=5000, gtol=1e-10
        )
    np.testing.assert_allclose(est.beta, ref.params[:2], atol=1e-5)
    sigma, nu = est.family_dispersion
    assert nu == pytest.approx(ref.params[2], rel=1e-4)
    assert sigma == pytest.approx(ref.params[3], rel=1e-4)
    assert est.loglik == pytest.approx(ref.llf, abs=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(est.vcov_beta)), ref.bse[:2], rtol=1e-3)
