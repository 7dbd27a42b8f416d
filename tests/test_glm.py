"""Models without random-effect terms: fitted as GLMs by every method, with a note.

References and tolerances:

* ML (IRLS) against statsmodels' ``GLM`` (IRLS to ``tol=1e-14``): estimates, standard
  errors and log-likelihood to 1e-6 (bernoulli, poisson with an offset, binomial-probit with
  trials).  Gaussian: OLS with ``sigma`` by ML, ``sqrt(RSS / n)``; statsmodels' SEs use
  ``RSS / (n - k)``, so ours times ``sqrt(n / (n - k))`` match them to 1e-6.
* Bayesian Laplace against an independent Gaussian approximation built from PyMC's own
  log density of the same model (its mode by BFGS, its Hessian by central differences of
  PyMC's gradient) in PyMC's sampling parameters, mapped linearly to ``(beta, log sigma)``:
  mode to 1e-5, covariance to 1e-4 relative (cross terms near 0: 1e-6 of the largest
  entry, the finite-difference noise).
* NUTS and ADVI with flat-ish priors (Normal(0, 100)) against the ML estimate: posterior
  means within 0.3 ML standard errors (with n = 300 the posterior is near its normal limit;
  the Monte Carlo error of a mean is ~0.05 SE at these draw counts) and NUTS posterior SDs
  within 15% of the ML SEs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import lme4_reference

import bayesglmm as bg
from bayesglmm.engines.glm import GLM_NOTE
from bayesglmm.errors import BayesGLMMError, DesignError, InferenceError

sm = pytest.importorskip("statsmodels.api")

N = 300
FLAT = {
    "intercept": {"dist": "Normal", "mu": 0.0, "sigma": 100.0},
    "fixed": {"dist": "Normal", "mu": 0.0, "sigma": 100.0},
}
FLAT_SIGMA = {**FLAT, "sigma": {"dist": "HalfNormal", "sigma": 100.0}}


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(20261201)
    x = rng.normal(5.0, 3.0, N)  # not standardized: the engines standardize internally
    f = rng.choice(["a", "b", "c"], N)
    g = rng.integers(0, 12, N)
    fe = np.select([f == "b", f == "c"], [0.5, -0.4], 0.0)
    u = rng.normal(0.0, 0.8, 12)[g]  # a real group effect, for the GLM-vs-GLMM comparison
    t = rng.uniform(1.0, 3.0, N)
    ntr = rng.integers(1, 7, N)
    eta_b = -0.5 + 0.3 * (x - 5.0) + fe + u
    return pd.DataFrame(
        {
            "x": x,
            "f": f,
            "g": [f"g{v}" for v in g],
            "t": t,
            "yb": (rng.random(N) < 1.0 / (1.0 + np.exp(-eta_b))).astype(int),
            "yc": rng.poisson(np.exp(0.3 + 0.1 * x + fe + np.log(t))),
            "yg": 2.0 + 0.5 * x + fe + rng.normal(0.0, 1.5, N),
            "ntr": ntr,
            "k": rng.binomial(ntr, 1.0 / (1.0 + np.exp(-(0.2 - 0.15 * (x - 5.0) + fe)))),
        }
    )


DF = _data()
# family -> (formula, GLMM kwargs, statsmodels endog, family, offset)
CASES = {
    "bernoulli": ("yb ~ x + f", {}, "yb", lambda: sm.families.Binomial(), None),
    "poisson": (
        "yc ~ x + f + offset(log(t))",
        {},
        "yc",
        lambda: sm.families.Poisson(),
        np.log(DF["t"]),
    ),
    "gaussian": ("yg ~ x + f", {}, "yg", lambda: sm.families.Gaussian(), None),
}


def _model(family: str, priors: dict | None = None) -> bg.GLMM:
    formula, kw, *_ = CASES[family]
    if family == "gaussian" and priors is FLAT:
        priors = FLAT_SIGMA
    return bg.GLMM(formula, DF, family, priors=priors, **kw)


def _statsmodels(family: str):
    _, _, col, fam, offset = CASES[family]
    X = pd.get_dummies(DF[["x", "f"]], columns=["f"], drop_first=True, dtype=float)
    X = sm.add_constant(X)
    return sm.GLM(DF[col], X, family=fam(), offset=offset).fit(tol=1e-14, maxiter=200)


_ML_CACHE: dict[str, bg.GLMMFit] = {}


def _ml(family: str) -> bg.GLMMFit:
    if family not in _ML_CACHE:
        _ML_CACHE[family] = _model(family).fit("ml")
    return _ML_CACHE[family]


# ---------------------------------------------------------------------- ML (IRLS)
@pytest.mark.parametrize("family", ["bernoulli", "poisson", "gaussian"])
def test_ml_matches_statsmodels(family):
    fit = _ml(family)
    ref = _statsmodels(family)
    assert fit.design.blocks == ()
    assert list(fit.fixef().index) == ["(Intercept)", "x", "fb", "fc"]
    np.testing.assert_allclose(fit.fixef().to_numpy(), ref.params.to_numpy(), rtol=0, atol=1e-6)
    assert abs(fit.loglik - ref.llf) < 1e-6
    se = fit.se().to_numpy()
    if family == "gaussian":
        n, k = fit.design.n, fit.design.k
        rss = float(np.sum(ref.resid_response**2))
        assert abs(fit.ml.sigma - np.sqrt(rss / n)) < 1e-9
        se = se * np.sqrt(n / (n - k))  # statsmodels' (and summary.glm's) RSS / (n - k)
    np.testing.assert_allclose(se, ref.bse.to_numpy(), rtol=1e-6)
    assert fit.ml.converged and fit.ml.theta.size == 0
    # AIC counts k (+ sigma): the GLM's df
    assert fit.n_params == fit.design.k + (1 if family == "gaussian" else 0)
    assert abs(fit.aic - (-2 * ref.llf + 2 * fit.n_params)) < 1e-6


def test_ml_binomial_probit_with_trials_matches_statsmodels():
    """A non-canonical link: the SEs are the inverse Fisher information (glm's and
    statsmodels' IRLS), the estimate the exact MLE."""
    fit = bg.GLMM("cbind(k, ntr - k) ~ x + f", DF, "binomial", link="probit").fit("ml")
    X = sm.add_constant(pd.get_dummies(DF[["x", "f"]], columns=["f"], drop_first=True, dtype=float))
    endog = np.column_stack([DF["k"], DF["ntr"] - DF["k"]])
    fam = sm.families.Binomial(link=sm.families.links.Probit())
    ref = sm.GLM(endog, X, family=fam).fit(tol=1e-14, maxiter=200)
    np.testing.assert_allclose(fit.fixef().to_numpy(), ref.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.se().to_numpy(), ref.bse, rtol=1e-6)
    assert abs(fit.loglik - ref.llf) < 1e-6


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "gaussian"])
def test_agq_on_a_glm_is_the_exact_ml_fit_with_a_message(family):
    ml = _ml(family)
    agq = _model(family).fit("ml", nagq=9)
    np.testing.assert_allclose(agq.fixef(), ml.fixef(), rtol=0, atol=1e-12)
    assert agq.loglik == pytest.approx(ml.loglik, abs=1e-9)  # normalized, not glmer's nAGQ>1
    assert agq.label == "glm_agq9" and ml.label == "glm_ml"
    assert any("nAGQ = 9 changes nothing" in m for m in agq.ml.messages)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("dispersion", ["estimate", "fixed"])
