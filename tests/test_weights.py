"""Prior weights (``weights=``) and the ``offset=`` argument, in every engine (issue 15).

lme4's meaning, checked here:

* bernoulli, binomial (``cbind``) and Poisson: case weights, so integer weights ``k_i``
  give the model of the data with row ``i`` repeated ``k_i`` times: the same ML objective
  (to 1e-10), the same fit, the same Bayesian log density (priors and centring use the
  weighted rows);
* binomial with a proportion response: ``weights`` are the numbers of trials, the model of
  ``cbind(successes, failures)``;
* gaussian: precision weights (residual variance ``sigma^2 / w``); weights 2 everywhere
  give the unweighted fit with ``sigma`` times sqrt(2) and the same logLik, fixed effects
  and random-effect variances (lme4's ``lmer`` does the same: ``-sum(log w)`` in its
  deviance);
* zero weights: the row leaves the likelihood (same fit as without the row) but keeps its
  fitted value;
* the ``glmm`` package (lme4-grade, accepts ``weights`` and ``offset`` arrays) is the ML
  reference.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.engines.bayes.log_density import logp_and_grad
from bayesglmm.engines.ml.laplace import LaplaceObjective

glmm = pytest.importorskip("glmm")


def _data(n_groups: int = 12, per: int = 10, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_groups * per
    df = pd.DataFrame(
        {"g": np.repeat([f"g{i:02d}" for i in range(n_groups)], per), "x": rng.normal(size=n)}
    )
    u = np.repeat(rng.normal(size=n_groups) * 0.7, per)
    eta = 0.2 + 0.5 * df["x"].to_numpy() + u
    df["h"] = rng.integers(0, 4, size=n).astype(str)  # a crossed factor
    df["yp"] = rng.poisson(np.exp(eta))
    df["yb"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df["yg"] = eta + rng.normal(size=n)
    df["t"] = rng.integers(1, 6, size=n).astype(float)
    df["s"] = rng.binomial(df["t"].astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    df["p"] = df["s"] / df["t"]
    df["k"] = rng.integers(1, 4, size=n).astype(float)  # integer case weights 1..3
    df["wc"] = rng.uniform(0.5, 2.0, size=n)  # non-integer weights
    df["lo"] = rng.uniform(-0.5, 0.5, size=n)  # an offset
    return df


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return _data()


def _dup(df: pd.DataFrame, col: str = "k") -> pd.DataFrame:
    return df.loc[df.index.repeat(df[col].astype(int))].reset_index(drop=True)


def _quiet(fn, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        return fn(*a, **kw)


# --------------------------------------------------------------------------- ML
ML_CASES = [
    ("yp ~ x + (1 | g)", "poisson", 1),
    ("yp ~ x + (1 | g)", "poisson", 9),
    ("yb ~ x + (1 | g)", "bernoulli", 1),
    ("yb ~ x + (1 | g)", "bernoulli", 9),
    ("yp ~ x + (1 + x | g)", "poisson", 1),
    ("yb ~ x + (1 + x | g)", "bernoulli", 5),
    ("yp ~ x + (1 | g) + (1 | h)", "poisson", 1),
    ("cbind(s, t - s) ~ x + (1 | g)", "binomial", 1),
    ("yb ~ x + (1 | g)", ("bernoulli", "probit"), 1),
]


@pytest.mark.parametrize(("formula", "family", "nagq"), ML_CASES)
def test_ml_integer_weights_equal_duplicated_rows(df, formula, family, nagq):
    """Weights k_i == row i repeated k_i times: the ML objective agrees to 1e-10 at any
    parameter vector (Laplace and AGQ, scalar, vector and crossed structures, a
    non-canonical link), so the fits agree to the optimizer's tolerance."""
    fam, link = family if isinstance(family, tuple) else (family, None)
    mw = _quiet(bg.GLMM, formula, df, fam, link=link, weights="k")
    md = _quiet(bg.GLMM, formula, _dup(df), fam, link=link)
    ow, od = LaplaceObjective(mw.design), LaplaceObjective(md.design)
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = np.abs(rng.normal(size=ow.n_theta)) + 0.2
        if ow.n_theta == 3:
            theta[1] = 0.1  # the off-diagonal of a 2 x 2 factor
        params = np.concatenate([theta, rng.normal(size=ow.k) * 0.3])
        a, b = ow.deviance(params, nagq), od.deviance(params, nagq)
        assert a == pytest.approx(b, rel=1e-10, abs=1e-9)
    fw = _quiet(mw.fit, "ml", nagq=nagq)
    fd = _quiet(md.fit, "ml", nagq=nagq)
    assert fw.ml.loglik == pytest.approx(fd.ml.loglik, abs=1e-6)
    np.testing.assert_allclose(fw.ml.beta, fd.ml.beta, atol=1e-5)  # optimizer tolerance
    np.testing.assert_allclose(fw.ml.theta, fd.ml.theta, atol=1e-5)
    assert fw.design.n == len(df) and fw.fitted().shape == (len(df),)


