"""Laplace ML and AGQ engines against lme4's glmer (tests/fixtures/lme4_glmer.json).

Tolerances as the issue states: toenail nAGQ table fixed effects +-0.002, SD +-0.01,
logLik +-0.01; other course models fixed effects +-1e-3, SDs/correlations +-1e-2,
logLik +-0.02, SEs within 2%.  Where the references disagree, the higher log-likelihood
wins: glmer stopped short on toenail at nAGQ = 1 (see test_toenail_laplace_vs_glmm) and
warned that it had not converged on polls_demo and hdp_tumors, so there we require our
log-likelihood to be at least glmer's (minus the tolerance) rather than equal to it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import lme4_reference, ref_sd

from bayesglmm import datasets
from bayesglmm.design.build import build_design
from bayesglmm.design.types import Design, RandomBlock
from bayesglmm.engines.ml.agq import scalar_deviance
from bayesglmm.engines.ml.laplace import AGQError, LaplaceObjective, fit_ml
from bayesglmm.errors import ConvergenceWarning
from bayesglmm.families import get_family

TOENAIL = "outcome ~ treatment * time + (1 | patientID)"
EPI_RI = "y ~ offset(log(weeks)) + followup * group + (1 | subject)"

CASES = {
    "rikz_ri": ("Richness ~ NAP + (1 | Beach)", "rikz", "poisson", 1),
    "rikz_olre": ("Richness ~ NAP + (1 | Beach) + (1 | Sample)", "rikz", "poisson", 1),
    "polls_ri": ("bush ~ black + female + (1 | state)", "polls", "bernoulli", 1),
    "polls_demo": (
        "bush ~ black + female + edu_label + age_label + (1 | state)",
        "polls",
        "bernoulli",
        1,
    ),
    "epilepsy_rs": (
        "y ~ offset(log(weeks)) + followup * group + (1 + followup | subject)",
        "epilepsy",
        "poisson",
        1,
    ),
    "epilepsy_ri": (EPI_RI, "epilepsy", "poisson", 1),
    "epilepsy_ri_agq20": (EPI_RI, "epilepsy", "poisson", 20),
    "hdp_tumors": ("ntumors ~ Age + Married + IL6 + (1 | DID)", "hdp", "poisson", 1),
}
GLMER_NOT_CONVERGED = {"polls_demo", "hdp_tumors"}


def _design(formula: str, data: str, family: str) -> Design:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(formula, datasets.load(data), family)


def _fit(design: Design, nagq: int = 1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_ml(design, nagq)


@pytest.fixture(scope="module")
def toenail() -> Design:
    return _design(TOENAIL, "toenail", "bernoulli")


def _sd_cor(fit, design: Design) -> dict:
    """(group, term1, term2) -> SD or correlation, as lme4's VarCorr rows."""
    out = {}
    for b, S in zip(design.blocks, fit.covariances, strict=True):
        sd = np.sqrt(np.diag(S))
        for i, t in enumerate(b.terms):
            out[(b.group, t, None)] = sd[i]
            for j in range(i + 1, len(b.terms)):
                out[(b.group, t, b.terms[j])] = S[i, j] / (sd[i] * sd[j])
    return out


@pytest.mark.parametrize("q", [3, 5, 10, 20, 25])
def test_toenail_agq_table(toenail, q):
    ref = lme4_reference(f"toenail_agq{q}")
    fit = _fit(toenail, q)
    np.testing.assert_allclose(fit.beta, list(ref["fixef"].values()), atol=2e-3)
    assert abs(np.sqrt(fit.covariances[0][0, 0]) - ref_sd(ref, "patientID")) < 0.01
    assert abs(fit.loglik - ref["logLik"]) < 0.01
    # Bernoulli: the saturated log-likelihood is 0, glmer's convention changes nothing
    assert fit.loglik == fit.loglik_normalized
    assert fit.converged


