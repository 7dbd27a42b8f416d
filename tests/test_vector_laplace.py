"""The fused Numba Laplace path for one vector-valued term (inference/vector_laplace.py)
against the NumPy reference path (blocked PIRLS + ``_blocked_gradient``).

Tolerances: deviance relative 1e-12 (abs 1e-10); gradient, modes and mode sensitivities
1e-8; whole fits: fixed effects and theta 1e-6, log-likelihood 1e-8.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesglmm.design.build import build_design
from bayesglmm.design.types import Design
from bayesglmm.engines.ml.laplace import LaplaceObjective, fit_ml
from bayesglmm.engines.ml.vector_laplace import VectorLaplace


def _data(family: str, n: int = 1500, groups: int = 60, seed: int = 11) -> pd.DataFrame:
    """Rows in random group order (the kernel sorts them), a slope and a second covariate."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=(n, 2))
    C = np.array([[0.5, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.1]])
    b = rng.multivariate_normal(np.zeros(3), C, groups)
    eta = -0.2 + 0.4 * x[:, 0] - 0.3 * x[:, 1] + b[g, 0] + b[g, 1] * x[:, 0] + b[g, 2] * x[:, 1]
    df = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "g": np.char.mod("g%d", g)})
    df["t"] = rng.integers(1, 6, n)
    df["w"] = rng.choice([0.5, 1.0, 2.0], n)
    df["expo"] = rng.uniform(0.5, 2.0, n)
    if family == "poisson":
        df["y"] = rng.poisson(df["expo"] * np.exp(eta))
    elif family == "binomial":
        df["y"] = rng.binomial(df["t"], 1 / (1 + np.exp(-eta)))
    else:
        df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return df


CASES = {
    # name: (formula, family, build_design keywords)
    "bernoulli_slope": ("y ~ x1 + x2 + (1 + x1 | g)", "bernoulli", {}),
    "poisson_offset": ("y ~ x1 + x2 + offset(log(expo)) + (1 + x1 | g)", "poisson", {}),
    "binomial_trials": ("cbind(y, t - y) ~ x1 + x2 + (1 + x1 | g)", "binomial", {}),
    "weighted_bernoulli": ("y ~ x1 + (1 + x1 | g)", "bernoulli", {"weights": "w"}),
    "three_terms": ("y ~ x1 + x2 + (1 + x1 + x2 | g)", "bernoulli", {}),
    "uncorrelated": ("y ~ x1 + x2 + (1 + x1 || g)", "poisson", {}),
}


def _design(case: str) -> Design:
    formula, family, kw = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(formula, _data(family), family, **kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_vector_equals_numpy_path(case):
    """Deviance, gradient, modes, conditional covariances and the mode sensitivities of the
    warm start agree with the NumPy path at several points, a zero slope SD among them."""
    design = _design(case)
    fast, ref = LaplaceObjective(design), LaplaceObjective(design)
    assert fast._vector is not None
    nt = fast.n_theta
    diag = fast.layout.lower_bounds() == 0.0
    rng = np.random.default_rng(3)
    beta0 = np.linalg.lstsq(design.X, np.zeros(design.n), rcond=None)[0] + 0.1
    points = [fast.layout.default() * 0.8]
    points += [np.where(diag, rng.uniform(0.2, 1.5, nt), rng.normal(0, 0.3, nt)) for _ in range(2)]
    zero_slope = fast.layout.default() * 0.7
    zero_slope[np.flatnonzero(diag)[-1]] = 0.0  # a Cholesky diagonal at its bound
    points.append(zero_slope)
    for th in points:
        for b in (beta0, beta0 - 0.15):
            ev = fast.evaluate(b, th, 1, gradient=True)
            evr = ref.evaluate(b, th, 1, gradient=True, keep_mode=True)
            assert ev.mode is None and evr.mode is not None
            assert ev.deviance == pytest.approx(evr.deviance, rel=1e-12, abs=1e-10)
            np.testing.assert_allclose(ev.gradient, evr.gradient, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(ev.u, evr.u, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(ev.modes[0], evr.modes[0], rtol=1e-8, atol=1e-8)
            for s_fast, s_ref in zip(fast._last[3:], ref._last[3:], strict=True):
                np.testing.assert_allclose(s_fast, s_ref, rtol=1e-8, atol=1e-8)
            # without the gradient: the same deviance and modes
            ev0 = fast.evaluate(b, th, 1)
            assert ev0.deviance == pytest.approx(evr.deviance, rel=1e-12, abs=1e-10)
            np.testing.assert_allclose(ev0.u, evr.u, rtol=1e-8, atol=1e-8)
        # conditional covariances Lambda M^-1 Lambda' (the fused path's K per group)
        m_fast, cv_fast = fast.conditional(beta0, th)
        ref_vector, ref._vector = ref._vector, None
        m_ref, cv_ref = ref.conditional(beta0, th)
        ref._vector = ref_vector
        np.testing.assert_allclose(m_fast[0], m_ref[0], rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(cv_fast[0], cv_ref[0], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("case", ["bernoulli_slope", "poisson_offset", "three_terms"])
def test_fused_vector_gradient_matches_differences(case):
    design = _design(case)
    obj = LaplaceObjective(design)
    x = np.concatenate([obj.layout.default() * 0.6 + 0.05, np.full(obj.k, 0.1)])
    _, g = obj.deviance_grad(x)
    np.testing.assert_allclose(g, obj._fd_gradient(x, 1), rtol=1e-5, atol=1e-4)


def _fit(design: Design):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_ml(design)


@pytest.mark.parametrize("case", ["bernoulli_slope", "poisson_offset", "uncorrelated"])
def test_fused_vector_fit_equals_numpy_fit(case, monkeypatch):
    """A whole Laplace fit on the fused path matches one on the NumPy path."""
    design = _design(case)
    fast = _fit(design)
    real_init = LaplaceObjective.__init__

    def numpy_only(self, *a, **k):
        real_init(self, *a, **k)
        self._vector = None

    monkeypatch.setattr(LaplaceObjective, "__init__", numpy_only)
    slow = _fit(design)
    np.testing.assert_allclose(fast.beta, slow.beta, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=0, atol=1e-6)
    assert fast.loglik == pytest.approx(slow.loglik, abs=1e-8)
    np.testing.assert_allclose(fast.vcov_beta, slow.vcov_beta, rtol=1e-4)
    np.testing.assert_allclose(fast.cond_var[0], slow.cond_var[0], rtol=1e-5, atol=1e-8)


def test_fused_vector_only_for_one_vector_block_and_canonical_links():
    df = _data("bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probit = build_design("y ~ x1 + (1 + x1 | g)", df, "bernoulli", link="probit")
        scalar = build_design("y ~ x1 + (1 | g)", df, "bernoulli")
        two = build_design(
            "y ~ x1 + (1 + x1 | g) + (1 | x2b)", df.assign(x2b=df.x2 > 0), "bernoulli"
        )
    for d in (probit, scalar, two):
        assert LaplaceObjective(d)._vector is None
    assert isinstance(LaplaceObjective(_design("bernoulli_slope"))._vector, VectorLaplace)