def test_pql_on_a_glm_is_irls(family, dispersion):
    ml = _ml(family)
    fit = _model(family).fit("pql", dispersion=dispersion)
    ref = _statsmodels(family)
    np.testing.assert_allclose(fit.fixef(), ml.fixef(), rtol=0, atol=1e-10)
    # glmmPQL's dispersion is the ML residual variance of the working model: X^2 / n
    phi = ref.pearson_chi2 / N if dispersion == "estimate" else 1.0
    assert fit.ml.dispersion == pytest.approx(phi, rel=1e-8)
    np.testing.assert_allclose(fit.se(), ml.se() * np.sqrt(phi), rtol=1e-8)
    assert np.isnan(fit.loglik)
    assert fit.label == ("glm_pql" if dispersion == "estimate" else "glm_pql_phi1")


def test_pql_refuses_gaussian_glm():
    with pytest.raises(InferenceError, match="PQL is for non-gaussian families"):
        _model("gaussian").fit("pql")


# ---------------------------------------------------------------------- Bayesian Laplace
def _pymc_gaussian_approximation(model: bg.GLMM) -> tuple[np.ndarray, np.ndarray]:
    """Mode and covariance of the Gaussian at the posterior mode, from PyMC's log density
    of the same model, in ``(beta in x_names order, [log sigma])``."""
    from scipy import optimize

    from bayesglmm.engines.bayes.pymc_model import slope_scales

    pm_model = model.build()
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    names = [v.name for v in pm_model.value_vars]
    ip = pm_model.initial_point()
    shapes = [np.shape(ip[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(x: np.ndarray) -> dict:
        out, pos = {}, 0
        for n, s, z in zip(names, shapes, sizes, strict=True):
            out[n] = x[pos : pos + z].reshape(s)
            pos += z
        return out

    def f(x):
        return -float(logp(unpack(x)))

    def g(x):
        return -np.asarray(dlogp(unpack(x)), dtype=float)

    x0 = np.concatenate([np.ravel(ip[n]) for n in names]).astype(float)
    res = optimize.minimize(f, x0, jac=g, method="BFGS", options={"gtol": 1e-10, "maxiter": 5000})
    u = res.x
    H = np.zeros((u.size, u.size))
    for i in range(u.size):
        h = 1e-5 * max(1.0, abs(u[i]))
        e = np.zeros(u.size)
        e[i] = h
        H[:, i] = (g(u + e) - g(u - e)) / (2 * h)
    cov_u = np.linalg.inv(0.5 * (H + H.T))
    # linear map from PyMC's sampled parameters to (beta, [log sigma])
    d = model.design
    k = d.k
    slopes = [i for i, n in enumerate(d.x_names) if n != "(Intercept)"]
    scales = slope_scales(d)
    means = d.X[:, slopes].mean(axis=0)
    pos = dict(zip(names, np.cumsum([0, *sizes[:-1]]), strict=True))
    m = k + (1 if "sigma_log__" in names else 0)
    A = np.zeros((m, u.size))
    for j, col in enumerate(slopes):
        A[col, pos["beta_scaled"] + j] = 1.0 / scales[j]
    i0 = d.x_names.index("(Intercept)")
    A[i0, pos["Intercept_centered"]] = 1.0
    A[i0] -= means @ A[slopes]
    if m > k:
        A[k, pos["sigma_log__"]] = 1.0
    return A @ u, A @ cov_u @ A.T


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "gaussian"])
def test_bayes_laplace_is_the_exact_gaussian_at_the_mode(family):
    model = _model(family)  # the default (data-scaled) priors: the prior matters a little
    fit = model.fit("laplace", draws=4000, random_seed=5)
    mode, cov = np.asarray(fit.options["mode"]), np.asarray(fit.options["cov"])
    ref_mode, ref_cov = _pymc_gaussian_approximation(model)
    np.testing.assert_allclose(mode, ref_mode, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-4, atol=1e-6 * np.abs(ref_cov).max())
    # the draws come from that Gaussian (Monte Carlo: 4000 draws, 5 SE of a mean)
    B = fit.draws_fixed()
    sd = np.sqrt(np.diag(cov))[: B.shape[1]]
    assert np.all(np.abs(B.mean(axis=0) - mode[: B.shape[1]]) < 5 * sd / np.sqrt(4000))
    np.testing.assert_allclose(B.std(axis=0), sd, rtol=0.06)
    if family == "gaussian":
        s = fit.draws_sigma()
        assert abs(np.log(s).mean() - mode[-1]) < 5 * np.sqrt(cov[-1, -1] / 4000)
    assert fit.options["strategy"] == "gaussian" and fit.options["converged"]


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "gaussian"])
def test_bayes_laplace_with_flat_priors_is_at_the_mle(family):
    ml = _ml(family)
    fit = _model(family, FLAT).fit("laplace", draws=500, random_seed=1)
    k = ml.design.k
    mode = np.asarray(fit.options["mode"])[:k]
    se = ml.se().to_numpy()
    assert np.all(np.abs(mode - ml.fixef().to_numpy()) < 0.01 * se)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.options["cov"]))[:k], se, rtol=0.03)


