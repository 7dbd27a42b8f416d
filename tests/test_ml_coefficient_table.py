"""The ML fixed-effect table is labelled as lme4 labels it (issue 16).

lme4's ``summary.merMod``: a linear mixed model (``lmer``) gets ``t value`` and no p-value
(its t reference distribution needs denominator degrees of freedom; lmerTest adds them); a
GLMM (``glmer``) gets ``z value`` and ``Pr(>|z|)``, or ``t value`` and ``Pr(>|z|)`` when the
family has an estimated scale (Gamma, a gaussian with a non-identity link); ``glmer.nb``
shows ``z value``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesglmm as bg


def _data(seed: int = 11, n: int = 300, n_groups: int = 15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=n)
    b = rng.normal(0.0, 0.4, n_groups)
    eta = 1.0 + 0.3 * x + b[g]
    return pd.DataFrame(
        {
            "yg": eta + rng.normal(0.0, 0.5, n),
            "yp": rng.poisson(np.exp(eta)),
            "ypos": rng.gamma(4.0, np.exp(eta) / 4.0),
            "x": x,
            "g": [f"g{i}" for i in g],
        }
    )


DF = _data()
LMER = ["Estimate", "Std. Error", "t value"]
GLMER_Z = ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
GLMER_T = ["Estimate", "Std. Error", "t value", "Pr(>|z|)"]


def _header(fit: bg.GLMMFit) -> str:
    lines = fit.format().splitlines()
    return lines[lines.index("Fixed effects:") + 1]


@pytest.mark.parametrize("formula", ["yg ~ x + (1 | g)", "yg ~ x"], ids=["lmm", "lm"])
def test_gaussian_ml_is_lmers_table_t_value_and_no_p_value(formula: str) -> None:
    fit = bg.GLMM(formula, DF, family="gaussian").fit(method="ml")
    tab = fit.summary()
    assert list(tab.columns) == LMER
    np.testing.assert_allclose(tab["t value"], tab["Estimate"] / tab["Std. Error"], rtol=1e-12)
    assert _header(fit).split() == ["Estimate", "Std.", "Error", "t", "value"]
    assert "Pr(>" not in fit.format()


def test_poisson_ml_is_glmers_table_z_value_and_its_p_value() -> None:
    fit = bg.GLMM("yp ~ x + (1 | g)", DF, family="poisson").fit(method="ml")
    tab = fit.summary()
    assert list(tab.columns) == GLMER_Z
    p = special.erfc(np.abs(tab["z value"]) / np.sqrt(2.0))
    np.testing.assert_allclose(tab["Pr(>|z|)"], p, rtol=1e-12)
    assert _header(fit).split()[-3:] == ["z", "value", "Pr(>|z|)"]


@pytest.mark.parametrize(
    ("column", "family", "link"),
    [("ypos", "gamma", "log"), ("yg", "gaussian", "log")],
    ids=["gamma", "gaussian-log"],
)
def test_a_glmm_with_an_estimated_scale_shows_t_value_and_pr_z(
    column: str, family: str, link: str
) -> None:
    """glmer's Gamma (and a gaussian with a log link, a GLMM to lme4): ``t value`` and the
    normal p-value ``Pr(>|z|)``, as lme4 prints them."""
    fit = bg.GLMM(f"{column} ~ x + (1 | g)", DF, family=family, link=link).fit(method="ml")
    assert list(fit.summary().columns) == GLMER_T
    assert _header(fit).split()[-3:] == ["t", "value", "Pr(>|z|)"]