def test_pql_weights_equal_duplicated_rows_with_fixed_dispersion(df):
    """PQL multiplies the working weights by the prior weights (glmmPQL).  With phi fixed
    at 1 the weighted working LMM is the duplicated one; with phi estimated it is not
    (phi's denominator counts rows, as glmmPQL's does)."""
    mw = _quiet(bg.GLMM, "yp ~ x + (1 | g)", df, "poisson", weights="k")
    md = _quiet(bg.GLMM, "yp ~ x + (1 | g)", _dup(df), "poisson")
    fw = _quiet(mw.fit, "pql", dispersion="fixed")
    fd = _quiet(md.fit, "pql", dispersion="fixed")
    np.testing.assert_allclose(fw.ml.beta, fd.ml.beta, atol=1e-5)
    np.testing.assert_allclose(fw.ml.theta, fd.ml.theta, atol=1e-5)
    unweighted = _quiet(bg.GLMM, "yp ~ x + (1 | g)", df, "poisson").fit("pql", dispersion="fixed")
    assert np.max(np.abs(fw.ml.beta - unweighted.ml.beta)) > 1e-3  # the weights do act


@pytest.mark.parametrize(
    ("formula", "family", "peer_family", "w"),
    [
        ("yp ~ x + (1 | g)", "poisson", "poisson", "wc"),
        ("yb ~ x + (1 | g)", "bernoulli", "binomial", "k"),
        ("p ~ x + (1 | g)", "binomial", "binomial", "t"),
        ("yg ~ x + (1 | g)", "gaussian", "gaussian", "wc"),
    ],
    ids=["poisson", "bernoulli", "binomial-proportion", "gaussian"],
)
def test_ml_matches_glmm_with_weights_and_offset_arrays(df, formula, family, peer_family, w):
    """glmm 0.6.2 with ``weights=`` and ``offset=`` arrays is the reference (lme4's
    meaning: binomial proportion with weights = trials; gaussian by ML)."""
    ours = _quiet(bg.GLMM, formula, df, family, weights=w, offset="lo").fit("ml")
    kw = {"reml": False} if family == "gaussian" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = glmm.fit(
            df, formula, peer_family, weights=df[w].to_numpy(), offset=df["lo"].to_numpy(), **kw
        )
    assert ours.ml.loglik == pytest.approx(peer.loglik, abs=1e-6)
    np.testing.assert_allclose(ours.ml.beta, peer.beta, atol=2e-5)
    assert float(ours.ml.covariances[0][0, 0]) == pytest.approx(float(peer.tau2[0]), rel=1e-4)
    if family == "gaussian":
        assert ours.ml.sigma**2 == pytest.approx(peer.dispersion, rel=1e-4)


def test_gaussian_weights_are_precision_weights(df):
    """lmer's weights scale the residual variance: weights 2 everywhere give the same
    logLik, fixed effects and random-effect variance, and sigma times sqrt(2)."""
    u = bg.GLMM("yg ~ x + (1 | g)", df, "gaussian").fit("ml")
    w = bg.GLMM("yg ~ x + (1 | g)", df, "gaussian", weights=np.full(len(df), 2.0)).fit("ml")
    assert w.ml.loglik == pytest.approx(u.ml.loglik, abs=1e-8)
    np.testing.assert_allclose(w.ml.beta, u.ml.beta, atol=1e-6)
    np.testing.assert_allclose(w.ml.covariances[0], u.ml.covariances[0], rtol=1e-5)
    assert w.ml.sigma == pytest.approx(np.sqrt(2.0) * u.ml.sigma, rel=1e-6)


