"""Every engine gives the same answer whatever the scale of a predictor (issue 13, item 4).

A predictor multiplied by ``f`` is the same model with its slope divided by ``f``.  Before the
engines standardized the fixed-effect columns, NAP in centimetres sent the default NUTS to
-25.5 per metre with every draw divergent, the ML fit did not converge at SD 50-1000 (or
converged on a slope 90x too small at ``x * 1e-8``), the default slope prior was rounded to
Normal(0, 0) at SD > 5e4, and the "|estimate| > 15" separation alarm fired on correct fits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.design.separation import ML_UNRELIABLE
from bayesglmm.engines.scaling import standardization

FACTORS = (1e-6, 1e2, 1e6)


def _logistic(seed: int = 11, n: int = 160, groups: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    eta = -0.4 + 1.1 * x + rng.normal(0, 0.9, groups)[g]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


MODELS = {
    "rikz_poisson": ("Richness ~ NAP + (1 | Beach)", "poisson", "NAP"),
    "logistic_ri": ("y ~ x + (1 | g)", "bernoulli", "x"),
}


def _data(model: str) -> pd.DataFrame:
    return bg.datasets.load("rikz") if model == "rikz_poisson" else _logistic()


def _glmm(model: str, factor: float = 1.0) -> bg.GLMM:
    formula, family, col = MODELS[model]
    df = _data(model).copy()
    df[col] = df[col] * factor
    return bg.GLMM(formula, df, family)


def _quiet_fit(m: bg.GLMM, method: str, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.SamplerWarning)
        return m.fit(method, **kw)


# ---------------------------------------------------------------- likelihood engines
ML_METHODS = {
    "ml_laplace": ("ml", {"nagq": 1}),
    "ml_agq": ("ml", {"nagq": 7}),
    "pql": ("pql", {}),
}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("method", list(ML_METHODS))
def test_likelihood_engines_are_scale_invariant(model, method):
    name, kw = ML_METHODS[method]
    col = MODELS[model][2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no convergence or separation message on any scale
        ref = _glmm(model).fit(name, **kw)
        for f in (*FACTORS, 1e-8):  # 1e-8: "converged" on a slope 90x too small before
            fit = _glmm(model, f).fit(name, **kw)
            assert fit.ml.converged, (f, fit.ml.messages)
            assert not any(ML_UNRELIABLE in msg for msg in fit.ml.messages)
            # the slope scales by 1/f, the intercept and the variance components do not
            unscale = np.array([1.0 if n == "(Intercept)" else f for n in ref.design.x_names])
            np.testing.assert_allclose(fit.ml.beta * unscale, ref.ml.beta, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(fit.ml.se_beta * unscale, ref.ml.se_beta, rtol=1e-5)
            np.testing.assert_allclose(fit.ml.theta, ref.ml.theta, rtol=1e-6, atol=1e-9)
            if np.isfinite(ref.ml.loglik):
                np.testing.assert_allclose(fit.ml.loglik, ref.ml.loglik, rtol=1e-9)
            assert fit.fixef()[col] == pytest.approx(ref.fixef()[col] / f, rel=1e-6)


def test_ml_start_is_taken_on_the_users_scale():
    """A user ``start`` (user-scale beta) is mapped to the standardized scale."""
    ref = _glmm("rikz_poisson").fit("ml")
    m = _glmm("rikz_poisson", 1e4)
    start = {"beta": ref.ml.beta / np.array([1.0, 1e4]), "theta": ref.ml.theta}
    fit = m.fit("ml", start=start)
    assert fit.ml.n_iter <= 2  # started at the optimum
    np.testing.assert_allclose(fit.ml.beta * [1.0, 1e4], ref.ml.beta, rtol=1e-6)


# ---------------------------------------------------------------- Bayesian engines
BAYES_METHODS = {
    "nuts_kernel": ("nuts", {"draws": 300, "tune": 300, "chains": 2, "random_seed": 5}),
    "laplace": ("laplace", {"draws": 1000, "random_seed": 5}),
    "advi": ("advi", {"draws": 1000, "random_seed": 5}),
    "nuts_pymc": (
        "nuts",
        {"draws": 300, "tune": 300, "chains": 2, "random_seed": 5, "sampler": "pymc"},
    ),
}


def _summaries(fit, col: str, f: float) -> dict[str, tuple[float, float]]:
    post = fit.idata["posterior"]
    out = {
        "Intercept": post["Intercept"].values.ravel(),
        "slope": post["beta"].sel(fixed=col).values.ravel() * f,
    }
    for lab in fit.labels:
        out[f"sd_{lab}"] = post[f"sd_{lab}"].values.reshape(-1)
    return {k: (float(v.mean()), float(v.std())) for k, v in out.items()}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize(
    "method",
    [
        "nuts_kernel",
        "laplace",
        "advi",
        pytest.param("nuts_pymc", marks=pytest.mark.slow),
    ],
)
def test_bayesian_engines_are_scale_invariant(model, method):
    name, kw = BAYES_METHODS[method]
    col = MODELS[model][2]
    ref = _summaries(_quiet_fit(_glmm(model), name, **kw), col, 1.0)
    for f in FACTORS:
        m = _glmm(model, f)
        fit = _quiet_fit(m, name, **kw)
        if name == "nuts":
            assert int(fit.idata["sample_stats"]["diverging"].sum()) == 0, f
        got = _summaries(fit, col, f)
        for key, (mean, sd) in ref.items():
            assert abs(got[key][0] - mean) <= 0.15 * sd, (f, key, got[key], (mean, sd))
            assert got[key][1] == pytest.approx(sd, rel=0.2), (f, key)


def test_kernel_initial_point_is_in_standardized_units():
    """The start's log density does not depend on the predictor's scale (it was -1.4e23
    with NAP in centimetres: the jitter was U(-1, 1) per centimetre)."""
    from bayesglmm.engines.bayes.log_density import logp_and_grad
    from bayesglmm.engines.bayes.nuts import _initial_point

    lps = []
    for f in (1.0, 1e2, 1e6):
        layout = _glmm("rikz_poisson", f).kernel_layout()
        assert "beta_scaled" in layout.names
        x0 = _initial_point(layout, seed=3)
        lps.append(logp_and_grad(x0, *layout.args())[0])
    np.testing.assert_allclose(lps[1:], lps[0], rtol=1e-8)


@pytest.mark.parametrize(
    "prior",
    [
        bg.Prior("Normal", mu=0.3, sigma=0.02),
        bg.Prior("StudentT", nu=3, mu=0.001, sigma=0.002),
        bg.Prior("Cauchy", alpha=-1.0, beta=4.0),
    ],
)
def test_scaled_prior_is_the_users_prior_on_beta(prior):
    """``beta_scaled = s * beta`` carries the user's prior mapped exactly: its density at
    ``s * b`` is the user's at ``b`` over ``s`` (the Jacobian), so the posterior of ``beta``
    is the one the user asked for."""
    b = np.linspace(-0.5, 0.5, 7)
    for s in (1e-6, 0.37, 1e6):
        np.testing.assert_allclose(
            prior.scaled(s).logpdf(s * b), prior.logpdf(b) - np.log(s), rtol=1e-12
        )
    with pytest.raises(bg.BayesGLMMError, match="positive number"):
        prior.scaled(0.0)


# ---------------------------------------------------------------- priors and separation
def test_default_slope_prior_is_exact_at_any_scale():
    for f in (1e-6, 1.0, 1e6):
        m = _glmm("rikz_poisson", f)
        sd = float(np.std(m.design.X[:, 1]))
        sigma = m.priors.fixed["NAP"].params["sigma"]
        assert sigma > 0
        assert sigma == pytest.approx(2.5 / sd, rel=1e-12)
    # printing rounds, storage does not
    assert "sigma=2.543e-06" in str(_glmm("rikz_poisson", 1e6).priors.fixed["NAP"])


def test_no_separation_warning_for_a_large_raw_coefficient():
    """A slope of ~1e6 per unit of x * 1e-6 is a correct fit, not separation."""
    m = _glmm("logistic_ri", 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bg.IdentifiabilityWarning)
        fit = m.fit("ml")
    assert abs(fit.fixef()["x"]) > 1e5
    assert not any(ML_UNRELIABLE in msg for msg in fit.ml.messages)


@pytest.mark.filterwarnings("ignore::bayesglmm.ConvergenceWarning")
def test_poisson_all_zero_level_is_named_by_the_lp():
    """The scale-free check still finds Poisson separation (an all-zero level) and names it."""
    rng = np.random.default_rng(4)
    n = 120
    g = rng.integers(0, 10, n)
    f = rng.choice(["a", "b", "c"], n)
    y = rng.poisson(np.exp(0.5 + rng.normal(0, 0.5, 10)[g]))
    y[f == "c"] = 0
    df = pd.DataFrame({"y": y, "f": f, "g": g.astype(str), "x": rng.normal(size=n) * 1e4})
    with pytest.warns(bg.IdentifiabilityWarning, match="separation in the fixed effects"):
        fit = bg.GLMM("y ~ x + f + (1 | g)", df, "poisson").fit("ml")
    msg = next(m for m in fit.ml.messages if ML_UNRELIABLE in m)
    assert msg.endswith("separation in the fixed effects (`fc`)")  # the user's columns


def test_standardization_round_trips():
    m = _glmm("logistic_ri", 1e6)
    std = standardization(m.design)
    Xs = std.design(m.design).X
    np.testing.assert_allclose(Xs[:, 1].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(Xs[:, 1].std(), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(Xs[:, 0], 1.0)
    b = np.array([0.3, -2e-6])
    np.testing.assert_allclose(std.beta_to_user(std.beta_to_std(b)), b, rtol=1e-12)
    # the linear predictor is unchanged
    np.testing.assert_allclose(Xs @ std.beta_to_std(b), m.design.X @ b, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- random slopes
def _slope_data(family: str, seed: int = 3) -> pd.DataFrame:
    """``(1 + x | g)`` data: intercept SD 0.6, slope SD 0.4 per unit of x, correlation 0.3
    (400 rows in 20 groups for Bernoulli, where 240 in 16 gave a singular fit)."""
    n, groups = (400, 20) if family == "bernoulli" else (240, 16)
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    cov = np.array([[0.36, 0.072], [0.072, 0.16]])
    b = rng.multivariate_normal(np.zeros(2), cov, groups)
    eta = 0.3 + 0.5 * x + b[g, 0] + b[g, 1] * x
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    elif family == "bernoulli":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    else:
        y = 2.0 * eta + rng.normal(0, 0.8, n)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


# x -> a x + c: the model is the same with beta' = A beta, b' = A b, Sigma' = A Sigma A'
SLOPE_TRANSFORMS = {
    "x*1e-6": (1e-6, 0.0),
    "x*1e2": (1e2, 0.0),
    "x*1e6": (1e6, 0.0),
    "1e3*x+1e5": (1e3, 1e5),  # uncentred: the intercept and slope columns nearly collinear
}
ML_SLOPE_METHODS = {
    "laplace": ("ml", {}),
    "agq": ("ml", {"nagq": 5}),  # vector AGQ (q = 2)
    "pql": ("pql", {}),
}


def _slope_fit(family: str, method: str, a: float = 1.0, c: float = 0.0):
    df = _slope_data(family)
    df["x"] = a * df["x"] + c
    name, kw = ML_SLOPE_METHODS[method]
    with warnings.catch_warnings():
        warnings.simplefilter("error", bg.ConvergenceWarning)  # no convergence message
        return bg.GLMM("y ~ x + (1 + x | g)", df, family).fit(name, **kw)


@pytest.mark.parametrize(
    ("family", "method"),
    [
        ("gaussian", "laplace"),
        ("poisson", "laplace"),
        ("bernoulli", "laplace"),
        ("poisson", "agq"),
        ("bernoulli", "pql"),
        pytest.param("bernoulli", "agq", marks=pytest.mark.slow),
        pytest.param("poisson", "pql", marks=pytest.mark.slow),
    ],
)
def test_random_slope_ml_is_scale_invariant(family, method):
    """A random slope on ``x * 1e-6``, ``x * 1e6`` or ``1e3 x + 1e5``: the same fit mapped to
    the new units (before, the slope's theta was optimized on the raw column of Z: such fits
    stopped unconverged or raised 'random-effect cross-product is numerically singular')."""
    ref = _slope_fit(family, method).ml
    assert ref.converged and not ref.singular
    # Laplace is exactly invariant; the tensor-product AGQ rule is oriented by the Cholesky
    # factor of the mode's curvature, which a change of units rotates (1e-5 here)
    ll_tol = 1e-4 if method == "agq" else 1e-6
    for key, (a, c) in SLOPE_TRANSFORMS.items():
        fit = _slope_fit(family, method, a, c).ml
        A = np.array([[1.0, -c / a], [0.0, 1.0 / a]])
        Ai = np.linalg.inv(A)
        assert fit.converged and not fit.singular, (key, fit.messages)
        if np.isfinite(ref.loglik):
            assert fit.loglik == pytest.approx(ref.loglik, abs=ll_tol), key
        np.testing.assert_allclose(Ai @ fit.beta, ref.beta, rtol=1e-4, atol=1e-5, err_msg=key)
        np.testing.assert_allclose(
            Ai @ fit.vcov_beta @ Ai.T, ref.vcov_beta, rtol=2e-3, atol=1e-7, err_msg=key
        )
        cov = Ai @ fit.covariances[0] @ Ai.T
        np.testing.assert_allclose(cov, ref.covariances[0], rtol=1e-3, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(
            fit.modes[0] @ Ai.T, ref.modes[0], rtol=1e-3, atol=1e-5, err_msg=key
        )
        np.testing.assert_allclose(
            np.einsum("ij,gjk,lk->gil", Ai, fit.cond_var[0], Ai),
            ref.cond_var[0],
            rtol=1e-3,
            atol=1e-7,
            err_msg=key,
        )
        # theta is the user's: the relative Cholesky factor of the user-scale covariance
        L = np.zeros((2, 2))
        L.T[np.triu_indices(2)] = fit.theta
        scale = 1.0 if fit.sigma is None else fit.sigma**2
        np.testing.assert_allclose(scale * L @ L.T, fit.covariances[0], rtol=1e-8, err_msg=key)
        assert np.all(np.diag(L) >= 0)
        if fit.sigma is not None:
            assert fit.sigma == pytest.approx(ref.sigma, rel=1e-4), key


def test_random_slope_fitted_and_varcorr_on_the_users_scale():
    """``fitted()``, ``ranef()`` and ``varcorr()`` of a slope on ``x * 1e6``: the slope SD and
    modes are 1e6 times smaller, correlations and fitted values unchanged."""
    df = _slope_data("poisson")
    ref = bg.GLMM("y ~ x + (1 + x | g)", df, "poisson").fit("ml")
    df["x"] = df["x"] * 1e6
    fit = bg.GLMM("y ~ x + (1 + x | g)", df, "poisson").fit("ml")
    np.testing.assert_allclose(fit.fitted(), ref.fitted(), rtol=1e-5)
    v, r = fit.varcorr(), ref.varcorr()
    np.testing.assert_allclose(v["sd_cor"] * [1.0, 1e6, 1.0], r["sd_cor"], rtol=1e-3)
    np.testing.assert_allclose(fit.ranef()["g"]["x"] * 1e6, ref.ranef()["g"]["x"], rtol=1e-3)


def test_random_slope_start_theta_on_the_users_scale():
    """A user ``start["theta"]`` is the user's relative Cholesky factor (mapped in)."""
    df = _slope_data("poisson")
    df["x"] = 1e3 * df["x"] + 1e5
    m = bg.GLMM("y ~ x + (1 + x | g)", df, "poisson")
    ref = m.fit("ml").ml
    fit = m.fit("ml", start={"theta": ref.theta, "beta": ref.beta}).ml
    assert fit.n_iter <= 2  # started at the optimum
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-8)


