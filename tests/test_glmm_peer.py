"""Peer check against the `glmm` package (Rust core): Laplace and AGQ-25 on toenail and on
a seeded simulated Bernoulli random-intercept data set (1e4 rows, 200 groups).

Both implement lme4's Laplace/AGQ deviance; they must agree on the optimum: fixed effects
within 1e-3 and log-likelihood within 0.01.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesglmm import datasets
from bayesglmm.design.build import build_design
from bayesglmm.design.types import Design, RandomBlock
from bayesglmm.engines.ml.laplace import fit_ml
from bayesglmm.families import get_family

glmm = pytest.importorskip("glmm", reason="the peer package `glmm` (test extra) is not installed")


def _toenail() -> tuple[Design, dict, str]:
    df = datasets.load("toenail")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design = build_design("outcome ~ treatment * time + (1 | patientID)", df, "bernoulli")
    data = {
        "y": (df["outcome"] == "moderate or severe").to_numpy(dtype=float),
        "trt": (df["treatment"] == "terbinafine").to_numpy(dtype=float),
        "time": df["time"].to_numpy(dtype=float),
        "pid": df["patientID"].astype(str).to_numpy(),
    }
    return design, data, "y ~ trt * time + (1 | pid)"


def _simulated() -> tuple[Design, dict, str]:
    rng = np.random.default_rng(20240611)
    n, groups = 10_000, 200
    g = rng.integers(0, groups, n)
    x = rng.standard_normal((n, 3))
    eta = -0.4 + x @ np.array([0.6, -0.3, 0.15]) + 0.9 * rng.standard_normal(groups)[g]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    block = RandomBlock(
        "g", ("(Intercept)",), np.ones((n, 1)), g.astype(np.int64), tuple(map(str, range(groups)))
    )
    X = np.column_stack([np.ones(n), x])
    design = Design(
        y,
        None,
        np.zeros(n),
        X,
        ("(Intercept)", "x1", "x2", "x3"),
        (block,),
        get_family("bernoulli"),
    )
    data = {"y": y, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "g": np.char.mod("g%d", g)}
    return design, data, "y ~ x1 + x2 + x3 + (1 | g)"


@pytest.mark.parametrize("nagq", [1, 25])
@pytest.mark.parametrize("make", [_toenail, _simulated], ids=["toenail", "simulated"])
def test_agrees_with_glmm(make, nagq):
    design, data, formula = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fit_ml(design, nagq)
        peer = glmm.fit(data, formula, "binomial", nagq=nagq)
    np.testing.assert_allclose(ours.beta, peer.beta, atol=1e-3)
    assert abs(ours.loglik - peer.loglik) < 0.01
    assert abs(ours.covariances[0][0, 0] - peer.varcorr[0][0]) < 1e-2