def test_bayes_laplace_notes_ignored_options():
    fit = _model("bernoulli").fit("laplace", draws=100, random_seed=1, nagq=5)
    notes = fit.options["notes"]
    assert notes[0] == GLM_NOTE
    assert any("one Gaussian at its mode" in n for n in notes)
    assert any(n.startswith("nagq: nothing to integrate") for n in notes)


# ---------------------------------------------------------------------- NUTS and ADVI
def _close_to_ml(
    fit: bg.GLMMFit, ml: bg.GLMMFit, sd_rtol: float | None, mean_tol: float = 0.3
) -> None:
    se = ml.se().to_numpy()
    diff = np.abs(fit.fixef().to_numpy() - ml.fixef().to_numpy())
    assert np.all(diff < mean_tol * se), (diff / se).round(3)
    if sd_rtol is not None:
        np.testing.assert_allclose(fit.se().to_numpy(), se, rtol=sd_rtol)
    if ml.design.family.has_dispersion:
        assert abs(fit.draws_sigma().mean() / ml.ml.sigma - 1.0) < 0.05


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "gaussian"])
def test_nuts_kernel_with_flat_priors_agrees_with_ml(family):
    fit = _model(family, FLAT).fit(
        "nuts", draws=600, tune=600, chains=2, random_seed=11, sampler="kernel"
    )
    assert fit.options["sampler"] == "kernel"
    _close_to_ml(fit, _ml(family), sd_rtol=0.15)
    assert fit.options["notes"] == [GLM_NOTE]
    assert fit.health["divergences"] == 0


