"""The fused NUTS kernel evaluates exactly PyMC's log density, and its sampler is wired right."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import assert_kernel_equals_pymc

import bayesglmm as bg


def _sim(seed: int = 3, n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 7, n)
    x = rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], n)
    eta = -0.3 + 0.6 * x + rng.normal(0, 0.8, 12)[g] + rng.normal(0, 0.5, 7)[h]
    trials = rng.integers(1, 9, n)
    return pd.DataFrame(
        {
            "x": x,
            "f": f,
            "g": g,
            "h": h.astype(str),
            "expo": rng.uniform(0.5, 2.0, n),
            "yb": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int),
            "succ": rng.binomial(trials, 1 / (1 + np.exp(-eta))),
            "trials": trials,
            "count": rng.poisson(np.exp(0.5 + 0.3 * eta)),
            "yg": eta + rng.normal(0, 0.9, n),
        }
    )


CASES = {
    "bernoulli": ("yb ~ x * f + (1 | g)", "bernoulli", None),
    "binomial_cbind": ("cbind(succ, trials - succ) ~ x + (1 | g) + (1 | h)", "binomial", None),
    "poisson_offset_crossed_uncorrelated": (
        "count ~ x + offset(log(expo)) + (1 + x || g) + (1 | h)",
        "poisson",
        None,
    ),
    "gaussian": ("yg ~ x + (1 | g)", "gaussian", None),
    "poisson_correlated_and_scalar": ("count ~ x + (1 + x | g) + (1 | h)", "poisson", None),
    "bernoulli_correlated_factor": ("yb ~ x + (1 + f | g)", "bernoulli", {"cor": 1.5}),
    "gaussian_correlated_priors": (
        "yg ~ x + (1 + x | g)",
        "gaussian",
        {"sd": {"dist": "HalfNormal", "sigma": 0.8}, "cor": 3.0},
    ),
    "no_intercept": ("yb ~ 0 + x + f + (1 | g)", "bernoulli", None),
    "intercept_only": ("count ~ 1 + (1 | g)", "poisson", None),
    "every_prior": (
        "yg ~ x + f + (1 + x || g) + (1 | h)",
        "gaussian",
        {
            "intercept": {"dist": "StudentT", "nu": 4, "mu": 0.5, "sigma": 2.0},
            "fixed": {"dist": "Cauchy", "alpha": 0.1, "beta": 1.5},
            "sd:g": {"dist": "HalfNormal", "sigma": 1.3},
            "sd:h": {"dist": "Gamma", "alpha": 2.0, "beta": 3.0},
            "sigma": {"dist": "Exponential", "lam": 1.5},
        },
    ),
    "half_cauchy_sd": (
        "count ~ x + (1 | g)",
        "poisson",
        {
            "sd": {"dist": "HalfCauchy", "beta": 0.7},
            "fixed": {"dist": "Normal", "mu": 0.2, "sigma": 2},
        },
    ),
}


# the centred parameterization (random effects sampled as N(0, Sigma)), scalar and LKJ blocks
CENTRED = ["bernoulli", "binomial_cbind", "poisson_correlated_and_scalar", "every_prior"]
CENTRED += ["gaussian_correlated_priors", "bernoulli_correlated_factor"]


@pytest.mark.parametrize(
    ("case", "centered"),
    [(c, False) for c in CASES] + [(c, True) for c in CENTRED],
)
def test_kernel_equals_pymc_logp_and_gradient(case, centered):
    formula, family, priors = CASES[case]
    m = bg.GLMM(formula, _sim(), family, priors=priors, centered=centered)
    assert_kernel_equals_pymc(m, grad_atol=1e-8)


@pytest.mark.parametrize(
    ("formula", "family", "kwargs"),
    [
        ("yb ~ x + (1 | g)", "bernoulli", {"link": "probit"}),
        ("yb ~ x + (1 | g)", "bernoulli", {"link": "cloglog", "centered": True}),
    ],
)
def test_models_outside_the_kernel_use_pymc(formula, family, kwargs):
    m = bg.GLMM(formula, _sim(), family, **kwargs)
    assert m.kernel_layout() is None
    with pytest.raises(bg.BayesGLMMError, match="sampler='kernel' covers"):
        m.fit(draws=10, tune=10, chains=1, sampler="kernel")


def test_auto_sampler_uses_kernel_and_refit_reuses_it():
    """A refit with a new response gives exactly the draws of a fresh model on that data."""
    df = _sim()
    # explicit priors: the defaults scale with the response, and a refit keeps the priors
    priors = {
        "intercept": bg.Prior("Normal", mu=0, sigma=2.5),
        "fixed": bg.Prior("Normal", mu=0, sigma=1),
        "sd": bg.Prior("HalfNormal", sigma=1),
    }
    m = bg.GLMM("yb ~ x + (1 | g)", df, "bernoulli", priors=priors)
    kw = dict(draws=150, tune=150, chains=2, random_seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.SamplerWarning)
        fit = m.fit(**kw)
        assert fit.options["sampler"] == "kernel"
        y_new = 1 - df["yb"].to_numpy()
        refit = m.with_response(y_new)
        assert refit.kernel_layout() is m.kernel_layout()  # no rebuild
        a = refit.fit(**kw)
        fresh = bg.GLMM("yb ~ x + (1 | g)", df.assign(yb=y_new), "bernoulli", priors=priors)
        b = fresh.fit(**kw)
    pa, pb = a.idata["posterior"].to_dataset(), b.idata["posterior"].to_dataset()
    for name in ("Intercept", "beta", "sd_g", "r_g"):
        np.testing.assert_array_equal(pa[name].values, pb[name].values)
    # the new response changed the posterior (the intercept flips sign)
    assert fit.fixef()["(Intercept)"] * a.fixef()["(Intercept)"] < 0
    np.testing.assert_array_equal(a.idata["observed_data"]["y"].values, y_new)


@pytest.mark.slow
def test_kernel_posterior_matches_pymc_sampler():
    """Same model, two NUTS implementations: means agree within 0.25 posterior SD."""
    m = bg.GLMM("count ~ x + (1 + x | g) + (1 | h)", _sim(), "poisson")
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.SamplerWarning)
        ker = m.fit(sampler="kernel", **kw)
        ref = m.fit(sampler="pymc", **kw)
    pa, pb = ker.idata["posterior"].to_dataset(), ref.idata["posterior"].to_dataset()
    assert set(pb.data_vars) == set(pa.data_vars)  # same stored variables as PyMC's NUTS
    for name in ("Intercept", "beta", "sd_g", "sd_h", "cor_g"):
        a, b = pa[name], pb[name]
        assert a.dims == b.dims, name
        sd = b.std(("chain", "draw")).values
        diff = np.abs(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values)
        assert np.all(diff <= 0.25 * sd + 1e-12), (name, diff, sd)


@pytest.mark.parametrize(
    ("formula", "family"),
    [
        ("yb ~ x * f + (1 | g) + (1 | h)", "bernoulli"),
        ("cbind(succ, trials - succ) ~ x + (1 + x | g)", "binomial"),
        ("count ~ x + offset(log(expo)) + (1 + x || g) + (1 | h)", "poisson"),
    ],
)
def test_fused_pointwise_loglik_equals_numpy(formula, family, monkeypatch):
    """The parallel Numba log-likelihood matrix equals the NumPy one, draw by draw."""
    from bayesglmm.interpret import ppc

    m = bg.GLMM(formula, _sim(), family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(draws=30, tune=30, chains=2, random_seed=3)
    fused = ppc.pointwise_loglik(fit)
    monkeypatch.setattr(ppc, "_pointwise_loglik_fused", lambda fit: None)
    ref = ppc.pointwise_loglik(fit)
    assert fused.shape == ref.shape == (60, m.design.n)
    np.testing.assert_allclose(fused, ref, rtol=1e-10, atol=1e-10)


def test_default_target_accept_by_number_of_groups():
    from bayesglmm.engines.bayes.pymc_nuts import default_target_accept

    few = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
    many = bg.GLMM(
        "outcome ~ treatment * time + (1 | patientID)", bg.datasets.load("toenail"), "bernoulli"
    )
    assert default_target_accept(few.design) == 0.95  # 9 beaches: a funnel at 0.8
    assert default_target_accept(many.design) == 0.8  # 294 patients
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.SamplerWarning)
        fit = few.fit(draws=20, tune=20, chains=1, random_seed=1)
        fit2 = few.fit(draws=20, tune=20, chains=1, random_seed=1, target_accept=0.9)
    assert fit.options["target_accept"] == 0.95
    assert fit2.options["target_accept"] == 0.9


def test_kernel_fit_coords_are_pymc_coords():
    """Every posterior coordinate of a kernel fit is the PyMC model's, and the packed
    Cholesky entries are numbered 0, 1, ... as PyMC numbers them (nutpie wants strings)."""
    m = bg.GLMM("count ~ x + (1 + x | g)", _sim(), "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.SamplerWarning)
        fit = m.fit(draws=20, tune=20, chains=1, random_seed=3)
    assert fit.options["sampler"] == "kernel"
    post = fit.idata["posterior"].to_dataset()
    model_coords = m.build().coords
    for dim in post.dims:
        if dim in ("chain", "draw"):
            continue
        if dim.startswith("chol_cov_"):
            np.testing.assert_array_equal(post[dim].values, np.arange(post.sizes[dim]))
            assert post[dim].dtype.kind == "i"
        else:
            assert list(post[dim].values) == list(model_coords[dim]), dim
