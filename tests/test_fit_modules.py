"""The fit's own modules (issue 16 split of ``fit/results.py``): one set of health
thresholds for the warnings and ``fit.diagnostics()``, and WAIC from the stored draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.fit.health import ESS_TARGET, health_messages, min_ess


@pytest.mark.parametrize("n_draws", [200, 1000, 4000])
def test_the_ess_warning_and_the_table_use_one_threshold(n_draws):
    thr = min_ess(n_draws)
    assert thr == min(ESS_TARGET, 0.1 * n_draws + 100)
    below = {"min_ess_bulk": thr - 1, "n_draws": n_draws}
    at = {"min_ess_bulk": thr, "n_draws": n_draws}
    assert any("minimum bulk ESS" in m for m in health_messages(below))
    assert not health_messages(at)


def test_waic_from_the_draws_matches_the_formula():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(12), 8)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.6 * x + rng.normal(0.0, 0.7, 12)[g]
    df = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": g.astype(str)})
    fit = bg.GLMM("y ~ x + (1 | g)", df, "poisson").fit("laplace", draws=400, random_seed=2)
    ll = fit.log_likelihood()
    lppd = np.log(np.mean(np.exp(ll), axis=0))
    p = ll.var(axis=0, ddof=1)
    w = fit.waic()
    assert w["elpd_waic"] == pytest.approx(np.sum(lppd - p), rel=1e-10)
    assert w["waic"] == pytest.approx(-2 * np.sum(lppd - p), rel=1e-10)
    assert w["p_waic"] == pytest.approx(p.sum(), rel=1e-10)
    with pytest.raises(bg.BayesGLMMError, match="`waic` needs posterior draws"):
        bg.GLMM("y ~ x + (1 | g)", df, "poisson").fit("ml").waic()