@pytest.mark.parametrize(
    "family",
    [
        "bernoulli",
        pytest.param("poisson", marks=pytest.mark.slow),
        pytest.param("gaussian", marks=pytest.mark.slow),
    ],
)
def test_nuts_pymc_with_flat_priors_agrees_with_ml(family):
    fit = _model(family, FLAT).fit(
        "nuts", draws=600, tune=600, chains=2, random_seed=12, sampler="pymc"
    )
    assert fit.options["sampler"] == "pymc"
    _close_to_ml(fit, _ml(family), sd_rtol=0.15)


@pytest.mark.parametrize(
    "family",
    ["bernoulli", pytest.param("poisson", marks=pytest.mark.slow), "gaussian"],
)
def test_advi_with_flat_priors_agrees_with_ml(family):
    fit = _model(family, FLAT).fit("advi", random_seed=3)
    assert fit.options["converged"]
    # mean-field ADVI understates SDs of correlated coefficients: means only, and within
    # 0.6 SE: Adam's steps at the default learning rate (0.01) leave the final means
    # jittering by ~0.08 in the sampled units (gaussian, started at the MLE: 0.5 SE on the
    # intercept; learning_rate=0.003, tolerance=1e-5: 0.09 SE)
    _close_to_ml(fit, _ml(family), sd_rtol=None, mean_tol=0.6)
    assert fit.options["notes"] == [GLM_NOTE]


