"""Adaptive Gauss-Hermite quadrature (``nagq > 1``) for the families with a free dispersion:
negative binomial (NB2), Gamma (log, inverse), Beta, Student-t, gaussian with a log link.

References:

- ``glmm`` 0.6.2 (PyPI), AGQ with the dispersion estimated jointly, for the negative
  binomial and the Gamma with a log link (the families it has), stored in
  ``tests/fixtures/agq_dispersion/glmm_agq_dispersion.json`` with the script that made it
  (seeded simulations, 400 to 2,000 rows, one grouping factor);
- for every supported family, the exact marginal likelihood of a tiny data set by brute-force
  quadrature (a dense trapezoid rule over the random effect, with SciPy's densities: no code
  of the package), against which AGQ must converge as ``nagq`` grows.
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesglmm as bg
from bayesglmm.engines.ml.agq import scalar_deviance
from bayesglmm.engines.ml.laplace_dispersion import DispersionObjective, fit_ml_dispersion

FIX = Path(__file__).parent / "fixtures" / "agq_dispersion"
REF = json.loads((FIX / "glmm_agq_dispersion.json").read_text())["cases"]
_spec = importlib.util.spec_from_file_location(
    "make_glmm_agq_dispersion", FIX / "make_glmm_agq_dispersion.py"
)
MAKER = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(MAKER)  # type: ignore[union-attr]

FAMILY = {"negativebinomial": "nb", "gamma": "gamma"}


def _fit(model: bg.GLMM, nagq: int) -> bg.GLMMFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(method="ml", nagq=nagq)


def _varcorr_row(cov: np.ndarray) -> list[float]:
    """glmm's ``varcorr`` row of one term: the variance, or ``[var(1), cov, var(x)]``."""
    if cov.shape == (1, 1):
        return [float(cov[0, 0])]
    return [float(cov[0, 0]), float(cov[1, 0]), float(cov[1, 1])]


_GLMM_CASES = [(name, q) for name, c in REF.items() for q in c["fits"]]


@pytest.fixture(scope="module")
def models() -> dict[str, bg.GLMM]:
    out = {}
    for name, c in REF.items():
        df = MAKER.simulate(c["family"], c["n"], c["groups"], c["seed"], c["slope"])
        assert df["y"].sum() == pytest.approx(c["sum_y"], rel=1e-12)  # the same data
        out[name] = bg.GLMM(c["formula"], df, family=FAMILY[c["family"]], link="log")
    return out


# ---------------------------------------------------------------------------- against glmm
@pytest.mark.parametrize(("case", "nagq"), _GLMM_CASES, ids=[f"{c}-agq{q}" for c, q in _GLMM_CASES])
def test_agq_dispersion_matches_glmm(models: dict[str, bg.GLMM], case: str, nagq: str) -> None:
    """Fixed effects and the random-effect SDs (and the correlation's covariance) within
    1e-3 of glmm's, the dispersion within 1e-2 relative, the logLik within 1e-4 or higher
    (the higher logLik is the better fit: glmm may stop short of the optimum, we may not).
    Measured: estimates within ~5e-7, the shape within ~2e-6 relative, logLik within 2e-10
    (neither is higher beyond rounding)."""
    ref = REF[case]["fits"][nagq]
    assert ref["nagq"] == int(nagq)  # glmm ran the quadrature (no Laplace fallback)
    est = _fit(models[case], int(nagq)).ml
    assert est.nagq == int(nagq) and est.converged
    np.testing.assert_allclose(est.beta, ref["beta"], atol=1e-3)
    ours = _varcorr_row(est.covariances[0])
    np.testing.assert_allclose(np.sqrt(ours[::2]), np.sqrt(ref["varcorr"][::2]), atol=1e-3)
    if len(ours) == 3:
        assert abs(ours[1] - ref["varcorr"][1]) < 1e-3
    assert est.family_dispersion[0] / ref["shape"] - 1 == pytest.approx(0.0, abs=1e-2)
    assert est.loglik > ref["loglik"] - 1e-4
    # the reported logLik is the normalized one (not glmer's nAGQ > 1 convention)
    assert est.loglik == est.loglik_normalized


def test_agq_improves_on_laplace_where_groups_are_small(models: dict[str, bg.GLMM]) -> None:
    """With 4 rows per group the AGQ logLik differs from the Laplace one (so the glmm
    comparison above checks the quadrature, not the Laplace path), and nagq 5 and 25 agree
    closer with each other than with Laplace."""
    for case in ("negbin_400", "gamma_log_400"):
        ll = {q: REF[case]["fits"][q]["loglik"] for q in ("1", "5", "25")}
        assert abs(ll["5"] - ll["1"]) > 0.3
        assert abs(ll["25"] - ll["5"]) < abs(ll["5"] - ll["1"]) / 10


