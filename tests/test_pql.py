"""PQL on toenail against MASS::glmmPQL (values from the course notes, ../reference README)."""

from __future__ import annotations

import warnings

import pytest

import bayesglmm as bg


@pytest.fixture(scope="module")
def toenail():
    return bg.GLMM(
        "outcome ~ treatment * time + (1 | patientID)", bg.datasets.load("toenail"), "bernoulli"
    )


def test_pql_matches_glmmpql(toenail):
    fit = toenail.fit(method="pql")
    expect = [-0.7432, -0.0348, -0.2947, -0.1002]
    assert fit.fixef().values == pytest.approx(expect, abs=0.01)
    assert fit.varcorr().sd_cor[0] == pytest.approx(2.317, abs=0.02)
    assert (fit.se() > 0).all()
    assert fit.method == "pql" and fit.label == "pql"
    assert list(fit.summary().columns)[:2] == ["Estimate", "Std. Error"]


def test_pql_fixed_dispersion_differs(toenail):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = toenail.fit(method="pql")
        fixed = toenail.fit(method="pql", dispersion="fixed")
    assert fixed.ml.sigma == 1.0
    assert abs(fixed.fixef()["(Intercept)"] - est.fixef()["(Intercept)"]) > 0.005
    assert fixed.label == "pql_phi1" if fixed.options.get("dispersion") == "fixed" else True
    # far from AGQ-25's intercept of -1.61: the lesson of the course table
    assert est.fixef()["(Intercept)"] > -1.0