# ---------------------------------------------------------------------- accessors
@pytest.mark.parametrize("family", ["bernoulli", "gaussian"])
def test_accessors_of_a_glm(family):
    fit = _ml(family)
    title = (
        "Linear model fit by least squares (sigma by maximum likelihood)"
        if family == "gaussian"
        else "Generalized linear model fit by maximum likelihood (IRLS)"
    )
    assert repr(fit).startswith(title)
    assert fit.ranef() == {} and fit.cond_modes() == {} and fit.cond_var() == {}
    vc = fit.varcorr()
    if family == "gaussian":
        assert list(vc.group) == ["Residual"]
        assert vc.sd_cor.iloc[0] == pytest.approx(fit.ml.sigma)
    else:
        assert vc.empty and list(vc.columns) == ["group", "term1", "term2", "variance", "sd_cor"]
    with pytest.raises(DesignError, match="no random-effect terms .*no ICC"):
        fit.icc()
    with pytest.raises(DesignError, match="no random-effect terms .*quantiles"):
        fit.predict_at_quantiles()
    with pytest.raises(DesignError, match="no random-effect terms .*nothing to plot"):
        fit.plot_ranef()
    # every re= gives the fixed-effect prediction; new data need no group column
    p = fit.predict()
    eta = fit.design.X @ fit.fixef().to_numpy() + fit.design.offset
    np.testing.assert_allclose(p, fit.design.family.linkinv(eta), rtol=1e-12)
    for re in ("none", "marginal"):
        np.testing.assert_allclose(fit.predict(re=re), p, rtol=1e-12)
    one = fit.predict(newdata=DF[["x", "f"]].iloc[[7]])
    assert one.shape == (1,) and one[0] == pytest.approx(p[7], rel=1e-12)
    yrep = fit.posterior_predictive(random_seed=1, n_draws=50)
    assert yrep.shape == (50, N)
    assert fit.residuals().shape == (N,)
    d = fit.diagnostics().set_index("check")
    assert d.loc["optimizer_converged", "status"] == "ok"


def test_bayesian_glm_loo_and_log_likelihood():
    fit = _model("poisson").fit("laplace", draws=400, random_seed=2)
    ll = fit.idata["log_likelihood"]["y"].values.reshape(400, N)
    B = fit.draws_fixed()
    d = fit.design
    eta = B @ d.X.T + d.offset
    direct = d.family.loglik(d.y[None, :], eta)
    np.testing.assert_allclose(ll, direct, rtol=1e-10, atol=1e-10)
    loo = fit.loo()
    assert np.isfinite(loo.elpd) and loo.elpd < 0
    with pytest.raises(BayesGLMMError, match="unknown group `g`"):
        fit.loo(group="g")


@pytest.mark.parametrize("method", ["ml", "pql", "laplace"])
def test_the_note_in_messages_options_and_print(method):
    model = _model("bernoulli")
    assert "groups: none (a GLM)" in repr(model)
    kw = {"draws": 50, "random_seed": 1} if method == "laplace" else {}
    fit = model.fit(method, **kw)
    assert fit.options["notes"][0] == GLM_NOTE
    if fit.ml is not None:
        assert fit.ml.messages[0] == GLM_NOTE
    text = repr(fit)
    assert text.startswith("Generalized linear model fit by")
    assert "Groups: none" in text and "Random effects: none" in text
    assert text.count(GLM_NOTE) == 1


def test_intercept_only_and_parameter_free_glms():
    from scipy import stats

    fit = bg.GLMM("yc ~ 1", DF, "poisson").fit("ml")
    assert fit.fixef()["(Intercept)"] == pytest.approx(np.log(DF["yc"].mean()), abs=1e-10)
    off = bg.GLMM("yc ~ 0 + offset(log(t))", DF, "poisson")
    f0 = off.fit("ml")
    assert f0.fixef().empty
    assert f0.loglik == pytest.approx(stats.poisson.logpmf(DF["yc"], DF["t"]).sum(), abs=1e-8)
    with pytest.raises(InferenceError, match="no parameters"):
        off.fit("laplace")