def test_toenail_laplace_vs_glmm(toenail):
    """nAGQ = 1: glmer stopped short (logLik -627.815, intercept -2.510); glmm reaches
    -627.809 (intercept -2.523).  The higher log-likelihood wins, so we test against glmm's
    numbers (computed live) and only require a log-likelihood at least glmer's - 1e-3."""
    glmm = pytest.importorskip("glmm")
    ref = lme4_reference("toenail_agq1")
    fit = _fit(toenail, 1)
    assert fit.loglik >= ref["logLik"] - 1e-3
    df = datasets.load("toenail")
    data = {
        "y": (df["outcome"] == "moderate or severe").to_numpy(dtype=float),
        "trt": (df["treatment"] == "terbinafine").to_numpy(dtype=float),
        "time": df["time"].to_numpy(dtype=float),
        "pid": df["patientID"].astype(str).to_numpy(),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = glmm.fit(data, "y ~ trt * time + (1 | pid)", "binomial")
    np.testing.assert_allclose(fit.beta, g.beta, atol=2e-3)
    assert abs(np.sqrt(fit.covariances[0][0, 0]) - np.sqrt(g.varcorr[0][0])) < 0.01
    assert abs(fit.loglik - g.loglik) < 0.01


@pytest.mark.parametrize("key", list(CASES))
def test_course_models_against_glmer(key):
    formula, data, family, q = CASES[key]
    ref = lme4_reference(key)
    design = _design(formula, data, family)
    fit = _fit(design, q)
    assert list(design.x_names) == list(ref["fixef"])
    np.testing.assert_allclose(fit.beta, list(ref["fixef"].values()), atol=1e-3)
    np.testing.assert_allclose(fit.se_beta, list(ref["se"].values()), rtol=0.02)
    got = _sd_cor(fit, design)
    for row in ref["varcorr"]:
        assert abs(got[(row["group"], row["term1"], row["term2"])] - row["sd_cor"]) < 1e-2, row
    if key in GLMER_NOT_CONVERGED:  # glmer warned: a higher log-likelihood is success
        assert fit.loglik >= ref["logLik"] - 0.02
    else:
        assert abs(fit.loglik - ref["logLik"]) < 0.02
    assert fit.converged and not fit.singular


def test_epilepsy_agq_loglik_convention():
    """glmer's nAGQ > 1 deviance sums deviance residuals: its logLik is the normalized one
    minus the saturated log-likelihood (-530.54 for these counts)."""
    design = _design(EPI_RI, "epilepsy", "poisson")
    fit = _fit(design, 20)
    assert abs(fit.loglik - lme4_reference("epilepsy_ri_agq20")["logLik"]) < 0.02
    lap = lme4_reference("epilepsy_ri")["logLik"]
    assert abs(fit.loglik_normalized - lap) < 0.5  # same scale as the Laplace fit
    assert any("saturated" in m for m in fit.messages)


def test_one_node_quadrature_is_laplace(toenail):
    obj = LaplaceObjective(toenail)
    beta = np.array([-1.6, -0.16, -0.39, -0.14])
    theta = np.array([4.0])
    ev = obj.evaluate(beta, theta, 1, gradient=True, keep_mode=True)
    eta_fixed = toenail.offset + toenail.X @ beta
    dev, grad, _ = scalar_deviance(
        obj.st, obj.fam, obj.X, eta_fixed, ev.mode, 1, grad=True, quadrature=True
    )
    assert dev == pytest.approx(ev.deviance, rel=0, abs=1e-9)
    np.testing.assert_allclose(grad, ev.gradient, rtol=1e-10, atol=1e-9)


def _binomial_trials_design() -> Design:
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(40), 5)
    x = rng.normal(size=g.size)
    n = rng.integers(1, 12, size=g.size)
    p = 1 / (1 + np.exp(-(-0.3 + 0.8 * x + rng.normal(0, 1.2, 40)[g])))
    df = pd.DataFrame({"y": rng.binomial(n, p), "n": n, "x": x, "g": g.astype(str)})
    return _design_df("cbind(y, n - y) ~ x + (1 | g)", df.sample(frac=1, random_state=3))


def _design_df(formula: str, df: pd.DataFrame, family: str = "binomial") -> Design:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(formula, df, family)


