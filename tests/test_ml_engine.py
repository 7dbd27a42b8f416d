"""Laplace ML and AGQ against lme4's glmer (tests/fixtures/lme4_glmer.json).

Tolerances as the issue states: toenail nAGQ table fixed effects +-0.002, SD +-0.01,
logLik +-0.01; other course models fixed effects +-1e-3, SDs/correlations +-1e-2,
logLik +-0.02, SEs within 2%.  Where glmer stopped short (toenail at nAGQ = 1, see
test_toenail_laplace_follows_higher_loglik) the higher log-likelihood wins.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import lme4_reference

import bayesglmm as bg

TOENAIL = "outcome ~ treatment * time + (1 | patientID)"


def _fit(formula, data, family, nagq=1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.GLMM(formula, bg.datasets.load(data), family).fit(method="ml", nagq=nagq)


def _vc_map(vc):
    return {
        (r.group, r.term1, r.term2 if isinstance(r.term2, str) else None): r.sd_cor
        for r in vc.itertuples()
    }


@pytest.mark.parametrize("q", [3, 5, 10, 20, 25])
def test_toenail_agq_table(q):
    ref = lme4_reference(f"toenail_agq{q}")
    fit = _fit(TOENAIL, "toenail", "bernoulli", q)
    for name, val in ref["fixef"].items():
        assert fit.fixef()[name] == pytest.approx(val, abs=0.002), name
    assert fit.varcorr().sd_cor[0] == pytest.approx(ref["varcorr"][0]["sd_cor"], abs=0.01)
    assert fit.loglik == pytest.approx(ref["logLik"], abs=0.01)
    assert fit.ml.nagq == q and fit.label == f"agq{q}"


def test_toenail_laplace_follows_higher_loglik():
    """At nAGQ = 1 glmer stopped short (logLik -627.815, intercept -2.510); the glmm package
    reaches -627.809 (intercept -2.523).  The higher log-likelihood wins, so we test against
    glmm's optimum and require at least glmer's log-likelihood."""
    ref = lme4_reference("toenail_agq1")
    fit = _fit(TOENAIL, "toenail", "bernoulli", 1)
    assert fit.loglik >= ref["logLik"] - 1e-3
    assert fit.loglik == pytest.approx(-627.809, abs=0.01)
    assert fit.fixef()["(Intercept)"] == pytest.approx(-2.523, abs=0.002)
    assert fit.fixef()["(Intercept)"] < -2.4  # the lesson: Laplace is far from AGQ's -1.61


def test_agq_q1_equals_laplace_exactly():
    from bayesglmm.inference.laplace import LaplaceObjective

    m = bg.GLMM(TOENAIL, bg.datasets.load("toenail"), "bernoulli")
    obj = LaplaceObjective(m.design)
    x = np.array([3.0, -1.5, -0.2, -0.4, -0.1])
    theta, beta, s = obj.split(x)
    mode = obj.mode(theta, beta, s)
    # one Gauss-Hermite node at the mode is the Laplace deviance
    assert obj._agq_deviance(mode, beta, s, 1) == pytest.approx(obj.deviance(x, 1), rel=1e-12)


CASES = [
    ("rikz_ri", "rikz", "Richness ~ NAP + (1 | Beach)", "poisson", 1),
    ("rikz_olre", "rikz", "Richness ~ NAP + (1 | Beach) + (1 | Sample)", "poisson", 1),
    ("polls_ri", "polls", "bush ~ black + female + (1 | state)", "bernoulli", 1),
    (
        "polls_demo",
        "polls",
        "bush ~ black + female + edu_label + age_label + (1 | state)",
        "bernoulli",
        1,
    ),
    (
        "epilepsy_rs",
        "epilepsy",
        "y ~ offset(log(weeks)) + followup * group + (1 + followup | subject)",
        "poisson",
        1,
    ),
    (
        "epilepsy_ri",
        "epilepsy",
        "y ~ offset(log(weeks)) + followup * group + (1 | subject)",
        "poisson",
        1,
    ),
    (
        "epilepsy_ri_agq20",
        "epilepsy",
        "y ~ offset(log(weeks)) + followup * group + (1 | subject)",
        "poisson",
        20,
    ),
    ("hdp_tumors", "hdp", "ntumors ~ Age + Married + IL6 + (1 | DID)", "poisson", 1),
]


@pytest.mark.parametrize("key,data,formula,family,q", CASES, ids=[c[0] for c in CASES])
def test_course_models_match_glmer(key, data, formula, family, q):
    """glmer warned it had not fully converged on polls_demo and hdp: there a higher
    log-likelihood counts as success (the >= check)."""
    ref = lme4_reference(key)
    fit = _fit(formula, data, family, q)
    for name, val in ref["fixef"].items():
        assert fit.fixef()[name] == pytest.approx(val, abs=1e-3), name
    for name, val in ref["se"].items():
        assert fit.se()[name] == pytest.approx(val, rel=0.02), name
    ours = _vc_map(fit.varcorr())
    for row in ref["varcorr"]:
        assert ours[(row["group"], row["term1"], row["term2"])] == pytest.approx(
            row["sd_cor"], abs=1e-2
        )
    assert fit.loglik >= ref["logLik"] - 0.02
    assert fit.loglik == pytest.approx(ref["logLik"], abs=0.02)
    assert fit.design.n == ref["nobs"]


def test_polls_icc_ml():
    fit = _fit("bush ~ black + female + (1 | state)", "polls", "bernoulli")
    assert fit.icc().loc["state", "estimate"] == pytest.approx(0.0489, abs=5e-4)


def test_ml_accessors_and_errors():
    fit = _fit("Richness ~ NAP + (1 | Beach)", "rikz", "poisson")
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * 3)
    assert fit.bic == pytest.approx(-2 * fit.loglik + np.log(45) * 3)
    assert fit.deviance == pytest.approx(-2 * fit.loglik)
    assert list(fit.summary().columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    assert fit.vcov().shape == (2, 2) and not fit.singular and fit.approximate
    assert fit.cond_var()["Beach"].shape == (9, 1, 1)
    assert "AIC" in str(fit)
    with pytest.raises(
        bg.InferenceError, match="nagq > 1 needs exactly one scalar random-effect term"
    ):
        _fit("y ~ followup + (1 + followup | subject)", "epilepsy", "poisson", 5)


def test_singular_fit_flagged_and_deterministic():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 10)
    df = pd.DataFrame({"y": rng.poisson(3.0, g.size), "g": g})
    m = bg.GLMM("y ~ 1 + (1 | g)", df, "poisson")
    with pytest.warns(bg.ConvergenceWarning, match="singular"):
        a = m.fit(method="ml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = m.fit(method="ml")
    assert a.singular
    np.testing.assert_array_equal(a.fixef().values, b.fixef().values)


def test_glmm_peer_agreement():
    """Our Laplace and AGQ-25 on toenail and a seeded 1e4-row simulation match the glmm
    package (Rust core): fixed effects within 1e-3, log-likelihood within 0.01."""
    glmm = pytest.importorskip("glmm")
    from scipy.special import expit

    rng = np.random.default_rng(2024)
    n, G = 10_000, 500
    g = rng.integers(0, G, n)
    X = rng.normal(size=(n, 3))
    y = rng.binomial(1, expit(-0.5 + X @ [0.5, -0.3, 0.2] + rng.normal(0, 1.0, G)[g]))
    sim = pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "g": g})
    tn = bg.datasets.load("toenail")
    tn["y"] = (tn["outcome"] == "moderate or severe").astype(int)
    tn["trt"] = (tn["treatment"] == "terbinafine").astype(int)
    cases = [
        (tn, "y ~ trt * time + (1 | patientID)", 1),
        (tn, "y ~ trt * time + (1 | patientID)", 25),
        (sim, "y ~ x1 + x2 + x3 + (1 | g)", 1),
    ]
    for df, formula, q in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer = glmm.fit(df, formula, family="binomial", nagq=q)
            ours = bg.GLMM(formula, df, "bernoulli").fit(method="ml", nagq=q)
        np.testing.assert_allclose(
            ours.fixef().values, np.asarray(peer.beta, dtype=float), atol=1e-3
        )
        assert ours.loglik == pytest.approx(float(peer.loglik), abs=0.01)