def test_bootstrap_of_a_gaussian_glm_keeps_sigma():
    ml = _ml("gaussian")
    boot = ml.bootstrap(n_boot=40, random_seed=1)
    s = boot.draws_sigma()
    assert s.shape == (40,) and abs(s.mean() / ml.ml.sigma - 1) < 0.05
    assert list(boot.varcorr().group) == ["Residual"]
    assert boot.label == "glm_ml_boot"


# ---------------------------------------------------------------------- compare
def test_compare_puts_a_glm_beside_a_glmm_on_one_loglik_scale(load):
    df = load("toenail")
    glm = bg.GLMM("outcome ~ treatment * time", df, "bernoulli").fit("ml")
    glmm = bg.GLMM("outcome ~ treatment * time + (1 | patientID)", df, "bernoulli").fit("ml")
    table = bg.compare([glm, glmm])
    assert list(table.columns) == ["glm_ml", "ml"]
    # the GLM's logLik is statsmodels' logit; the GLMM's is lme4's (glmer, Laplace):
    # one scale, on which the random intercept is worth > 100 log-likelihood units
    d = glm.design  # statsmodels on the same columns (the 0/1 coding of `outcome` and
    # `treatment` is the design's; the model matrix is checked in test_design)
    ref = sm.GLM(d.y, d.X, family=sm.families.Binomial()).fit(tol=1e-14)
    assert table.loc["logLik", "glm_ml"] == pytest.approx(ref.llf, abs=1e-6)
    assert table.loc["logLik", "ml"] == pytest.approx(glmm.loglik, abs=1e-12)
    assert abs(glmm.loglik - lme4_reference("toenail_agq1")["logLik"]) < 0.01
    assert table.loc["logLik", "ml"] - table.loc["logLik", "glm_ml"] > 100
    assert table.loc["AIC", "glm_ml"] == pytest.approx(-2 * ref.llf + 2 * 4, abs=1e-6)
    assert table.loc["AIC", "ml"] == pytest.approx(glmm.aic, abs=1e-9)
    assert np.isnan(table.loc["sd(patientID: (Intercept))", "glm_ml"])
    assert table.loc["sd(patientID: (Intercept))", "ml"] > 3
    # the table works after the plotting module (which imports bayesglmm.interpret.compare) loaded
    import bayesglmm.interpret.forest_plot  # noqa: F401

    assert bg.compare([glm]).columns.tolist() == ["glm_ml"]


def test_compare_agq_logliks_are_normalized():
    """An AGQ fit's logLik in the table is the normalized one, not glmer's nAGQ > 1 value
    (relative to the saturated model), so it sits on the GLM's scale."""
    df = DF
    glm = bg.GLMM("yc ~ x + offset(log(t))", df, "poisson").fit("ml")
    agq = bg.GLMM("yc ~ x + offset(log(t)) + (1 | g)", df, "poisson").fit("ml", nagq=7)
    table = bg.compare([glm, agq])
    assert table.loc["logLik", "agq7"] == pytest.approx(agq.ml.loglik_normalized, abs=1e-12)
    assert agq.loglik != pytest.approx(agq.ml.loglik_normalized, abs=1.0)  # glmer's convention


# ---------------------------------------------------------------------- save / load / CLI
@pytest.mark.parametrize("method", ["ml", "laplace"])
def test_save_load_round_trip(tmp_path, method):
    model = _model("gaussian")
    kw = {"draws": 200, "random_seed": 4} if method == "laplace" else {}
    fit = model.fit(method, **kw)
    fit.save(tmp_path / "fit")
    back = bg.load_fit(tmp_path / "fit")
    assert back.design.blocks == ()
    np.testing.assert_array_equal(back.fixef(), fit.fixef())
    pd.testing.assert_frame_equal(back.varcorr(), fit.varcorr())
    assert back.options["notes"] == fit.options["notes"]
    assert back.label == fit.label
    np.testing.assert_allclose(
        back.predict(newdata=DF.iloc[:5]), fit.predict(newdata=DF.iloc[:5]), rtol=1e-12
    )
    if method == "ml":
        assert back.loglik == fit.loglik and back.ml.messages == fit.ml.messages