def test_binomial_proportion_with_weights_is_cbind(df):
    """``p ~ ...`` with ``weights = trials`` is ``cbind(s, t - s) ~ ...`` (glmer)."""
    a = bg.GLMM("p ~ x + (1 | g)", df, "binomial", weights="t")
    b = bg.GLMM("cbind(s, t - s) ~ x + (1 | g)", df, "binomial")
    np.testing.assert_array_equal(a.design.y, b.design.y)
    np.testing.assert_array_equal(a.design.trials, b.design.trials)
    assert a.design.weights is None
    fa, fb = a.fit("ml"), b.fit("ml")
    assert fa.ml.loglik == fb.ml.loglik
    np.testing.assert_array_equal(fa.ml.beta, fb.ml.beta)


@pytest.mark.parametrize(
    ("formula", "family"),
    [
        ("yp ~ x + (1 | g)", "poisson"),
        ("yb ~ x + (1 | g)", "bernoulli"),
        ("p ~ x + (1 | g)", "binomial"),
        ("yg ~ x + (1 | g)", "gaussian"),
    ],
)
def test_zero_weights_leave_the_likelihood(df, formula, family):
    """A zero weight: the fit equals the fit without the row; the row keeps its fitted
    value (as lme4, which keeps zero-weight rows in the frame)."""
    d = df.copy()
    w = d["t"].to_numpy(copy=True) if family == "binomial" else np.ones(len(d))
    w[::7] = 0.0
    full = _quiet(bg.GLMM, formula, d, family, weights=w).fit("ml")
    keep = w > 0
    sub = _quiet(bg.GLMM, formula, d[keep].reset_index(drop=True), family, weights=w[keep])
    fs = sub.fit("ml")
    assert full.ml.loglik == pytest.approx(fs.ml.loglik, abs=1e-6)
    np.testing.assert_allclose(full.ml.beta, fs.ml.beta, atol=1e-5)
    fitted = full.fitted()
    assert fitted.shape == (len(d),) and np.isfinite(fitted).all()
    assert np.isfinite(full.residuals()).all()


# --------------------------------------------------------------------------- offset=
def test_offset_argument_equals_formula_offset(df):
    """``offset="lo"`` == ``+ offset(lo)``; both together add up; predict(newdata) reads
    the offset column, and one row predicts as inside the full data."""
    a = bg.GLMM("yp ~ x + (1 | g)", df, "poisson", offset="lo")
    b = bg.GLMM("yp ~ x + offset(lo) + (1 | g)", df, "poisson")
    arr = bg.GLMM("yp ~ x + (1 | g)", df, "poisson", offset=df["lo"].to_numpy())
    np.testing.assert_array_equal(a.design.offset, b.design.offset)
    np.testing.assert_array_equal(arr.design.offset, b.design.offset)
    both = bg.GLMM("yp ~ x + offset(lo) + (1 | g)", df, "poisson", offset="x")
    np.testing.assert_allclose(both.design.offset, df["lo"] + df["x"], atol=1e-15)
    fa, fb = a.fit("ml"), b.fit("ml")
    assert fa.ml.loglik == fb.ml.loglik
    full = fa.predict()
    for k in (0, 17, 63):
        one = fa.predict(newdata=df.iloc[[k]])
        assert np.asarray(one).ravel()[0] == pytest.approx(np.asarray(full).ravel()[k], rel=1e-12)
    shifted = fa.predict(newdata=df.iloc[[5]].assign(lo=df["lo"].iloc[5] + 1.0))
    assert np.asarray(shifted).ravel()[0] == pytest.approx(
        np.e * np.asarray(full).ravel()[5], rel=1e-12
    )


