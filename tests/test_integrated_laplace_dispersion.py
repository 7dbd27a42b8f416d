"""The Bayesian integrated Laplace (``method="laplace"``) for families with a dispersion.

The dispersion parameters (negative binomial and Gamma ``shape``, Beta ``phi``, Student-t
``sigma`` and ``nu``, gaussian ``sigma``) are hyperparameters beside the covariance
parameters: on their log scale, with their priors, in the grid
(``engines/bayes/laplace_posterior.py``).  Reference: long NUTS runs on seeded simulated
data, stored in ``fixtures/laplace_dispersion/nuts_reference.json`` by
``fixtures/laplace_dispersion/make_nuts_reference.py`` (4 chains x 2,000 draws).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesglmm as bg
from bayesglmm.engines.bayes.laplace_posterior import IntegratedPosterior
from bayesglmm.engines.ml.laplace import LaplaceObjective

FIXTURES = Path(__file__).parent / "fixtures" / "laplace_dispersion"
REF = json.loads((FIXTURES / "nuts_reference.json").read_text())


def _load_maker():
    spec = importlib.util.spec_from_file_location(
        "make_nuts_reference", FIXTURES / "make_nuts_reference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKER = _load_maker()

#: Laplace posterior mean within this many NUTS posterior SDs of the NUTS mean
MEAN_TOL = 0.25
#: the Student-t's Laplace holds the Fisher weight, not the observed information (its
#: log-likelihood is not concave in eta; FamilySpec.laplace_information): its sigma sits
#: 0.246 NUTS SD above NUTS (measured), the other scalars within 0.09
MEAN_TOL_CASE = {"student_t_ri": 0.3}
#: Laplace posterior SD / NUTS posterior SD within these bounds
SD_RATIO = (0.85, 1.15)


def _scalars(fit: bg.GLMMFit) -> dict[str, np.ndarray]:
    post = fit.idata["posterior"]
    out = {
        "Intercept": post["Intercept"].values.ravel(),
        "x": post["beta"].sel(fixed="x").values.ravel(),
        "sd_g": post["sd_g"].isel(g__term=0).values.ravel(),
    }
    for d in fit.design.family.dispersion:
        out[d.name] = post[d.name].values.ravel()
    return out


#: the Student-t and Beta Laplace fits run the generic NumPy path with differenced
#: information: 30-70 s on the shared 2-core machine
SLOW_CASES = {"student_t_ri", "beta_ri"}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES else c for c in sorted(REF)]
)
def test_laplace_agrees_with_long_nuts(case: str) -> None:
    """Posterior means of the fixed effects, the group SD and the dispersion within 0.25
    NUTS posterior SD of a long NUTS run, posterior SDs within 15%; the tight-prior case
    (shape ~ Gamma(100, 100/6): prior mean 6, SD 0.6, where the data say ~2.5) shows that
    the dispersion's prior is the user's."""
    ref = REF[case]
    model, df = MAKER.model(case)
    assert float(df["y"].sum()) == pytest.approx(ref["sum_y"], rel=1e-12)  # the same data
    fit = model.fit(method="laplace", draws=2000, random_seed=1)
    assert fit.options["converged"]
    got = _scalars(fit)
    for name, r in ref["posterior"].items():
        assert r["rhat"] < 1.02, (case, name)  # the reference itself is converged
        mean, sd = got[name].mean(), got[name].std()
        tol = MEAN_TOL_CASE.get(case, MEAN_TOL)
        assert abs(mean - r["mean"]) < tol * r["sd"], (case, name, mean, r)
        assert SD_RATIO[0] < sd / r["sd"] < SD_RATIO[1], (case, name, sd, r)


def test_a_tight_dispersion_prior_is_honoured() -> None:
    """A shape prior with SD 0.01 at 6 (the data say ~2.5) pins the posterior there; the
    default prior leaves it at the data's value."""
    _, df = MAKER.model("negbin_ri")
    df = df.iloc[:600]
    tight = bg.GLMM(
        "y ~ x + (1 | g)",
        df,
        "negativebinomial",
        priors={"shape": bg.Prior("Gamma", alpha=360_000.0, beta=60_000.0)},
    )
    loose = bg.GLMM("y ~ x + (1 | g)", df, "negativebinomial")
    s_tight = tight.fit(method="laplace", draws=500, random_seed=2).draws_dispersion()["shape"]
    s_loose = loose.fit(method="laplace", draws=500, random_seed=2).draws_dispersion()["shape"]
    assert abs(s_tight.mean() - 6.0) < 0.01 and s_tight.std() < 0.015
    assert 1.5 < s_loose.mean() < 4.0 and s_loose.std() > 0.1


