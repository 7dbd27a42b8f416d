"""The NB1 negative binomial family (log link; glmmTMB's ``nbinom1``): ``Var = mu (1 + phi)``.

No GLMM peer is installed (``glmm`` 0.6.2 has NB2 only; R and glmmTMB are not available), so:
the log-likelihood and its derivatives against scipy / PyMC / finite differences; the GLM
against statsmodels' ``NegativeBinomial(loglike_method="nb1")``; the Laplace ML against an
independent Laplace written here (per-group Newton on scipy's ``nbinom.logpmf``, optimised
by scipy) and against the simulation truth; NUTS against ML on simulated data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import bayesglmm as bg
from bayesglmm.families import get_family
from bayesglmm.interpret.ppc import fitted

TRUTH = {"b0": 1.0, "b1": 0.5, "sd_g": 0.6, "sd_h": 0.4, "phi": 1.5}


def simulate(
    n: int, ng: int, nh: int = 0, seed: int = 1, phi: float = TRUTH["phi"]
) -> pd.DataFrame:
    """Seeded NB1 counts: ``y ~ NB1(exp(b0 + b1 x + g + h), phi)``."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, ng, n)
    x = rng.normal(size=n)
    eta = TRUTH["b0"] + TRUTH["b1"] * x + rng.normal(0, TRUTH["sd_g"], ng)[g]
    df = pd.DataFrame({"x": x, "g": [f"g{i}" for i in g]})
    if nh:
        h = rng.integers(0, nh, n)
        eta = eta + rng.normal(0, TRUTH["sd_h"], nh)[h]
        df["h"] = [f"h{i}" for i in h]
    mu = np.exp(eta)
    df["y"] = rng.negative_binomial(mu / phi, 1 / (1 + phi))
    return df


@pytest.fixture(scope="module")
def ml_fit() -> bg.GLMMFit:
    return bg.GLMM("y ~ x + (1|g)", simulate(1500, 30, seed=5), family="nbinom1").fit(method="ml")


# ---------------------------------------------------------------------------- the family
def test_nb1_aliases_resolve_to_one_family() -> None:
    for name in ("negativebinomial1", "nbinom1", "NB1", "negbinomial1", "negative_binomial1"):
        fam = get_family(name)
        assert (fam.name, fam.link) == ("negativebinomial1", "log")
        assert [d.name for d in fam.dispersion] == ["phi"]
    assert get_family("nbinom2").name == "negativebinomial"  # NB2 unchanged


def test_nb1_loglik_score_and_information_are_the_nbinom1_ones() -> None:
    fam = get_family("nbinom1")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 30, 200).astype(float)
    eta = rng.normal(1.0, 1.5, 200)
    phi = 2.3
    mu = np.exp(eta)
    ll = fam.loglik(y, eta, None, phi)
    np.testing.assert_allclose(ll, stats.nbinom.logpmf(y, mu / phi, 1 / (1 + phi)), rtol=1e-12)
    import pymc as pm
    import pytensor.tensor as pt

    dist = fam.spec.pymc_row_dist(fam.link_fn, pt.as_tensor(eta), None, {"phi": pt.as_tensor(phi)})
    np.testing.assert_allclose(pm.logp(dist, y).eval(), ll, rtol=1e-10)
    h = 1e-5
    d1, w = fam.score_weights(y, eta, sigma=phi)
    num = (fam.loglik(y, eta + h, None, phi) - fam.loglik(y, eta - h, None, phi)) / (2 * h)
    np.testing.assert_allclose(d1, num, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w, mu / (1 + phi), rtol=1e-12)  # the quasi-likelihood weight
    wo, dwo = fam.spec.observed_information(fam.link_fn, y, eta, None, phi)
    d1p, _ = fam.score_weights(y, eta + h, sigma=phi)
    d1m, _ = fam.score_weights(y, eta - h, sigma=phi)
    np.testing.assert_allclose(wo, -(d1p - d1m) / (2 * h), rtol=1e-6, atol=1e-7)
    wp, _ = fam.spec.observed_information(fam.link_fn, y, eta + h, None, phi)
    wm, _ = fam.spec.observed_information(fam.link_fn, y, eta - h, None, phi)
    np.testing.assert_allclose(dwo, (wp - wm) / (2 * h), rtol=1e-6, atol=1e-7)


