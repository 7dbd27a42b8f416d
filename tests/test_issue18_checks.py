"""Issue 18 remaining bullets: an ML prediction for an unseen group is reproducible by
default."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import bayesglmm as bg


def test_ml_predict_for_an_unseen_group_is_seeded_by_default():
    # the issue: two identical calls gave 4.656 and 4.495 (an unseeded random-effect draw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson").fit("ml")
    new = pd.DataFrame({"NAP": [0.0, 0.0], "Beach": [99, 99]})
    # default for ML: the typical group (random effect 0), exactly exp(intercept)
    np.testing.assert_allclose(fit.predict(new), np.exp(fit.fixef()["(Intercept)"]))
    a = fit.predict(new, new_levels="sample")
    b = fit.predict(new, new_levels="sample")
    np.testing.assert_array_equal(a, b)  # seeded by default: two calls agree
    assert a[0] == a[1] and a[0] != np.exp(fit.fixef()["(Intercept)"])  # a drawn effect
    c = fit.predict(new, new_levels="sample", random_seed=123)
    assert c[0] != a[0]  # another seed, another draw
