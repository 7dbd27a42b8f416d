"""``print(fit)``: lme4's layout for ML fits, brms's for Bayesian ones (issue 18)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.fit.health import health_messages
from bayesglmm.fit.printing import _pval, _sig


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=200)
    u = rng.normal(0, 4, 20)[g]
    df = pd.DataFrame({"y": u + 1 + x + rng.normal(size=200), "x": x, "g": g})
    df["yb"] = (rng.random(200) < 1 / (1 + np.exp(-(0.3 * u + x)))).astype(int)
    return df


def _fit(formula, df, family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.GLMM(formula, df, family).fit(**kw)


def test_sig_keeps_trailing_digits():
    assert _sig(16.003, 5) == "16.003"  # was printed as "16"
    assert _sig(16.0, 5) == "16.000"
    assert _sig(0.87606, 5) == "0.87606"
    assert _sig(0.0, 4) == "0.000"
    assert _sig(float("nan"), 4) == "NA"
    assert _pval(1e-40) == "<2e-16" and _pval(0.4539) == "0.454"


def test_gaussian_ml_print(data):
    text = str(_fit("y ~ x + (1 | g)", data, "gaussian", method="ml"))
    assert text.splitlines()[0] == "Linear mixed model fit by maximum likelihood"
    resid = next(line for line in text.splitlines() if line.startswith(" Residual"))
    assert "nan" not in resid.lower()
    assert re.match(r" Residual\s+\d\.\d{5}\s+\d\.\d{4}$", resid), resid
    # lmer's table: a t value and no p-value (tests/test_ml_coefficient_table.py)
    assert "t value" in text and "Pr(>" not in text


def test_agq_print_names_quadrature(data):
    fit = _fit("yb ~ x + (1 | g)", data, "bernoulli", method="ml", nagq=25)
    first = str(fit).splitlines()[0]
    assert first == (
        "Generalized linear mixed model fit by maximum likelihood "
        "(Adaptive Gauss-Hermite Quadrature, nAGQ = 25)"
    )
    lap = _fit("yb ~ x + (1 | g)", data, "bernoulli", method="ml")
    assert str(lap).splitlines()[0].endswith("maximum likelihood (Laplace Approximation)")


def test_bayes_laplace_print_has_header_and_no_nan(data):
    fit = _fit("yb ~ x + (1 | g)", data, "bernoulli", method="laplace", draws=300, random_seed=1)
    text = str(fit)
    assert "nan" not in text.lower()
    header = "Fixed effects (posterior mean, sd, 95% equal-tailed interval):"
    assert header in text
    lines = text.splitlines()
    i = lines.index(header)
    assert lines[i + 1].split() == ["Estimate", "Est.Error", "l-95%", "CI", "u-95%", "CI"]
    x = lines[i + 3].split()
    assert x[0] == "x"
    draws = fit.draws_fixed()[:, 1]
    lo, hi = np.quantile(draws, [0.025, 0.975])
    assert float(x[3]) == pytest.approx(lo, abs=1e-4) and float(x[4]) == pytest.approx(hi, abs=1e-4)
    assert " sd(g: (Intercept)) " in text


def test_rhat_message_shows_why_it_is_above_threshold():
    (msg,) = health_messages({"max_rhat": 1.0104})
    assert msg.startswith("max R-hat is 1.0104 (> 1.01)")
