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
from bayesglmm.inference.scaling import standardization
from bayesglmm.separation import ML_UNRELIABLE

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
    from bayesglmm.inference.kernel_nuts import _initial_point
    from bayesglmm.inference.nuts_kernel import logp_and_grad

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