@pytest.mark.skipif(importlib.util.find_spec("glmm") is None, reason="glmm not installed")
def test_agq_dispersion_fixture_is_what_glmm_gives_now() -> None:
    c = REF["gamma_log_400"]
    df = MAKER.simulate(c["family"], c["n"], c["groups"], c["seed"], c["slope"])
    now = MAKER.reference(c["family"], c["formula"], df, 5)
    ref = c["fits"]["5"]
    np.testing.assert_allclose(now["beta"], ref["beta"], atol=1e-8)
    assert abs(now["shape"] - ref["shape"]) < 1e-6
    assert abs(now["loglik"] - ref["loglik"]) < 1e-8


# ---------------------------------------------------------------------------- brute force
def _tiny(family: str, seed: int = 7, groups: int = 25, per: int = 3) -> tuple[pd.DataFrame, dict]:
    """A tiny seeded data set (``groups`` x ``per`` rows) of ``family`` and its GLMM keywords."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    a = rng.normal(0.0, 0.8, groups)[g]
    eta = 0.3 + 0.5 * x + a
    if family == "nb":
        mu = np.exp(eta)
        y = rng.negative_binomial(1.5, 1.5 / (1.5 + mu)).astype(float)
        kw: dict = {"family": "nb"}
    elif family == "nb1":  # glmmTMB's nbinom1: size mu / phi, Var = mu (1 + phi)
        mu = np.exp(eta)
        y, kw = rng.negative_binomial(mu / 1.5, 1.0 / 2.5).astype(float), {"family": "nbinom1"}
    elif family == "gamma_log":
        y, kw = rng.gamma(2.5, np.exp(eta) / 2.5), {"family": "gamma", "link": "log"}
    elif family == "gamma_inverse":
        eta = 1.0 + 0.1 * x + 0.1 * a
        y, kw = rng.gamma(2.5, 1.0 / eta / 2.5), {"family": "gamma", "link": "inverse"}
    elif family == "beta":
        mu = special.expit(eta)
        y, kw = rng.beta(mu * 8.0, (1.0 - mu) * 8.0), {"family": "beta"}
    elif family == "student_t":
        y, kw = eta + 0.5 * rng.standard_t(4.0, g.size), {"family": "student_t"}
    else:  # gaussian, log link
        y, kw = np.exp(eta) + 0.3 * rng.normal(size=g.size), {"family": "gaussian", "link": "log"}
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]}), kw


def _row_logpdf(family: str, y: np.ndarray, eta: np.ndarray, disp: dict) -> np.ndarray:
    """SciPy's log density of each row (no code of the package)."""
    if family == "nb":
        mu, s = np.exp(eta), disp["shape"]
        return stats.nbinom.logpmf(y, s, s / (s + mu))
    if family == "nb1":
        mu, phi = np.exp(eta), disp["phi"]
        return stats.nbinom.logpmf(y, mu / phi, 1.0 / (1.0 + phi))
    if family in ("gamma_log", "gamma_inverse"):
        mu = np.exp(eta) if family == "gamma_log" else 1.0 / eta
        return stats.gamma.logpdf(y, disp["shape"], scale=mu / disp["shape"])
    if family == "beta":
        mu, phi = special.expit(eta), disp["phi"]
        return stats.beta.logpdf(y, mu * phi, (1.0 - mu) * phi)
    if family == "student_t":
        return stats.t.logpdf(y, disp["nu"], loc=eta, scale=disp["sigma"])
    return stats.norm.logpdf(y, np.exp(eta), disp["sigma"])


def exact_loglik(family: str, df: pd.DataFrame, beta: np.ndarray, sd: float, disp: dict) -> float:
    """``sum_g log int prod_i f(y_i | x_i' beta + b) N(b | 0, sd^2) db`` by the trapezoid
    rule on 8,001 points of ``b / sd`` in [-12, 12] (exponentially accurate for these smooth,
    fast-decaying integrands)."""
    u = np.linspace(-12.0, 12.0, 8001)
    logw = stats.norm.logpdf(u) + np.log(u[1] - u[0])
    eta_fixed = beta[0] + beta[1] * df["x"].to_numpy()
    y = df["y"].to_numpy()
    total = 0.0
    for _, rows in df.groupby("g", sort=False).indices.items():
        eta = eta_fixed[rows, None] + sd * u[None, :]  # rows x points
        with np.errstate(all="ignore"):
            lp = _row_logpdf(family, y[rows, None], eta, disp)
        lp = np.where(np.isnan(lp), -np.inf, lp)  # outside the domain (inverse link)
        total += float(special.logsumexp(lp.sum(axis=0) + logw))
    return total