# --------------------------------------------------------------------------- Bayesian
@pytest.mark.parametrize(
    ("formula", "family"),
    [("yp ~ x + (1 | g)", "poisson"), ("yb ~ x + (1 + x | g)", "bernoulli")],
)
def test_bayes_log_density_weights_equal_duplicated_rows(df, formula, family):
    """The PyMC model (weighted CustomDist; ADVI and PyMC's NUTS sample it) and the fused
    NUTS kernel give the same log density and gradient for weights k_i as for the
    duplicated data, at any point: default priors, slope scales and the centring of the
    intercept use the weighted rows."""
    mw = _quiet(bg.GLMM, formula, df, family, weights="k")
    md = _quiet(bg.GLMM, formula, _dup(df), family)
    pw, pd_ = mw.build(), md.build()
    lw, ld = pw.compile_logp(), pd_.compile_logp()
    gw, gd = pw.compile_dlogp(), pd_.compile_dlogp()
    kw_, kd = mw.kernel_layout(), md.kernel_layout()
    rng = np.random.default_rng(1)
    for _ in range(3):
        pt = {k: v + rng.normal(size=np.shape(v)) * 0.3 for k, v in pw.initial_point().items()}
        assert lw(pt) == pytest.approx(ld(pt), rel=1e-12)
        np.testing.assert_allclose(gw(pt), gd(pt), rtol=1e-10, atol=1e-10)
        x = np.concatenate([np.ravel(pt[name]) for name in kw_.names])
        a = logp_and_grad(x, *kw_.args(y=np.ascontiguousarray(mw.design.y)))
        b = logp_and_grad(x, *kd.args(y=np.ascontiguousarray(md.design.y)))
        assert a[0] == pytest.approx(b[0], rel=1e-12)
        assert a[0] == pytest.approx(lw(pt), abs=1e-6)  # kernel == PyMC
        np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(a[1], gw(pt), rtol=1e-8, atol=1e-8)


def test_kernel_gaussian_precision_weights_match_pymc(df):
    """Gaussian precision weights (with zeros) in the kernel equal the PyMC model's."""
    w = df["wc"].to_numpy().copy()
    w[::9] = 0.0
    m = bg.GLMM("yg ~ x + (1 | g)", df, "gaussian", weights=w)
    model, layout = m.build(), m.kernel_layout()
    f, g = model.compile_logp(), model.compile_dlogp()
    rng = np.random.default_rng(2)
    pt = {k: v + rng.normal(size=np.shape(v)) * 0.3 for k, v in model.initial_point().items()}
    x = np.concatenate([np.ravel(pt[name]) for name in layout.names])
    lp, grad = logp_and_grad(x, *layout.args())
    assert lp == pytest.approx(f(pt), abs=1e-6)
    np.testing.assert_allclose(grad, g(pt), rtol=1e-8, atol=1e-8)


def test_bayes_laplace_weights_equal_duplicated_rows(df):
    mw = _quiet(bg.GLMM, "yp ~ x + (1 | g)", df, "poisson", weights="k")
    md = _quiet(bg.GLMM, "yp ~ x + (1 | g)", _dup(df), "poisson")
    fw = mw.fit("laplace", draws=1000, random_seed=1)
    fd = md.fit("laplace", draws=1000, random_seed=1)
    np.testing.assert_allclose(fw.fixef(), fd.fixef(), atol=1e-4)
    np.testing.assert_allclose(
        fw.varcorr()["variance"].to_numpy(dtype=float),
        fd.varcorr()["variance"].to_numpy(dtype=float),
        rtol=1e-3,
    )


def test_nuts_kernel_weights_equal_duplicated_rows_within_mc_error(df):
    """Same posterior, sampled: the weighted and the duplicated model's NUTS means agree
    within 4 Monte Carlo SEs (the draws are not bit-identical: sums in another order)."""
    mw = _quiet(bg.GLMM, "yp ~ x + (1 | g)", df, "poisson", weights="k")
    md = _quiet(bg.GLMM, "yp ~ x + (1 | g)", _dup(df), "poisson")
    kw = {"draws": 500, "tune": 500, "chains": 2, "random_seed": 7}
    fw, fd = mw.fit("nuts", **kw), md.fit("nuts", **kw)
    assert fw.options["sampler"] == "kernel"
    sw = fw.summary().loc[["(Intercept)", "x"]]
    sd = fd.summary().loc[["(Intercept)", "x"]]
    se = np.sqrt(sw["mcse_mean"] ** 2 + sd["mcse_mean"] ** 2)
    assert (np.abs(sw["mean"] - sd["mean"]) < 4 * se).all()
    assert fw.log_likelihood().shape == (1000, len(df))
    assert np.isfinite(float(fw.loo().elpd))


