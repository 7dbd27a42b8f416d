"""Bayesian integrated Laplace vs NUTS, and the comparison table across methods."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesglmm as bg

TOENAIL = "outcome ~ treatment * time + (1 | patientID)"


@pytest.fixture(scope="module")
def toenail_model():
    return bg.GLMM(TOENAIL, bg.datasets.load("toenail"), "bernoulli")


def test_does_not_collapse_and_is_seeded(toenail_model):
    """The joint-mode Laplace collapses (pymc-extras: SD 19, statsmodels: ~0; NUTS 4.15);
    integrating the random effects out does not."""
    a = toenail_model.fit(method="laplace", random_seed=3, draws=300)
    b = toenail_model.fit(method="laplace", random_seed=3, draws=300)
    sd = np.sqrt(a.draws_cov(0)[:, 0, 0])
    assert 3.0 < np.median(sd) < 5.5
    np.testing.assert_array_equal(a.draws_fixed(), b.draws_fixed())
    assert a.approximate and a.idata["log_likelihood"]["y"].shape == (1, 300, 1908)
    assert set(a.icc().columns) == {"mean", "sd", "hdi_3%", "hdi_97%"}


def test_correlated_block_is_refused():
    m = bg.GLMM("y ~ followup + (1 + followup | subject)", bg.datasets.load("epilepsy"), "poisson")
    with pytest.raises(bg.InferenceError, match="uncorrelated random effects only"):
        m.fit(method="laplace")


@pytest.mark.slow
@pytest.mark.parametrize(
    "formula,data,family",
    [
        (TOENAIL, "toenail", "bernoulli"),
        ("bush ~ black + female + (1 | state)", "polls", "bernoulli"),
        ("y ~ offset(log(weeks)) + followup * group + (1 | subject)", "epilepsy", "poisson"),
    ],
)
def test_laplace_agrees_with_nuts(formula, data, family):
    """Fixed-effect means within 0.25 NUTS posterior SD; group-SD medians within 15%."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM(formula, bg.datasets.load(data), family)
        nuts = m.fit(draws=1000, tune=1000, chains=4, random_seed=1)
        lap = m.fit(method="laplace", random_seed=1)
    diff = (lap.fixef() - nuts.fixef()).abs()
    assert (diff < 0.25 * nuts.se()).all(), (lap.fixef(), nuts.fixef(), nuts.se())
    med = lambda f: float(np.median(np.sqrt(f.draws_cov(0)[:, 0, 0])))  # noqa: E731
    assert med(lap) == pytest.approx(med(nuts), rel=0.15)
    if data == "toenail":
        ml = m.fit(method="ml")
        agq = m.fit(method="ml", nagq=25)
        table = bg.compare([nuts, lap, ml, agq])
        assert table.loc["(Intercept)", "ml"] == pytest.approx(-2.51, abs=0.02)
        assert table.loc["(Intercept)", "agq25"] == pytest.approx(-1.61, abs=0.01)
        assert table.attrs["reference"] == "nuts"
        assert abs(table.loc["(Intercept)", "ml dist"]) > 1.5  # Laplace ML is badly off
        assert {"logLik", "elapsed_s", "ICC(patientID)"} <= set(table.index)