def test_nb1_simulate_has_variance_mu_one_plus_phi() -> None:
    fam = get_family("nbinom1")
    rng = np.random.default_rng(2)
    ys = fam.simulate(rng, np.full(200_000, 1.5), dispersion={"phi": 2.3})
    mu = math.exp(1.5)
    assert abs(ys.mean() / mu - 1) < 0.01
    assert abs(ys.var() / (mu * 3.3) - 1) < 0.03


# ---------------------------------------------------------------------------- ML
def test_nb1_glm_ml_equals_statsmodels_nb1() -> None:
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(3)
    x = rng.normal(size=1500)
    mu = np.exp(0.8 + 0.4 * x)
    df = pd.DataFrame({"x": x, "y": rng.negative_binomial(mu / 2.0, 1 / 3.0)})
    ours = bg.GLMM("y ~ x", df, family="nbinom1").fit(method="ml")
    ref = sm.NegativeBinomial(df["y"], sm.add_constant(df["x"]), loglike_method="nb1").fit(
        disp=0, method="newton", maxiter=100, tol=1e-12
    )
    np.testing.assert_allclose(ours.fixef().values, ref.params.values[:2], atol=1e-4)
    assert ours.ml.family_dispersion[0] == pytest.approx(ref.params.values[2], rel=1e-4)
    assert ours.loglik == pytest.approx(ref.llf, abs=1e-6)
    np.testing.assert_allclose(ours.se().values, ref.bse.values[:2], rtol=1e-3)


def _nb1_logpmf(y: np.ndarray, mu: np.ndarray, phi: float) -> np.ndarray:
    """NB1 log pmf written out (checked against scipy in the test above)."""
    k = mu / phi
    return (
        special.gammaln(y + k)
        - special.gammaln(k)
        - special.gammaln(y + 1)
        - k * math.log1p(phi)
        + y * math.log(phi / (1 + phi))
    )