def test_random_scaling_maps_exactly():
    """The maps of :func:`random_scaling`: theta round-trips, a singular covariance stays
    singular, an uncorrelated block is only scaled (a shift would change its model)."""
    from bayesglmm.engines.scaling import random_scaling

    df = _slope_data("poisson")
    df["x"] = 1e3 * df["x"] + 1e5
    d = bg.GLMM("y ~ x + (1 + x | g)", df, "poisson").design
    rs = random_scaling(d)
    T = rs.maps[0]
    zs = rs.design(d).blocks[0].Z
    np.testing.assert_allclose(zs[:, 1].mean(), 0.0, atol=1e-9)
    np.testing.assert_allclose(zs[:, 1].std(), 1.0, rtol=1e-9)
    np.testing.assert_allclose(zs @ T, d.blocks[0].Z, rtol=1e-12)
    for theta in ([0.7, -0.2, 0.4], [0.7, -0.2, 0.0], [0.0, 0.5, 0.0]):
        th_user = rs.theta_to_user(np.array(theta))
        np.testing.assert_allclose(rs.theta_to_std(th_user), theta, atol=1e-12)
        L = np.zeros((2, 2))
        L.T[np.triu_indices(2)] = th_user
        Ls = np.zeros((2, 2))
        Ls.T[np.triu_indices(2)] = theta
        Ti = np.linalg.inv(T)
        np.testing.assert_allclose(L @ L.T, Ti @ Ls @ Ls.T @ Ti.T, rtol=1e-10, atol=1e-14)
        S = L @ L.T
        rho = S[0, 1] / np.sqrt(S[0, 0] * S[1, 1])
        assert (abs(abs(rho) - 1.0) < 1e-9) == (theta[2] == 0.0)  # singular stays singular
    d2 = bg.GLMM("y ~ x + (1 + x || g)", df, "poisson").design
    T2 = random_scaling(d2).maps[0]
    assert T2[0, 1] == 0.0 and T2[1, 1] == pytest.approx(np.sqrt(np.mean(df["x"] ** 2)))


