"""compare(): the table says what its columns and rows hold, and its logLiks share a scale."""

from __future__ import annotations

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.interpret.compare import CompareTable


@pytest.fixture(scope="module")
def rikz_fits():
    m = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
    glm = bg.GLMM("Richness ~ NAP", bg.datasets.load("rikz"), "poisson").fit("ml")
    return glm, m.fit("ml"), m.fit("ml", nagq=25), m.fit("laplace", random_seed=1)


def test_agq_loglik_is_normalized_and_labelled(rikz_fits):
    glm, lap, agq, _ = rikz_fits
    table = bg.compare([glm, lap, agq])
    assert isinstance(table, CompareTable)
    # glmer's nAGQ > 1 value (-36.38, relative to the saturated model) is not in the table:
    # the normalized one is, within 0.05 of the Laplace value (lme4: -107.39 vs -107.38)
    assert agq.loglik == pytest.approx(-36.38, abs=0.01)
    assert table.loc["logLik", "agq25"] == pytest.approx(agq.ml.loglik_normalized, abs=1e-12)
    assert abs(table.loc["logLik", "agq25"] - table.loc["logLik", "ml"]) < 0.05
    assert table.loc["logLik", "ml"] - table.loc["logLik", "glm_ml"] > 10
    text = repr(table)
    assert text.startswith(repr(table.loc[:, :]))  # the table itself comes first
    legend = text.split("\n\n", 1)[1]
    assert "agq25: estimate (ML, adaptive Gauss-Hermite, 25 nodes); logLik normalized" in legend
    assert "-36.38" in legend  # the glmer value it replaces is named
    assert "ml: estimate (ML, Laplace); logLik normalized" in legend
    assert "glm_ml: estimate (ML, GLM, exact)" in legend
    assert "logLik: the log-likelihood at the ML estimate" in legend
    assert all(len(line) <= 100 for line in legend.splitlines())
    assert "<li>agq25: estimate (ML, adaptive" in table._repr_html_()
    # a slice is a plain DataFrame (its legend would not fit it)
    assert type(table.loc[["logLik"]]) is not CompareTable


def test_dist_columns_are_explained(rikz_fits):
    _, lap, _, bayes = rikz_fits
    table = bg.compare([bayes, lap], reference="laplace")
    assert table.attrs["reference"] == "laplace"
    assert "ml dist" in table.columns
    post = bg.compare([bayes]).loc["NAP", "laplace"]
    draws = bayes.draws_fixed()[:, bayes.design.x_names.index("NAP")]
    want = (lap.fixef()["NAP"] - post) / np.std(draws, ddof=1)
    assert table.loc["NAP", "ml dist"] == pytest.approx(want, rel=1e-9)
    legend = table.legend()
    assert "laplace: posterior mean (integrated Laplace); no logLik" in legend
    assert "<fit> dist: (the fit's value - laplace's posterior mean) / laplace's posterior SD" in (
        legend.replace("\n    ", " ")
    )
    assert np.isnan(table.loc["logLik", "laplace"])