def _nb_data(n: int, two_factors: bool, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 15, n), rng.integers(0, 6, n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.5, 15)[g] + two_factors * rng.normal(0, 0.4, 6)[h]
    mu = np.exp(eta)
    y = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + (1 | g) + (1 | h)"])
def test_gradient_in_the_dispersion_matches_differences(formula: str) -> None:
    """The posterior's gradient (analytic in the covariance parameters and beta for one
    scalar term, differences in the dispersion coordinates; differences for several terms)
    and the prior's term-by-term gradient equal central differences of the whole."""
    df = _nb_data(300, "h" in formula)
    model = bg.GLMM(formula, df, "negativebinomial")
    post = IntegratedPosterior(model.design, model.priors, LaplaceObjective(model.design), 1)
    assert post.n_disp == 1 and post.m == post.n_cov + 1
    phi = np.concatenate([np.full(post.n_cov, -0.7), [np.log(2.5)], [0.3, 0.5]])
    f0, g = post.value_grad(phi)
    ref = np.empty(phi.size)
    for i in range(phi.size):
        e = np.zeros(phi.size)
        e[i] = 1e-5
        ref[i] = (post.value(phi + e) - post.value(phi - e)) / 2e-5
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-4)
    assert post.value(phi) == pytest.approx(f0, rel=1e-10)
    h = 1e-5
    prior_ref = [
        (post.log_prior(phi + e) - post.log_prior(phi - e)) / (2 * h) for e in h * np.eye(phi.size)
    ]
    np.testing.assert_allclose(post._prior_grad(phi), prior_ref, rtol=1e-6, atol=1e-6)


class _NoNoise:
    """A generator stand-in whose normal draws are 0: the draws are the predicted modes."""

    def standard_normal(self, size: object) -> np.ndarray:
        return np.zeros(size)


def test_anchored_random_effect_draws_follow_the_dispersion() -> None:
    """One scalar term: the anchored random-effect draws (16 mode searches moved to each
    draw's (theta, shape, beta) by their derivatives) are centred on the exact conditional
    modes over a spread of shapes (1.5-6): measured mean error 0.013 conditional SDs, max 0.20
    (without the shape derivative 0.046 and 0.45)."""
    from bayesglmm.engines.bayes.laplace_draws import draw_ranef

    model = bg.GLMM("y ~ x + (1 | g)", _nb_data(300, False), "negativebinomial")
    obj = LaplaceObjective(model.design)
    post = IntegratedPosterior(model.design, model.priors, obj, 1)
    rng = np.random.default_rng(5)
    S = 400
    psis = np.column_stack(
        [rng.normal(np.log(0.5), 0.15, S), rng.uniform(np.log(1.5), np.log(6.0), S)]
    )
    betas = np.column_stack([rng.normal(0.3, 0.1, S), rng.normal(0.5, 0.05, S)])
    anchored = draw_ranef(post, psis, betas, _NoNoise())[0][:, :, 0]  # type: ignore[arg-type]
    err = np.empty_like(anchored)
    for s in range(S):
        theta = post.set_hyper(psis[s])
        m = obj.mode_at(theta, betas[s])
        err[s] = np.abs(anchored[s] - m.u * theta[0]) / (theta[0] / np.sqrt(m.factor.d))
    assert err.mean() < 0.025 and err.max() < 0.3