def _slope_summaries(fit, f: float) -> dict[str, tuple[float, float]]:
    """Posterior mean and SD of the slope, both group SDs and the correlation, in the
    original units of ``x`` (the slope and its SD multiplied by ``f``)."""
    post = fit.idata["posterior"]
    sd = post["sd_g"].values.reshape(-1, 2)
    cor = post["cor_g"].values.reshape(-1, 2, 2)[:, 0, 1]
    out = {
        "Intercept": post["Intercept"].values.ravel(),
        "slope": post["beta"].sel(fixed="x").values.ravel() * f,
        "sd_intercept": sd[:, 0],
        "sd_slope": sd[:, 1] * f,
        "cor": cor,
    }
    return {k: (float(v.mean()), float(v.std())) for k, v in out.items()}


# Monte Carlo tolerances (in posterior SDs; relative for the SDs): the standardized problem
# is the same at every scale, but rounding differences grow along a NUTS trajectory, so two
# scales give two independent runs: at 2 x 300 draws the intercept's ESS is ~100, its mean
# differs by ~0.15 SD between runs (0.39 SD seen once), so 0.5 SD; before the fix the slope
# was off by 9 SD.  ADVI (seeded, from the ML start) and the Bayesian Laplace engine (a
# deterministic grid, seeded draws) agree to rounding
SLOPE_BAYES = {
    "nuts_kernel": (BAYES_METHODS["nuts_kernel"], 0.5, 0.3),
    "laplace": (BAYES_METHODS["laplace"], 0.02, 0.02),
    "advi": (BAYES_METHODS["advi"], 0.02, 0.02),
    "nuts_pymc": (BAYES_METHODS["nuts_pymc"], 0.5, 0.3),
}