def test_pointwise_loglik_is_the_weighted_contribution(df):
    """``log_likelihood()`` rows are ``w_i ll_i`` (gaussian: ``log N(y | mu, s^2 / w)``),
    0 for a zero weight, and LOO leaves zero-weight rows out."""
    w = df["k"].to_numpy().copy()
    w[:5] = 0.0
    for formula, family in (("yp ~ x + (1 | g)", "poisson"), ("yg ~ x + (1 | g)", "gaussian")):
        mw = _quiet(bg.GLMM, formula, df, family, weights=w)
        mu = _quiet(bg.GLMM, formula, df, family)
        if family == "gaussian":  # (the Bayesian Laplace engine is for GLMMs)
            fw = _quiet(mw.fit, "nuts", draws=100, tune=100, chains=1, random_seed=3)
        else:
            fw = mw.fit("laplace", draws=200, random_seed=3)
        llw = fw.log_likelihood()
        assert (llw[:, :5] == 0.0).all()
        # the same draws under the unweighted design: the ratio is the weight (case weights)
        fu = bg.GLMMFit(mu.design, fw.priors, "laplace", idata=fw.idata, model=mu)
        llu = fu.log_likelihood()
        if family == "poisson":
            np.testing.assert_allclose(llw[:, 5:], w[None, 5:] * llu[:, 5:], rtol=1e-12)
        else:
            s = fw.draws_sigma()[:, None]
            r2 = (llu[:, 5:] + np.log(s) + 0.5 * np.log(2 * np.pi)) * -2 * s**2
            expect = -0.5 * w[None, 5:] * r2 / s**2 - np.log(s / np.sqrt(w[None, 5:]))
            expect -= 0.5 * np.log(2 * np.pi)
            np.testing.assert_allclose(llw[:, 5:], expect, rtol=1e-9)
        loo = fw.loo()
        assert np.asarray(loo.elpd_i).size == len(df) - 5


@pytest.mark.slow
def test_advi_weights_equal_duplicated_rows(df):
    """ADVI optimizes the same objective: identical with the same seed."""
    mw = _quiet(bg.GLMM, "yp ~ x + (1 | g)", df, "poisson", weights="k")
    md = _quiet(bg.GLMM, "yp ~ x + (1 | g)", _dup(df), "poisson")
    fw = _quiet(mw.fit, "advi", n=1500, random_seed=1)
    fd = _quiet(md.fit, "advi", n=1500, random_seed=1)
    np.testing.assert_allclose(fw.fixef(), fd.fixef(), atol=1e-6)


# --------------------------------------------------------------------------- io, spec, CLI
@pytest.mark.parametrize("as_array", [False, True], ids=["columns", "arrays"])
def test_saved_fit_restores_weights_and_offset(df, tmp_path, as_array):
    d = df.copy()
    d.loc[4, "k"] = np.nan  # a dropped row: the saved arrays hold the fitted rows only
    kw = (
        {"weights": d["k"].to_numpy(), "offset": d["lo"].to_numpy()}
        if as_array
        else {"weights": "k", "offset": "lo"}
    )
    fit = _quiet(bg.GLMM, "yp ~ x + (1 | g)", d, "poisson", **kw).fit("ml")
    fit.save(tmp_path / "fit")
    back = bg.load_fit(tmp_path / "fit")
    np.testing.assert_array_equal(back.design.weights, fit.design.weights)
    np.testing.assert_array_equal(back.design.offset, fit.design.offset)
    assert back.ml.loglik == fit.ml.loglik
    meta = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert (meta["weights"], meta["offset"]) == ((None, None) if as_array else ("k", "lo"))
    assert "weights" in meta["design"]["sha256"]


def test_spec_and_cli_weights(df, tmp_path):
    from bayesglmm.cli import main
    from bayesglmm.spec import ModelSpec

    csv = tmp_path / "w.csv"
    df.to_csv(csv, index=False)
    spec = ModelSpec.from_dict(
        {
            "name": "w",
            "formula": "yp ~ x + (1 | g)",
            "family": "poisson",
            "weights": "k",
            "offset": "lo",
            "methods": ["ml"],
            "data": {"csv": str(csv)},
        }
    )
    m = spec.model()
    np.testing.assert_array_equal(m.design.weights, df["k"].to_numpy())
    assert spec.to_dict()["weights"] == "k" and spec.to_dict()["offset"] == "lo"
    ref = bg.GLMM("yp ~ x + (1 | g)", df, "poisson", weights="k", offset="lo").fit("ml")
    args = ["fit", "--formula", "yp ~ x + (1 | g)", "--data", str(csv), "--family", "poisson"]
    args += ["--weights", "k", "--offset", "lo", "--methods", "ml", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    back = bg.load_fit(tmp_path / "o" / "fit_ml")
    assert back.ml.loglik == pytest.approx(ref.ml.loglik, abs=1e-9)