def _family_data(case: str, seed: int = 7) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    n, ng = 800, 25
    g = rng.integers(0, ng, n)
    x = rng.normal(size=n)
    eta = 0.4 + 0.5 * x + rng.normal(0, 0.5, ng)[g]
    if case == "gamma_inverse":
        eta = 1.0 + 0.2 * x + rng.normal(0, 0.15, ng)[g]
        y, kw = rng.gamma(5.0, 1.0 / eta / 5.0), {"family": "gamma", "link": "inverse"}
    elif case == "gamma_log":
        y, kw = rng.gamma(5.0, np.exp(eta) / 5.0), {"family": "gamma", "link": "log"}
    elif case == "beta":
        mu = special.expit(eta - 0.4)
        y, kw = rng.beta(mu * 15.0, (1 - mu) * 15.0), {"family": "beta"}
    elif case == "student_t":
        y, kw = eta + 0.6 * rng.standard_t(5, n), {"family": "student_t"}
    elif case == "gaussian":
        y, kw = eta + rng.normal(0, 0.6, n), {"family": "gaussian"}
    elif case == "gaussian_log":
        # seed 9: the gaussian-log Laplace ML (method='ml') fails or lands far from the
        # truth on several other seeds (the observed information mu (2 mu - y) / sigma^2
        # can turn negative), so the ML reference is taken where it recovers the truth
        rng = np.random.default_rng(9)
        g, x = rng.integers(0, ng, n), rng.normal(size=n)
        eta = 0.4 + 0.5 * x + rng.normal(0, 0.5, ng)[g]
        y = np.exp(eta + 1.6) + rng.normal(0, 0.8, n)
        kw = {"family": "gaussian", "link": "log"}
    else:
        mu = np.exp(eta)
        y, kw = rng.negative_binomial(3.0, 3.0 / (3.0 + mu)), {"family": "negativebinomial"}
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]}), kw