def test_cli_fits_a_glm(tmp_path, capsys):
    from bayesglmm.cli import main

    csv = tmp_path / "d.csv"
    DF.to_csv(csv, index=False)
    args = ["fit", "--formula", "yb ~ x + f", "--data", str(csv), "--family", "bernoulli"]
    args += ["--methods", "ml,agq:5,pql", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "out" / "comparison.csv", index_col=0)
    assert list(table.columns) == ["glm_ml", "glm_agq5", "glm_pql"]
    assert table.loc["x", "glm_ml"] == pytest.approx(_ml("bernoulli").fixef()["x"], abs=1e-8)
    assert not list((tmp_path / "out").glob("caterpillar_*"))
    assert (tmp_path / "out" / "fit_glm_ml").is_dir()


def test_spec_accepts_every_method_on_a_glm(tmp_path):
    from bayesglmm.spec import load_spec

    csv = tmp_path / "d.csv"
    DF.to_csv(csv, index=False)
    path = tmp_path / "glm_spec.toml"
    path.write_text(
        'name = "glm_spec"\ntitle = "a GLM"\nformula = "yg ~ x + f"\nfamily = "gaussian"\n'
        'methods = ["ml", "agq:5", "laplace", "advi", "nuts"]\n'
        f'[data]\ncsv = "{csv.as_posix()}"\n'
    )
    spec = load_spec(path)
    assert spec.formula == "yg ~ x + f"


# ---------------------------------------------------------------- prior weights in GLMs
@pytest.fixture(scope="module")
def weighted_counts():
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({"x": rng.normal(size=n), "w": rng.integers(1, 4, n)})
    df["y"] = rng.poisson(np.exp(0.5 + 0.3 * df.x))
    df["yg"] = 0.5 + 0.3 * df.x + rng.normal(size=n)
    dup = df.loc[df.index.repeat(df.w)].reset_index(drop=True)
    return df, dup


@pytest.mark.parametrize(
    "method, kw",
    [("ml", {}), ("pql", {"dispersion": "fixed"}), ("laplace", {"draws": 200, "random_seed": 1})],
)
def test_glm_case_weights_equal_duplicated_rows(weighted_counts, method, kw):
    """The GLM path ignored weights= (ML, PQL and Bayesian Laplace fitted the unweighted
    model silently); a weight-k row must equal the row repeated k times."""
    df, dup = weighted_counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = bg.GLMM("y ~ x", df, "poisson", weights="w").fit(method=method, **kw)
        b = bg.GLMM("y ~ x", dup, "poisson").fit(method=method, **kw)
    if method == "laplace":  # the Gaussian approximation itself (draws use n-sized streams)
        np.testing.assert_allclose(a.options["mode"], b.options["mode"], atol=1e-8)
        np.testing.assert_allclose(a.options["cov"], b.options["cov"], atol=1e-10)
        return
    np.testing.assert_allclose(a.fixef().to_numpy(), b.fixef().to_numpy(), atol=1e-6)
    if method == "ml":
        assert a.loglik == pytest.approx(b.loglik, abs=1e-8)
        np.testing.assert_allclose(a.vcov().to_numpy(), b.vcov().to_numpy(), atol=1e-9)


def test_gaussian_glm_precision_weights_match_wls(weighted_counts):
    """Gaussian weights are precision weights (sigma^2 / w), as lm/lmer; statsmodels WLS:
    params and llf (which includes 0.5 sum log w), computed on the same data."""
    sm = pytest.importorskip("statsmodels.api")
    df, _ = weighted_counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.GLMM("yg ~ x", df, "gaussian", weights="w").fit(method="ml")
    ref = sm.WLS(df.yg, sm.add_constant(df.x), weights=df.w).fit()
    np.testing.assert_allclose(fit.fixef().to_numpy(), ref.params.to_numpy(), atol=1e-10)
    assert fit.loglik == pytest.approx(ref.llf, abs=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov())), ref.bse * np.sqrt(ref.df_resid / 60))
