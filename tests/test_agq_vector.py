"""Adaptive Gauss-Hermite quadrature for one grouping factor with 2 or 3 correlated terms
(issue 14, item 7): the tensor-product rule of ``bayesglmm.engines.ml.agq.vector_deviance``.

Reference values of the peer package ``glmm`` (its AGQ covers one grouping factor with up
to 3 terms) are stored in ``tests/fixtures/agq_vector`` (provenance: README.md there); the
live comparison runs when ``glmm`` is installed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.engines.ml.agq import MAX_NAGQ_VECTOR, vector_deviance
from bayesglmm.engines.ml.laplace import AGQError, LaplaceObjective, fit_ml
from bayesglmm.engines.ml.pirls import saturated_loglik

FIX = Path(__file__).parent / "fixtures" / "agq_vector"
REF = json.loads((FIX / "glmm_references.json").read_text())["cases"]
EPI_RS = "y ~ offset(log(weeks)) + followup * group + (1 + followup | subject)"


def _design(formula: str, data: pd.DataFrame, family: str, link: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.GLMM(formula, data, family, link=link).design


def _fit(design, nagq: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_ml(design, nagq)


@pytest.fixture(scope="module")
def bern():
    return _design("y ~ x + (1 + x | g)", pd.read_csv(FIX / "bernoulli_rs.csv"), "bernoulli")


@pytest.fixture(scope="module")
def pois3():
    return _design("y ~ x + z + (1 + x + z | g)", pd.read_csv(FIX / "poisson_q3.csv"), "poisson")


@pytest.fixture(scope="module")
def epi():
    return _design(EPI_RS, bg.datasets.load("epilepsy"), "poisson")


@pytest.fixture(scope="module")
def epi_fits(epi):
    return {q: _fit(epi, q) for q in (1, 5, 9)}


def _agq(obj: LaplaceObjective, x: np.ndarray, nagq: int) -> tuple[float, np.ndarray]:
    theta, beta = obj.split(x)
    m = obj.mode_at(theta, beta)
    return vector_deviance(obj.st, obj.fam, obj.offset + obj.X @ beta, m, nagq)


# ---------------------------------------------------------------------------- Q = 1
def _data(name: str) -> pd.DataFrame:
    return bg.datasets.load(name) if name == "epilepsy" else pd.read_csv(FIX / f"{name}.csv")


@pytest.mark.parametrize(
    ("data", "formula", "family", "link"),
    [
        ("bernoulli_rs", "y ~ x + (1 + x | g)", "bernoulli", None),
        ("bernoulli_rs", "y ~ x + (1 + x || g)", "bernoulli", None),
        ("bernoulli_rs", "y ~ x + (1 + x | g)", "bernoulli", "probit"),
        ("poisson_q3", "y ~ x + z + (1 + x + z | g)", "poisson", None),
        ("epilepsy", EPI_RS, "poisson", None),
    ],
)
def test_one_node_rule_is_the_laplace_deviance(data, formula, family, link):
    design = _design(formula, _data(data), family, link)
    obj = LaplaceObjective(design)
    rng = np.random.default_rng(3)
    for scale in (0.3, 1.0, 1.7):
        theta = obj.layout.default() * scale
        off = obj.layout.lower_bounds() == -np.inf  # off-diagonal elements
        theta[off] = rng.uniform(-0.3, 0.3, off.sum())
        beta = rng.normal(scale=0.3, size=obj.k)
        lap = obj.evaluate(beta, theta, 1).deviance
        x = np.concatenate([theta, beta])
        dev, dev_g = _agq(obj, x, 1)
        np.testing.assert_allclose(dev, lap, rtol=1e-10)
        assert dev_g.shape == (design.blocks[0].n_levels,)
        # and the rule with more nodes is a different number (the path is really taken)
        assert abs(obj.deviance(x, 3) - lap) > 1e-3


@pytest.mark.parametrize("nagq", [1, 5])
def test_numba_and_numpy_node_sums_agree(bern, pois3, nagq, monkeypatch):
    """The Numba pass (canonical links) and the NumPy chunks (any family) give one answer."""
    from bayesglmm.engines.ml import scalar_laplace

    for design in (bern, pois3):
        obj = LaplaceObjective(design)
        x = np.concatenate([obj.layout.default() * 0.8, np.full(obj.k, 0.2)])
        dev, dev_g = _agq(obj, x, nagq)
        with monkeypatch.context() as mp:
            mp.setattr(scalar_laplace, "KIND_CODES", {})  # vector_deviance's NumPy path
            dev2, dev_g2 = _agq(obj, x, nagq)
        np.testing.assert_allclose(dev2, dev, rtol=1e-12)
        np.testing.assert_allclose(dev_g2, dev_g, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------- one level
def test_level_integral_converges_to_brute_force(bern):
    """Per-level integrals, q = 2, against a dense trapezoid grid (spectrally accurate for
    this smooth, Gaussian-tailed integrand): the relative error falls with nagq, below 1e-6
    at nagq = 15.  (At a larger covariance, SDs 2 and 1.6, the slowest of these levels
    needs nagq = 25 for 1e-6: AGQ converges more slowly the less Gaussian the posterior.)"""
    obj = LaplaceObjective(bern)
    Lam = np.array([[1.0, 0.0], [0.4, 0.7]])
    theta = obj.layout.from_factors([Lam])
    beta = np.array([-0.4, 0.9])
    x = np.concatenate([theta, beta])
    st = obj.st
    obj.mode_at(theta, beta)  # sets Lambda: the rows of A = Z Lambda
    eta_fixed = obj.offset + obj.X @ beta
    g = np.linspace(-12.0, 12.0, 1601)
    h = g[1] - g[0]
    U1, U2 = np.meshgrid(g, g, indexing="ij")
    dev_g = {q: _agq(obj, x, q)[1] for q in (1, 3, 5, 9, 15)}
    for level in range(3):
        rows = np.flatnonzero(st.lev1 == level)
        a, ef, y = st.a[rows], eta_fixed[rows], obj.fam.y[rows]
        logf = -0.5 * (U1**2 + U2**2) - np.log(2 * np.pi)
        for i in range(rows.size):
            eta = ef[i] + a[i, 0] * U1 + a[i, 1] * U2
            logf += y[i] * eta - np.logaddexp(0.0, eta)
        mx = logf.max()
        exact = mx + np.log(np.exp(logf - mx).sum() * h * h)  # log of the level's integral
        # relative error of the integral at each nagq
        errs = [abs(np.expm1(-0.5 * dev_g[q][level] - exact)) for q in (1, 3, 5, 9, 15)]
        assert errs[0] > 1e-3  # Laplace is visibly off for 6 binary rows
        assert errs[4] < 1e-6
        assert errs[4] < errs[3] < errs[2] < errs[1]


# ---------------------------------------------------------------------------- whole fits
def test_epilepsy_random_slope_converges_in_nagq(epi, epi_fits):
    ll = {q: f.loglik_normalized for q, f in epi_fits.items()}
    assert abs(ll[9] - ll[5]) < 0.1 * abs(ll[5] - ll[1])
    assert ll[5] > ll[1]
    sat = saturated_loglik(epi)
    for q, f in epi_fits.items():
        assert f.converged and f.nagq == q
        # glmer's nAGQ > 1 convention for `loglik` (deviance residuals)
        assert f.loglik == pytest.approx(ll[q] - (sat if q > 1 else 0.0), abs=1e-9)
        ref = REF["epilepsy_rs"]["fits"][str(q)]
        # at nagq = 5 the tensor-product rule's error depends on the orientation of its
        # nodes: glmm orients them on the raw columns of Z, we on the centred and scaled ones
        # (so the answer does not depend on followup's units): -924.45402 against glmm's
        # -924.45361, both 3e-3 from the integral (-924.45079 at nagq = 25); 3e-6 at 9
        tol = 1e-3 if q == 5 else 1e-4
        assert f.loglik_normalized == pytest.approx(ref["loglik"], abs=tol)
        np.testing.assert_allclose(f.beta, ref["beta"], atol=1e-3)


@pytest.mark.parametrize(("case", "nagq"), [("bernoulli_rs", 9), ("bernoulli_rs", 15)])
def test_bernoulli_random_slope_matches_glmm(bern, case, nagq):
    f = _fit(bern, nagq)
    ref = REF[case]["fits"][str(nagq)]
    lap = REF[case]["fits"]["1"]["loglik"]
    assert ref["loglik"] - lap > 1.0  # Laplace is off here: the comparison means something
    assert f.converged
    assert f.loglik_normalized >= ref["loglik"] - 1e-4
    assert f.loglik_normalized == pytest.approx(ref["loglik"], abs=1e-4)
    np.testing.assert_allclose(f.beta, ref["beta"], atol=1e-3)
    assert f.loglik == pytest.approx(f.loglik_normalized, abs=1e-12)  # Bernoulli: sat = 0


def test_three_terms_match_glmm(pois3):
    """q = 3 at nagq = 9 (729 nodes per level).  At nagq = 5 the two programs differ by
    2e-4: the tensor-product rule is not invariant to the rotation of the nodes, and glmm
    orients them differently; the difference shrinks with nagq (3e-5 at 9, 5e-6 at 11)."""
    f = _fit(pois3, 9)
    ref = REF["poisson_q3"]["fits"]["9"]
    assert f.loglik_normalized == pytest.approx(ref["loglik"], abs=1e-4)
    np.testing.assert_allclose(f.beta, ref["beta"], atol=1e-3)


def test_glmm_live(bern):
    glmm = pytest.importorskip("glmm", reason="the peer package `glmm` (test extra)")
    df = pd.read_csv(FIX / "bernoulli_rs.csv")
    data = {"y": df["y"].to_numpy(float), "x": df["x"].to_numpy(), "g": df["g"].astype(str)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = glmm.fit(
            {k: np.asarray(v) for k, v in data.items()}, "y ~ x + (1 + x | g)", "binomial", nagq=9
        )
    assert r.nagq == 9
    f = _fit(bern, 9)
    assert f.loglik_normalized >= r.loglik - 1e-4
    assert f.loglik_normalized == pytest.approx(r.loglik, abs=1e-4)
    np.testing.assert_allclose(f.beta, np.asarray(r.beta), atol=1e-3)


# ---------------------------------------------------------------------------- limits
def test_limits_raise_clear_errors(bern, pois3):
    with pytest.raises(AGQError, match=r"nagq <= 25 for 2 terms and nagq <= 11 for 3"):
        LaplaceObjective(bern).check_nagq(MAX_NAGQ_VECTOR[2] + 1)
    LaplaceObjective(bern).check_nagq(MAX_NAGQ_VECTOR[2])
    with pytest.raises(AGQError, match=r"12\^3 = 1728"):
        LaplaceObjective(pois3).check_nagq(12)
    df = pd.read_csv(FIX / "poisson_q3.csv")
    df["h"] = np.arange(len(df)) % 5
    crossed = _design("y ~ x + (1 | g) + (1 | h)", df, "poisson")
    with pytest.raises(AGQError, match="one grouping factor with at most 3"):
        fit_ml(crossed, 3)
    df["w"] = df["x"] * df["z"]
    four = _design("y ~ x + (1 + x + z + w | g)", df, "poisson")
    with pytest.raises(AGQError, match=r"1 block\(s\)"):
        LaplaceObjective(four).check_nagq(2)