BRUTE_FAMILIES = ["nb", "nb1", "gamma_log", "gamma_inverse", "beta", "student_t", "gaussian_log"]


@pytest.mark.parametrize("family", BRUTE_FAMILIES)
def test_agq_deviance_converges_to_the_exact_marginal_likelihood(family: str) -> None:
    """At a fixed parameter point the AGQ log-likelihood tends to the brute-force one as
    ``nagq`` grows: within 1e-8 at ``nagq = 100``; at 25 within 1e-4 and at least 100 times
    closer than Laplace.  (Measured at 25: ~1e-9 and below for NB, Gamma, Beta, Student-t;
    1.2e-5 for the gaussian with a log link, whose integrand has a flat tail as ``mu -> 0``;
    1.8e-8 at 51 and 5e-12 at 100.)  The gaussian-log point has groups with ``y > 2 mu`` at
    ``b = 0``, where the observed information is negative (the mode search steps with the
    Fisher weight on those rows: ``pirls._step_weight``)."""
    df, kw = _tiny(family)
    model = bg.GLMM("y ~ x + (1 | g)", df, **kw)
    dobj = DispersionObjective(model.design, 25)
    names = [d.name for d in dobj.dispersion]
    natural = {"shape": 2.0, "phi": 7.0, "sigma": 0.45, "nu": 5.0}
    beta = np.array([1.0, 0.1]) if family == "gamma_inverse" else np.array([0.25, 0.45])
    sd = 0.1 if family == "gamma_inverse" else 0.7
    disp_x = [float(d.to_unconstrained(natural[d.name])) for d in dobj.dispersion]
    x = np.concatenate([[sd], beta, disp_x])  # theta = sd: the intercept's column is 1
    exact = exact_loglik(family, df, beta, sd, {n: natural[n] for n in names})
    err = {}
    for q in (1, 5, 25, 100):
        err[q] = abs(-0.5 * DispersionObjective(model.design, q).deviance(x) - exact)
    assert err[100] < 1e-8, err
    assert err[25] < 1e-4, err
    assert err[25] < err[1] / 100, err


@pytest.mark.parametrize("family", ["nb", "gamma_log"])
def test_agq_fit_loglik_is_the_exact_marginal_likelihood(family: str) -> None:
    """The logLik reported by an ``nagq = 25`` fit equals the brute-force marginal
    log-likelihood at its own estimates (1e-6): the reported value is the normalized one."""
    df, kw = _tiny(family, seed=8, groups=30)
    est = _fit(bg.GLMM("y ~ x + (1 | g)", df, **kw), 25).ml
    sd = float(np.sqrt(est.covariances[0][0, 0]))
    exact = exact_loglik(family, df, est.beta, sd, {"shape": est.family_dispersion[0]})
    assert abs(est.loglik - exact) < 1e-6
    lap = _fit(bg.GLMM("y ~ x + (1 | g)", df, **kw), 1).ml
    exact_lap = exact_loglik(
        family,
        df,
        lap.beta,
        float(np.sqrt(lap.covariances[0][0, 0])),
        {"shape": lap.family_dispersion[0]},
    )
    assert abs(lap.loglik - exact_lap) > 10 * abs(est.loglik - exact)
    assert est.loglik >= exact_lap - 1e-6  # the AGQ optimum is the better one in truth