@pytest.mark.parametrize(
    "method",
    [
        "nuts_kernel",
        "laplace",
        pytest.param("advi", marks=pytest.mark.slow),
        pytest.param("nuts_pymc", marks=pytest.mark.slow),
    ],
)
def test_bayesian_random_slope_is_scale_invariant(method):
    """``(1 + x | g)`` Poisson with x multiplied by 1e-6, 1e2 and 1e6: the posterior of the
    slope, of both SDs (the slope SD divided by the factor) and of the correlation is the
    original one.  Before: the default slope-SD prior HalfStudentT(3, 2.5) did not follow
    the units (at x * 1e-6 the Laplace engine's slope SD fell from 0.57 to 0.47), the
    default NUTS started the Cholesky factor at an SD of 1 per unit of x (at x * 1e6 the slope
    came out 1.9 +- 2.4 against 0.52 +- 0.19) and ADVI failed with NaN (x * 1e2, 1e6) or
    collapsed the slope SD to 0 (x * 1e-6)."""
    (name, kw), mean_tol, sd_tol = SLOPE_BAYES[method]
    df = _slope_data("poisson")
    ref = _slope_summaries(_quiet_fit(bg.GLMM("y ~ x + (1 + x | g)", df, "poisson"), name, **kw), 1)
    for f in FACTORS:
        d = df.copy()
        d["x"] = d["x"] * f
        fit = _quiet_fit(bg.GLMM("y ~ x + (1 + x | g)", d, "poisson"), name, **kw)
        if name == "nuts":
            assert int(fit.idata["sample_stats"]["diverging"].sum()) == 0, f
        got = _slope_summaries(fit, f)
        for key, (mean, sd) in ref.items():
            assert abs(got[key][0] - mean) <= mean_tol * sd, (f, key, got[key], (mean, sd))
            assert got[key][1] == pytest.approx(sd, rel=sd_tol), (f, key, got[key], (mean, sd))