@pytest.mark.parametrize(
    "case",
    [
        "negativebinomial",
        "gamma_log",
        "gamma_inverse",
        # the Beta's Laplace path differences its analytic score for the observed
        # information: ~40 s on the shared 2-core machine
        pytest.param("beta", marks=pytest.mark.slow),
        "student_t",
        "gaussian",
    ],
)
def test_every_dispersion_family_fits_with_the_nuts_names(case: str) -> None:
    """Each family's dispersion draws are stored under the name NUTS uses
    (``Family.dispersion``) and read by ``draws_dispersion``; with the default (flat-ish)
    priors on 800 rows the posterior means of the fixed effects are within 0.3 posterior SD
    of ML, and the dispersions' posterior medians within 0.5 posterior SD of ML."""
    df, kw = _family_data(case)
    model = bg.GLMM("y ~ x + (1 | g)", df, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = model.fit(method="ml").ml
    fit = model.fit(method="laplace", draws=1000, random_seed=3)
    names = [d.name for d in model.design.family.dispersion]
    post = fit.idata["posterior"]
    assert set(names) <= set(post.data_vars)
    assert fit.options["n_hyper"] == 1 + len(names)
    disp = fit.draws_dispersion()
    assert list(disp) == names
    beta = fit.draws_fixed()
    for j in range(2):
        assert abs(beta[:, j].mean() - ml.beta[j]) < 0.3 * beta[:, j].std(), (case, j)
    est = ml.family_dispersion or (ml.sigma,)
    for name, v in zip(names, est, strict=True):
        assert np.all(np.isfinite(disp[name])) and np.all(disp[name] > 0)
        assert abs(np.median(disp[name]) - v) < 0.5 * disp[name].std(), (case, name, v)
    assert np.isfinite(fit.summary().loc[names[0], "mean"])


@pytest.mark.parametrize("case", ["negativebinomial", "gamma_log", "beta", "student_t"])
def test_glm_with_a_dispersion_is_one_gaussian_at_the_mode(case: str) -> None:
    """Without random effects: the posterior means of the fixed effects within 0.1 posterior
    SD of ML (flat-ish default priors, 800 rows) and their SDs within 10% of the ML standard
    errors; the dispersions by name, their medians within 0.5 SD of ML; options for the
    random-effect integration are noted as ignored."""
    df, kw = _family_data(case)
    model = bg.GLMM("y ~ x", df, **kw)
    ml = model.fit(method="ml").ml
    fit = model.fit(method="laplace", draws=4000, random_seed=1, nagq=3)
    assert fit.options["converged"] and fit.options["strategy"] == "gaussian"
    assert any("nagq: nothing to integrate" in n for n in fit.options["notes"])
    beta = fit.draws_fixed()
    se = np.sqrt(np.diag(ml.vcov_beta))
    for j in range(2):
        assert abs(beta[:, j].mean() - ml.beta[j]) < 0.1 * beta[:, j].std(), (case, j)
        assert beta[:, j].std() == pytest.approx(se[j], rel=0.1), (case, j)
    disp = fit.draws_dispersion()
    assert list(disp) == [d.name for d in model.design.family.dispersion]
    for (name, v), est in zip(disp.items(), ml.family_dispersion, strict=True):
        assert abs(np.median(v) - est) < 0.5 * v.std(), (case, name)


def test_gaussian_log_fits_with_and_without_random_effects() -> None:
    """The gaussian family on the log link: with random effects the integrated Laplace runs
    the mode search that steps with the Fisher weight where the observed information
    ``mu (2 mu - y) / sigma^2`` is negative (``pirls._step_weight``; before it, false modes
    from warm starts made the engine refuse this model); its agreement with long NUTS is the
    ``gaussian_log_ri`` case of :func:`test_laplace_agrees_with_long_nuts`.  Without random
    effects it is one Gaussian at the mode."""
    df, kw = _family_data("gaussian_log")
    fit = bg.GLMM("y ~ x", df, **kw).fit(method="laplace", draws=500, random_seed=1)
    assert abs(fit.draws_fixed()[:, 0].mean() - 2.0) < 0.1  # simulated: 0.4 + 1.6
    mixed = bg.GLMM("y ~ x + (1 | g)", df, **kw).fit(method="laplace", draws=500, random_seed=1)
    assert abs(mixed.draws_fixed()[:, 0].mean() - 2.0) < 0.3
    assert np.all(fit.draws_dispersion()["sigma"] > 0)


def test_interpretation_reads_the_laplace_dispersion_draws() -> None:
    """print, varcorr, the ICC (Nakagawa's lognormal rule at each draw's shape), marginal
    predictions, the posterior predictive and LOO run on a negative binomial Laplace fit."""
    model = bg.GLMM("y ~ x + (1 | g)", _nb_data(300, False), "negativebinomial")
    fit = model.fit(method="laplace", draws=200, random_seed=4)
    shape = fit.draws_dispersion()["shape"]
    text = str(fit)
    assert f"shape = {shape.mean():.3f}" in text and "theta = " in text
    assert list(fit.varcorr()["group"]) == ["g"]  # no Residual row, as glmer.nb
    icc = fit.icc()
    assert 0.0 < icc.loc["g", "mean"] < 1.0
    pred = fit.predict(re="marginal")
    assert pred.shape == (1, 200, 300) and np.all(np.isfinite(pred.values))
    with warnings.catch_warnings():  # Pareto k with 200 draws: not what is tested here
        warnings.simplefilter("ignore")
        assert np.all(np.isfinite(fit.loo().elpd_i))


def test_nagq_above_one_with_a_dispersion_is_a_clear_error() -> None:
    model = bg.GLMM("y ~ x + (1 | g)", _nb_data(200, False), "negativebinomial")
    with pytest.raises(bg.InferenceError) as err:
        model.fit(method="laplace", nagq=5)
    assert str(err.value) == (
        "nagq > 1 is not available in method='laplace' for the negativebinomial family: with "
        "a dispersion parameter the random effects are integrated out by Laplace (as in "
        "method='ml'); use nagq=1 or leave it unset"
    )