# ---------------------------------------------------------------------------- nagq = 1
@pytest.mark.parametrize("family", BRUTE_FAMILIES)
def test_one_node_quadrature_is_the_laplace_deviance(family: str) -> None:
    """The quadrature code with one node (``z = 0``, ``w = 1``) is exactly the Laplace
    deviance, for every family with a dispersion, and the gradient too (its AGQ formula, at
    one node, against the Laplace one)."""
    df, kw = _tiny(family)
    dobj = DispersionObjective(bg.GLMM("y ~ x + (1 | g)", df, **kw).design, 1)
    x = np.concatenate(
        [
            [0.1 if family == "gamma_inverse" else 0.6],
            [1.0, 0.1] if family == "gamma_inverse" else [0.2, 0.4],
            [
                float(d.to_unconstrained(d_start))
                for d, d_start in zip(dobj.dispersion, [2.0, 5.0][: dobj.n_disp], strict=True)
            ],
        ]
    )
    theta, beta, _ = dobj.split(x)
    dobj._set(x)
    obj = dobj.obj
    mode = obj.mode_at(theta, beta)
    eta_fixed = obj.offset + obj.X @ beta
    args = (obj.scalar_st, obj.fam, obj.X, eta_fixed, mode, 1)
    lap, g_lap, _ = scalar_deviance(*args, grad=True)
    quad, g_quad, _ = scalar_deviance(*args, grad=True, quadrature=True)
    assert quad == pytest.approx(lap, rel=1e-13, abs=1e-9)
    # the two gradient formulas agree to the mode's precision (Student-t: Fisher scoring,
    # linear convergence, 1e-7 relative; NB1: a non-canonical link whose observed information
    # comes from trigamma differences, the decrement stops at 1e-11, 1e-6 relative)
    tol = 1e-6 if family in ("student_t", "nb1") else 1e-9
    np.testing.assert_allclose(g_quad, g_lap, rtol=tol, atol=1e-9)
    # a fresh mode search ends within its tolerance of this mode: the determinant is
    # first-order sensitive to it (NB1: decrement 1e-11, so ~3e-6 in u, 3e-10 relative)
    assert dobj.deviance(x) == pytest.approx(lap, rel=1e-9 if family == "nb1" else 1e-12)


def test_nagq_1_is_todays_laplace_fit(models: dict[str, bg.GLMM]) -> None:
    """``nagq = 1`` through the dispersion engine is the Laplace fit: the same numbers as
    ``fit(method="ml")`` without ``nagq``, and as glmm's Laplace fit."""
    model = models["negbin_400"]
    default, one = _fit(model, 1).ml, model.fit(method="ml").ml
    np.testing.assert_array_equal(one.beta, default.beta)
    assert one.loglik == default.loglik and one.nagq == 1
    direct = fit_ml_dispersion(model.design)
    np.testing.assert_allclose(direct.beta, one.beta, atol=1e-10)
    assert abs(one.loglik - REF["negbin_400"]["fits"]["1"]["loglik"]) < 1e-6


# ---------------------------------------------------------------------------- gradient
@pytest.mark.parametrize("family", ["nb", "gamma_log", "beta", "student_t"])
def test_agq_gradient_is_the_deviance_derivative(family: str) -> None:
    """The analytic AGQ gradient in ``[theta, beta]`` (the dispersion coordinates are central
    differences) equals central differences of the AGQ deviance: 1e-5 relative; for the
    Student-t (whose curvature ``H`` holds the Fisher weight; the mode sensitivities use the
    observed information) 1e-4, the mode search's own precision."""
    df, kw = _tiny(family)
    dobj = DispersionObjective(bg.GLMM("y ~ x + (1 | g)", df, **kw).design, 7)
    x = np.concatenate([[0.7], [0.2, 0.4], [0.6] * dobj.n_disp])
    f, g = dobj.deviance_grad(x)
    fd = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = 1e-5
        fd[i] = (dobj.deviance(x + e) - dobj.deviance(x - e)) / 2e-5
    tol = 1e-4 if family == "student_t" else 1e-5
    np.testing.assert_allclose(g, fd, rtol=tol, atol=tol * max(1.0, abs(f)) * 1e-2)


# ---------------------------------------------------------------------------- bad input
def test_agq_dispersion_two_grouping_factors_is_a_clear_error() -> None:
    """Pinned in docs/bad_input.md: AGQ integrates one grouping factor."""
    df, kw = _tiny("nb")
    df["h"] = np.tile(["a", "b", "c", "d", "e"], len(df) // 5)
    model = bg.GLMM("y ~ x + (1 | g) + (1 | h)", df, **kw)
    msg = (
        "nagq > 1 needs one grouping factor with at most 3 random-effect terms (e.g. (1 | g), "
        "(1 + x | g), (1 + x + z | g)); this model has 2 block(s): ((Intercept) || g), "
        "((Intercept) || h). Use "
        "nagq=1 (Laplace)"
    )
    with pytest.raises(bg.InferenceError, match=re.escape(msg)):
        model.fit(method="ml", nagq=5)
    vec = bg.GLMM("y ~ x + (1 + x | g)", df, **kw)
    with pytest.raises(
        bg.InferenceError,
        match=re.escape(
            "nagq=27 with 2 random-effect terms in ((Intercept) + x | g) needs 27^2 = 729 "
            "quadrature nodes per level; the limits are nagq <= 25 for 2 terms and nagq <= 11 "
            "for 3 terms. Use nagq <= 25"
        ),
    ):
        vec.fit(method="ml", nagq=27)