def test_default_slope_sd_prior_follows_the_units():
    """The default SD prior of a random slope is autoscaled as a fixed slope's: HalfStudentT(3,
    2.5 / sd(x)) (exact, unrounded); an indicator column (two values) is scaled by its range,
    so a 0/1 column keeps the intercept's 2.5; a user's prior is kept as given."""
    df = _slope_data("poisson")
    df["d"] = (df["x"] > 0).astype(float) * 3.0  # two values, range 3
    for f in (1e-6, 1.0, 1e6):
        d = df.assign(x=df["x"] * f)
        pri = bg.GLMM("y ~ x + (1 + x + d | g)", d, "poisson").priors.sd["g"]
        assert pri[0].params == {"nu": 3.0, "sigma": 2.5}
        assert pri[1].params["sigma"] == pytest.approx(2.5 / float(np.std(d["x"])), rel=1e-12)
        assert pri[2].params["sigma"] == pytest.approx(2.5 / 3.0, rel=1e-12)
    user = bg.GLMM(
        "y ~ x + (1 + x | g)", df, "poisson", priors={"sd": bg.Prior("HalfNormal", sigma=1.0)}
    ).priors.sd["g"]
    assert [p.params for p in user] == [{"sigma": 1.0}, {"sigma": 1.0}]


def test_kernel_matches_pymc_on_a_scaled_correlated_block():
    """The kernel and the PyMC model agree on the log density of a correlated block whose
    Cholesky factor is sampled for scaled columns, at a slope on ``x * 1e6``."""
    from bayesglmm.engines.bayes.log_density import logp_and_grad
    from bayesglmm.engines.bayes.nuts import _initial_point

    df = _slope_data("poisson")
    df["x"] = df["x"] * 1e6
    m = bg.GLMM("y ~ x + (1 + x | g)", df, "poisson")
    layout = m.kernel_layout()
    x0 = _initial_point(layout, seed=2)
    model = m.build()
    point = {
        name: x0[sl].reshape(shape)
        for name, sl, shape in zip(layout.names, layout.slices, layout.shapes, strict=True)
    }
    lp = float(model.compile_logp()(point))
    np.testing.assert_allclose(logp_and_grad(x0, *layout.args())[0], lp, rtol=1e-9)