@pytest.mark.parametrize(
    "case",
    ["toenail", "epilepsy_ri", "hdp_tumors", "slope_only", "binomial_trials"],
)
@pytest.mark.parametrize("nagq", [1, 7, 25])
def test_fused_scalar_laplace_equals_numpy_path(case, nagq, toenail):
    """The Numba path gives the NumPy path's deviance, gradient, modes, sensitivities."""
    if case == "toenail":
        design = toenail
    elif case == "slope_only":  # a scalar term that is not an intercept: z != 1
        design = _design("y ~ followup + (0 + followup | subject)", "epilepsy", "poisson")
    elif case == "binomial_trials":  # trials and shuffled rows (groups not contiguous)
        design = _binomial_trials_design()
    else:
        design = _design(*CASES[case][:3])
    fast, ref = LaplaceObjective(design), LaplaceObjective(design)
    assert fast._kind_code is not None
    beta = np.linalg.lstsq(design.X, np.zeros(design.n), rcond=None)[0] + 0.1
    for theta in (0.3, 1.3, 3.0):
        for b in (beta, beta - 0.2):
            th = np.array([theta])
            ev = fast.evaluate(b, th, nagq, gradient=True)
            evr = ref.evaluate(b, th, nagq, gradient=True, keep_mode=True)
            assert ev.mode is None and evr.mode is not None
            assert ev.deviance == pytest.approx(evr.deviance, rel=1e-12, abs=1e-8)
            np.testing.assert_allclose(ev.gradient, evr.gradient, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(ev.u, evr.u, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(ev.modes[0], evr.modes[0], rtol=1e-7, atol=1e-9)
            for s_fast, s_ref in zip(fast._last[3:], ref._last[3:], strict=True):
                np.testing.assert_allclose(s_fast, s_ref, rtol=1e-7, atol=1e-9)
    # the draws' mode sensitivities: fused vs the NumPy formulas from the mode
    ref._kind_code = None
    th = np.array([1.1])
    for a, b in zip(
        fast.scalar_mode_sensitivities(th, beta),
        ref.scalar_mode_sensitivities(th, beta),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("nagq", [1, 25])
def test_fused_path_fit_equals_numpy_path_fit(toenail, nagq, monkeypatch):
    """A whole Laplace / AGQ fit with the Numba path matches one on the NumPy path."""
    fast = _fit(toenail, nagq)
    real_init = LaplaceObjective.__init__

    def numpy_only(self, *a, **k):
        real_init(self, *a, **k)
        self._kind_code = None

    monkeypatch.setattr(LaplaceObjective, "__init__", numpy_only)
    slow = _fit(toenail, nagq)
    np.testing.assert_allclose(fast.beta, slow.beta, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=0, atol=1e-6)
    assert fast.loglik == pytest.approx(slow.loglik, abs=1e-8)
    np.testing.assert_allclose(fast.vcov_beta, slow.vcov_beta, rtol=1e-4)


@pytest.mark.parametrize("nagq", [1, 7])
def test_analytic_gradient_matches_differences(toenail, nagq):
    obj = LaplaceObjective(toenail)
    x = np.array([2.5, -1.5, -0.2, -0.35, -0.1])
    _, g = obj.deviance_grad(x, nagq)
    np.testing.assert_allclose(g, obj._fd_gradient(x, nagq), rtol=1e-5, atol=1e-4)


def test_agq_needs_one_grouping_factor():
    """AGQ covers one grouping factor with up to 3 terms (tests/test_agq_vector.py), not
    several blocks, and caps nagq for vector terms."""
    design = _design(*CASES["rikz_olre"][:3])
    with pytest.raises(AGQError, match="one grouping factor with at most 3"):
        fit_ml(design, nagq=5)
    design = _design(CASES["epilepsy_rs"][0], "epilepsy", "poisson")
    with pytest.raises(AGQError, match="nagq <= 25 for 2 terms"):
        fit_ml(design, nagq=26)


def _simulated(n: int, groups: int, sd: float, seed: int) -> Design:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.standard_normal(n)
    eta = -0.3 + 0.8 * x + sd * rng.standard_normal(groups)[g]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    block = RandomBlock(
        "g", ("(Intercept)",), np.ones((n, 1)), g.astype(np.int64), tuple(map(str, range(groups)))
    )
    X = np.column_stack([np.ones(n), x])
    return Design(y, None, np.zeros(n), X, ("(Intercept)", "x"), (block,), get_family("bernoulli"))


def test_singular_fit_is_flagged():
    # seed 4: the ML optimum is on the boundary (glmm: SD 0, logLik -1271.6924).  Seed 3,
    # used before, has an interior optimum (SD 0.0602, logLik -1242.8217, as glmm) that the
    # engine missed by stalling at 0 (issue 14; tests/test_ml_boundary.py)
    design = _simulated(2000, 50, 0.0, seed=4)
    with pytest.warns(ConvergenceWarning, match="singular"):
        fit = fit_ml(design)
    assert fit.singular
    assert any("isSingular" in m for m in fit.messages)


def test_fits_are_deterministic(toenail):
    a, b = _fit(toenail, 5), _fit(toenail, 5)
    assert np.array_equal(a.beta, b.beta)
    assert np.array_equal(a.theta, b.theta)
    assert a.loglik == b.loglik
    assert np.array_equal(a.vcov_beta, b.vcov_beta)


def test_modes_and_conditional_variances_shapes(toenail):
    fit = _fit(toenail, 1)
    assert fit.modes[0].shape == (294, 1)
    assert fit.cond_var[0].shape == (294, 1, 1)
    assert np.all(fit.cond_var[0] > 0)
    design = _design(CASES["rikz_olre"][0], "rikz", "poisson")
    fit = _fit(design, 1)
    assert [m.shape for m in fit.modes] == [(b.n_levels, 1) for b in design.blocks]
    assert all(np.all(c > 0) for c in fit.cond_var)


def test_gaussian_is_exact_ml_lmm():
    sm = pytest.importorskip("statsmodels.formula.api")
    df = datasets.load("rikz")
    design = _design("Richness ~ NAP + (1 | Beach)", "rikz", "gaussian")
    fit = fit_ml(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.mixedlm("Richness ~ NAP", df, groups=df["Beach"]).fit(reml=False)
    np.testing.assert_allclose(fit.beta, ref.fe_params.to_numpy(), atol=1e-4)
    assert fit.loglik == pytest.approx(ref.llf, abs=1e-4)
    assert fit.sigma == pytest.approx(np.sqrt(ref.scale), rel=1e-3)
    assert fit.covariances[0][0, 0] == pytest.approx(float(ref.cov_re.iloc[0, 0]), rel=1e-3)
    assert isinstance(df, pd.DataFrame)