class _IndependentLaplace:
    """The Laplace log-likelihood of the NB1 random intercept, written independently of the
    package: each group's mode by Newton on finite differences of the group sums of the NB1
    log pmf (warm-started from the previous call), then
    ``sum_j f_j(b_j) + log(2 pi) / 2 - log(-f_j''(b_j)) / 2``."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.y = df["y"].to_numpy(float)
        self.x = df["x"].to_numpy(float)
        self.g = pd.factorize(df["g"])[0]
        self.ng = int(self.g.max()) + 1
        self.b = np.zeros(self.ng)

    def __call__(self, params: np.ndarray) -> float:
        b0, b1, log_sd, log_phi = params
        sd, phi = math.exp(log_sd), math.exp(log_phi)
        eta = b0 + b1 * self.x

        def f(b: np.ndarray) -> np.ndarray:
            ll = _nb1_logpmf(self.y, np.exp(eta + b[self.g]), phi)
            return np.bincount(self.g, ll, minlength=self.ng) - 0.5 * (b / sd) ** 2

        b, h = self.b.copy(), 1e-4
        if not np.all(np.isfinite(b)):
            b = np.zeros(self.ng)
        for _ in range(100):
            f0, fp, fm = f(b), f(b + h), f(b - h)
            d1, d2 = (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / h**2
            # Newton where f is concave, else an ascent step (NB1 is not concave in eta)
            step = np.where(d2 < 0, d1 / np.where(d2 < 0, d2, -1.0), -0.1 * np.sign(d1))
            b = b - np.clip(step, -1.0, 1.0)
            if np.max(np.abs(step)) < 1e-9:
                break
        self.b = b
        f0, fp, fm = f(b), f(b + h), f(b - h)
        d2 = (fp - 2 * f0 + fm) / h**2
        # N(b | 0, sd) normalising constant, then the Laplace integral per group
        const = -0.5 * math.log(2 * math.pi) - math.log(sd)
        return float(np.sum(f0 + const + 0.5 * math.log(2 * math.pi) - 0.5 * np.log(-d2)))


def test_nb1_ml_equals_an_independent_laplace() -> None:
    """Estimates and ``phi`` within 1e-3 and logLik within 1e-4 of a Laplace ML written
    independently (NB1 pmf, per-group Newton, Nelder-Mead from a start 0.3 away)."""
    df = simulate(600, 30, seed=7)
    ours = bg.GLMM("y ~ x + (1|g)", df, family="nbinom1").fit(method="ml")
    lap = _IndependentLaplace(df)
    sd = math.sqrt(float(ours.varcorr()["variance"].iloc[0]))
    at = np.array([*ours.fixef().values, math.log(sd), math.log(ours.ml.family_dispersion[0])])
    # the independent objective at our estimate is our logLik ...
    assert lap(at) == pytest.approx(ours.loglik, abs=1e-6)
    # ... and its maximum, from a start 0.3 away in every coordinate, is our estimate
    res = optimize.minimize(
        lambda p: -lap(p),
        at + np.array([0.3, -0.3, 0.3, -0.3]),
        method="Nelder-Mead",
        options={"xatol": 1e-5, "fatol": 1e-7, "maxfev": 1500},
    )
    # (the finite-difference inner Newton leaves ~1e-7 of noise in the objective, so the
    # simplex stalls at maxfev rather than meeting fatol: its point is what is checked)
    b0, b1, log_sd, log_phi = res.x
    np.testing.assert_allclose(ours.fixef().values, [b0, b1], atol=1e-3)
    assert sd == pytest.approx(math.exp(log_sd), abs=1e-3)
    assert ours.ml.family_dispersion[0] == pytest.approx(math.exp(log_phi), rel=1e-3)
    assert ours.loglik == pytest.approx(-res.fun, abs=1e-4)


@pytest.mark.parametrize(
    ("formula", "nh", "n", "seed"),
    [("y ~ x + (1|g)", 0, 3000, 1), ("y ~ x + (1|g) + (1|h)", 20, 3000, 2)],
    ids=["one_factor", "two_factors"],
)
def test_nb1_ml_recovers_the_simulation_truth(formula: str, nh: int, n: int, seed: int) -> None:
    fit = bg.GLMM(formula, simulate(n, 60, nh, seed=seed), family="nbinom1").fit(method="ml")
    se = fit.se()
    assert abs(fit.fixef()["x"] - TRUTH["b1"]) < 3 * se["x"]
    assert abs(fit.fixef()["(Intercept)"] - TRUTH["b0"]) < 3 * se["(Intercept)"]
    assert abs(fit.ml.family_dispersion[0] / TRUTH["phi"] - 1) < 0.1
    vc = fit.varcorr().set_index("group")
    assert abs(vc.loc["g", "sd_cor"] - TRUTH["sd_g"]) < 0.15
    if nh:
        assert abs(vc.loc["h", "sd_cor"] - TRUTH["sd_h"]) < 0.2


# ---------------------------------------------------------------------------- interpretation
def test_nb1_print_shows_phi_and_no_residual_row(ml_fit: bg.GLMMFit) -> None:
    text = str(ml_fit)
    phi = ml_fit.ml.family_dispersion[0]
    assert f"phi = {phi:.4g}" in text and "negativebinomial1" in text
    assert "z value" in text
    assert "Residual" not in set(ml_fit.varcorr()["group"])
    assert ml_fit.draws_dispersion()["phi"][0] == phi


def test_nb1_icc_is_nakagawa_quasi_poisson(ml_fit: bg.GLMMFit) -> None:
    """Nakagawa et al. (2017), the quasi-Poisson / NB1 rows: ``log(1 + omega / lambda)`` and
    ``trigamma(lambda / omega)`` with ``omega = 1 + phi``."""
    d = ml_fit.design
    phi = ml_fit.ml.family_dispersion[0]
    v = float(ml_fit.varcorr()["variance"].iloc[0])
    lam = math.exp(float(np.mean(d.X @ ml_fit.fixef().values)) + v / 2)
    omega = 1 + phi
    for method, dist in (
        ("lognormal", math.log1p(omega / lam)),
        ("delta", omega / lam),
        ("trigamma", special.polygamma(1, lam / omega)),
    ):
        assert ml_fit.icc(method=method).loc["g"].iloc[0] == pytest.approx(
            v / (v + dist), rel=1e-10
        )


def test_nb1_residuals_predict_and_simulate(ml_fit: bg.GLMMFit) -> None:
    d = ml_fit.design
    phi = ml_fit.ml.family_dispersion[0]
    mu = fitted(ml_fit)
    y = d.y
    np.testing.assert_allclose(
        ml_fit.residuals(type="pearson"), (y - mu) / np.sqrt(mu * (1 + phi)), rtol=1e-10
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y > 0, y * np.log(y / mu), 0.0)
    dev = 2 * (t - (y - mu)) / (1 + phi)  # quasi-Poisson deviance scaled by 1 + phi
    np.testing.assert_allclose(
        ml_fit.residuals(), np.sign(y - mu) * np.sqrt(dev), rtol=1e-9, atol=1e-12
    )
    v = float(ml_fit.varcorr()["variance"].iloc[0])
    eta = d.X @ ml_fit.fixef().values
    np.testing.assert_allclose(
        np.asarray(ml_fit.predict(re="marginal")), np.exp(eta + v / 2), rtol=1e-6
    )
    yrep = ml_fit.posterior_predictive(random_seed=0, n_draws=400)  # parametric, (400, n)
    assert yrep.shape == (400, d.n)
    assert abs(yrep.var(axis=0).mean() / np.mean(mu * (1 + phi)) - 1) < 0.05


def test_nb1_default_prior_and_user_override() -> None:
    df = simulate(200, 10, seed=3)
    m = bg.GLMM("y ~ x + (1|g)", df, family="nbinom1")
    p = m.priors.dispersion("phi")
    assert (p.dist, p.params) == ("Gamma", {"alpha": 0.01, "beta": 0.01})
    m2 = bg.GLMM(
        "y ~ x + (1|g)", df, family="nbinom1", priors={"phi": bg.Prior("Exponential", lam=1.0)}
    )
    assert m2.priors.dispersion("phi").dist == "Exponential"
    from bayesglmm.engines.bayes.pymc_model import build_pymc_model

    model = build_pymc_model(m2.design, m2.priors)
    assert "phi" in model.named_vars and "shape" not in model.named_vars


def test_nb1_pql_is_a_clear_error() -> None:
    m = bg.GLMM("y ~ x + (1|g)", simulate(200, 10, seed=3), family="nbinom1")
    with pytest.raises(bg.InferenceError, match="glmmPQL has no NB1"):
        m.fit(method="pql")


def test_nb1_agq_and_bayesian_laplace_through_the_generic_dispersion_paths() -> None:
    """No NB1 code in the engines: AGQ (``nagq > 1``) and the Bayesian integrated Laplace
    serve it as they serve NB2.  AGQ's logLik rises from Laplace's and settles (nagq 5 vs
    25 within 5e-3); the Bayesian Laplace posterior means of the fixed effects and ``phi``
    are within 0.25 posterior SD of ML (1,500 rows: the vague default priors move little;
    measured against a 2 x 1,000-draw NUTS run once: ``phi`` 1.512 vs 1.510, SD 0.123 vs
    0.126)."""
    m = bg.GLMM("y ~ x + (1|g)", simulate(1500, 30, seed=5), family="nbinom1")
    lap = m.fit(method="ml").ml
    q5, q25 = (m.fit(method="ml", nagq=q).ml for q in (5, 25))
    assert abs(q5.loglik - q25.loglik) < 5e-3  # measured 1.3e-3
    assert abs(q25.loglik - lap.loglik) < 0.5  # 30 groups of 50 rows: Laplace is close
    np.testing.assert_allclose(q25.beta, lap.beta, atol=0.02)
    bayes = m.fit(method="laplace", random_seed=1)
    phi = np.asarray(bayes.draws_dispersion()["phi"]).ravel()
    assert abs(phi.mean() - lap.family_dispersion[0]) < 0.25 * phi.std()
    est = bayes.fixef().to_numpy()
    assert np.all(np.abs(est - lap.beta) < 0.25 * np.sqrt(np.diag(lap.vcov_beta)))


def test_nb1_bad_counts_name_the_column() -> None:
    df = pd.DataFrame({"cnt": [1, 2, 1.5, 3, 0, 2], "g": list("aabbcc")})
    with pytest.raises(
        bg.DataError, match="`cnt` must hold non-negative integer counts; found 1.5"
    ):
        bg.GLMM("cnt ~ 1 + (1|g)", df, family="nbinom1")


# ---------------------------------------------------------------------------- Bayesian
def test_nb1_advi_is_near_ml(ml_fit: bg.GLMMFit) -> None:
    m = bg.GLMM("y ~ x + (1|g)", simulate(1500, 30, seed=5), family="nbinom1")
    fit = m.fit(method="advi", random_seed=1)
    np.testing.assert_allclose(fit.fixef().values, ml_fit.fixef().values, atol=0.1)
    assert abs(np.mean(fit.draws_dispersion()["phi"]) / ml_fit.ml.family_dispersion[0] - 1) < 0.3


@pytest.mark.slow
def test_nb1_nuts_posterior_means_near_ml() -> None:
    """Wide priors: NUTS (the PyMC model) posterior means of the fixed effects and ``phi``
    within 0.25 posterior SD of the Laplace ML estimates on 500 simulated rows; LOO, the
    posterior predictive and the ICC run on the draws."""
    df = simulate(500, 20, seed=11)
    priors = {
        "intercept": bg.Prior("Normal", mu=0, sigma=10),
        "fixed": bg.Prior("Normal", mu=0, sigma=10),
        "sd": bg.Prior("HalfNormal", sigma=10),
    }
    m = bg.GLMM("y ~ x + (1|g)", df, family="nbinom1", priors=priors)
    ml = m.fit(method="ml")
    fit = m.fit(method="nuts", draws=400, tune=400, chains=2, random_seed=7)
    s = fit.summary()
    for name, est in zip(["(Intercept)", "x"], ml.fixef().values, strict=True):
        assert abs(s.loc[name, "mean"] - est) < 0.25 * s.loc[name, "sd"], name
    phi = fit.draws_dispersion()["phi"]
    assert abs(phi.mean() - ml.ml.family_dispersion[0]) < 0.25 * phi.std()
    assert "phi" in s.index
    assert np.isfinite(fit.loo().elpd)
    assert fit.posterior_predictive(random_seed=1) is not None
    assert 0 < float(fit.icc().loc["g"].iloc[0]) < 1


def test_nb1_ml_fit_saves_and_loads(ml_fit: bg.GLMMFit, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "nb1.nc"
    ml_fit.save(path)
    back = bg.load_fit(path)
    assert back.design.family.name == "negativebinomial1"
    assert back.ml.family_dispersion[0] == pytest.approx(ml_fit.ml.family_dispersion[0])
    np.testing.assert_allclose(back.fixef().values, ml_fit.fixef().values)
    assert str(back).splitlines()[1] == str(ml_fit).splitlines()[1]  # the phi line
