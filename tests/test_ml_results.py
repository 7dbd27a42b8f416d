"""GLMMFit accessors on ML fits: ICC, AIC/BIC, glmer-style summary, conditional variances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesglmm as bg


def _fit(formula, data, family, nagq=1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.GLMM(formula, bg.datasets.load(data), family).fit(method="ml", nagq=nagq)


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
        bg.InferenceError, match="nagq > 1 needs one grouping factor with at most 3"
    ):
        _fit("Richness ~ NAP + (1 | Beach) + (1 | Sample)", "rikz", "poisson", 5)


def test_parametric_bootstrap_gives_intervals():
    import bayesglmm as bg

    m = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = m.fit(method="ml")
        boot = ml.bootstrap(n_boot=40, random_seed=2)
        again = ml.bootstrap(n_boot=40, random_seed=2)
    np.testing.assert_array_equal(boot.draws_fixed(), again.draws_fixed())
    assert boot.label == "ml_boot" and boot.n_samples + boot.options["failed"] == 40
    # bootstrap SD of the slope is close to the Wald SE
    assert boot.draws_fixed()[:, 1].std() == pytest.approx(ml.se()["NAP"], rel=0.35)
    icc = boot.icc()
    assert {"mean", "sd", "eti95_lb", "eti95_ub"} <= set(icc.columns)
    assert (
        icc.loc["Beach", "eti95_lb"]
        < ml.icc().loc["Beach", "estimate"]
        < icc.loc["Beach", "eti95_ub"]
    )
    assert boot.predict(re="marginal").shape == (1, boot.n_samples, 45)
