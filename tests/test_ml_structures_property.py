"""Property test of the ML Laplace engine against the `glmm` package (Rust, lme4's Laplace
deviance) on randomly drawn GLMM structures (issue 14, "no optimum missed").

Hypothesis draws a structure: 1-3 grouping factors, each crossed with the others or nested in
an earlier one (written ``a/b``, ``a:b`` or as an explicit ``a_b`` label column), scalar or
correlated vector terms ``(1 + x1 | g)``, true SDs from {0, 0.05, 0.3, 1, 2}, every family and
link (bernoulli and binomial ``cbind(s, f)`` with logit/probit/cloglog, poisson with and
without ``offset()``, gaussian identity), 100-2000 rows, 3-60 levels per factor and
predictors on mixed scales.  The data are simulated with a NumPy Generator seeded by a drawn
integer, so every example is reproducible from its :class:`Case`.

The check: our ML log-likelihood is at least glmm's - 1e-4 (higher wins); where both reach the
same optimum (|d logLik| < 1e-4) the fixed effects agree within 1e-3 on the scale of the
standardized predictors (``beta_j * sd(x_j)``, intercept at the predictors' means).  Raw
coefficients of a column on the scale 1e-2 are ~100 times larger and their optimizer noise
with them, so raw 1e-3 would test the column's units, not the optimum.  glmm 0.6 fits
neither ``(x || g)`` nor ``(0 + x | g)`` nor a vector term over ``a:b`` (its formula parser
fails); structures glmm rejects or fails on are skipped (``assume``) and counted.

Known limitations (see :func:`known_limitation`: none are left) would be counted, not
failed, and pinned as strict ``xfail`` tests.

The full property test is ``slow`` (100 examples); a derandomized 12-example profile runs in
the normal suite.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass

import hypothesis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import bayesglmm as bg
from bayesglmm.errors import BayesGLMMError

try:
    import glmm
except ImportError:  # pragma: no cover - depends on the environment
    glmm = None

needs_glmm = pytest.mark.skipif(glmm is None, reason="the peer package `glmm` is not installed")

SDS = (0.0, 0.05, 0.3, 1.0, 2.0)
CORRS = (-0.9, -0.5, 0.0, 0.5, 0.9)
FAMILIES = {
    "bernoulli": ("logit", "probit", "cloglog"),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "poisson_offset": ("log",),
    "gaussian": ("identity",),
}
LOGLIK_TOL = 1e-4
RIDGE_GAIN = 1e-6
"""Fixed effects may differ from glmm's beyond BETA_TOL at an "equal" logLik only where ours
is higher by more than this (rounding of a converged deviance is ~1e-9) and converged."""
BETA_TOL = 1e-3


@dataclass(frozen=True)
class Factor:
    """One grouping factor: ``levels`` (crossed) or ``per_parent`` levels inside ``parent``."""

    levels: int
    parent: int | None  # index of an earlier factor it is nested in
    n_terms: int  # 1: (1 | g); 2: (1 + x1 | g); 3: (1 + x1 + x2 | g)
    sds: tuple[float, ...]
    corr: float
    syntax: str  # nested only: "slash" (a/b), "colon" (a:b) or "label" (a_b column)


@dataclass(frozen=True)
class Case:
    """A drawn structure; :func:`simulate` turns it into data and formulas."""

    seed: int
    family: str
    link: str
    n: int
    factors: tuple[Factor, ...]
    predictors: tuple[tuple[str, float, float], ...]  # (kind, scale, location)
    sigma: float  # gaussian residual SD


@st.composite
def cases(draw, max_n: int = 2000) -> Case:
    family = draw(st.sampled_from(sorted(FAMILIES)))
    link = draw(st.sampled_from(FAMILIES[family]))
    kinds = st.sampled_from(["normal", "uniform", "binary"])
    predictors = tuple(
        (draw(kinds), draw(st.sampled_from([1e-2, 1.0, 1e2])), draw(st.sampled_from([0.0, 10.0])))
        for _ in range(draw(st.integers(1, 3)))
    )
    factors: list[Factor] = []
    for k in range(draw(st.integers(1, 3))):
        nested = k > 0 and draw(st.booleans())
        max_terms = 1 + min(len(predictors), 2)
        n_terms = min(draw(st.sampled_from([1, 1, 2, 2, 3])), max_terms)
        factors.append(
            Factor(
                levels=draw(st.integers(2, 6) if nested else st.integers(3, 60)),
                parent=draw(st.integers(0, k - 1)) if nested else None,
                n_terms=n_terms,
                sds=tuple(draw(st.sampled_from(SDS)) for _ in range(n_terms)),
                corr=draw(st.sampled_from(CORRS)),
                syntax=draw(st.sampled_from(["slash", "colon", "label"])) if nested else "",
            )
        )
    return Case(
        seed=draw(st.integers(0, 2**32 - 1)),
        family=family,
        link=link,
        n=draw(st.integers(100, max_n)),
        factors=tuple(factors),
        predictors=predictors,
        sigma=draw(st.sampled_from([0.3, 1.0, 3.0])),
    )


def _inverse_link(link: str, eta: np.ndarray) -> np.ndarray:
    from scipy.special import expit, ndtr

    if link == "logit":
        return expit(eta)
    if link == "probit":
        return ndtr(eta)
    return -np.expm1(-np.exp(np.minimum(eta, 30.0)))  # cloglog


def _group_covariance(f: Factor) -> np.ndarray:
    sd = np.asarray(f.sds)
    # every pair at f.corr (halved for 3 terms, so -0.9 stays positive definite)
    C = np.full((f.n_terms, f.n_terms), f.corr if f.n_terms < 3 else f.corr / 2)
    np.fill_diagonal(C, 1.0)
    return C * np.outer(sd, sd)


def simulate(case: Case) -> tuple[pd.DataFrame, str, str, dict]:
    """Data frame, our formula, glmm's formula and the standardization of the predictors."""
    rng = np.random.default_rng(case.seed)
    n = case.n
    df = pd.DataFrame(index=range(n))
    cols, std = [], {}
    for j, (kind, scale, loc) in enumerate(case.predictors, start=1):
        if kind == "normal":
            x = rng.normal(size=n)
        elif kind == "uniform":
            x = rng.uniform(0.0, 1.0, size=n)
        else:
            x = rng.integers(0, 2, size=n).astype(float)
        x = loc * scale + scale * x
        df[f"x{j}"] = x
        cols.append(f"x{j}")
        std[f"x{j}"] = (float(x.mean()), float(x.std()) or 1.0)
    Xs = np.column_stack([(df[c] - std[c][0]) / std[c][1] for c in cols])
    intercept = {"poisson": 0.7, "poisson_offset": 0.2, "gaussian": 1.0}.get(case.family, 0.0)
    eta = intercept + Xs @ rng.normal(0.0, 0.5, size=len(cols))
    index: list[np.ndarray] = []
    ours_terms, peer_terms = [], []
    written = set()
    for k, f in enumerate(case.factors):
        if f.parent is None:
            idx = rng.integers(0, f.levels, n)
            labels = np.char.mod(f"f{k}_%d", idx)
            n_levels = f.levels
        else:
            child = rng.integers(0, f.levels, n)
            idx = index[f.parent] * f.levels + child
            n_levels = int(idx.max()) + 1
            labels = np.char.mod(f"c{k}_%d", child)
        index.append(idx)
        df[f"g{k}"] = labels
        # random effects in units of the standardized predictors
        b = rng.multivariate_normal(np.zeros(f.n_terms), _group_covariance(f), n_levels)
        Zs = np.column_stack([np.ones(n), Xs[:, : f.n_terms - 1]])
        eta += np.einsum("ij,ij->i", Zs, b[idx])
        lhs = " + ".join(["1", *cols[: f.n_terms - 1]])
        if f.parent is None:
            term = f"({lhs} | g{k})"
            ours_terms.append(term)
            peer_terms.append(term)
            continue
        p = f.parent
        if f.syntax == "label":
            df[f"g{p}_g{k}"] = df[f"g{p}"] + "_" + df[f"g{k}"]
            group = f"g{p}_g{k}"
        else:
            group = f"g{p}:g{k}"
        peer_terms.append(f"({lhs} | {group})")
        parent = case.factors[p]
        same = parent.n_terms == f.n_terms and parent.parent is None and p not in written
        if f.syntax == "slash" and same:
            # (lhs | gp/gk) stands for the parent's term and this one
            ours_terms[p] = f"({lhs} | g{p}/g{k})"
            written.add(p)
        else:
            ours_terms.append(f"({lhs} | {group})")
    fixed = " + ".join(cols)
    if case.family == "poisson_offset":
        df["expo"] = rng.uniform(0.2, 5.0, n)
        fixed += " + offset(log(expo))"
        eta += np.log(df["expo"].to_numpy())
    if case.family in ("poisson", "poisson_offset"):
        y = rng.poisson(np.exp(np.minimum(eta, 12.0)))
        resp = "y"
    elif case.family == "gaussian":
        y = eta + case.sigma * rng.normal(size=n)
        resp = "y"
    else:
        mu = _inverse_link(case.link, eta)
        trials = np.ones(n, int) if case.family == "bernoulli" else rng.integers(1, 21, n)
        y = rng.binomial(trials, mu)
        df["s"], df["f"] = y, trials - y
        resp = "y" if case.family == "bernoulli" else "cbind(s, f)"
    df["y"] = y
    ours = f"{resp} ~ {fixed} + {' + '.join(ours_terms)}"
    peer = f"{resp} ~ {fixed} + {' + '.join(peer_terms)}"
    return df, ours, peer, std


def _standardized(beta: np.ndarray, std: dict) -> np.ndarray:
    """Coefficients of the standardized predictors, intercept at the predictors' means."""
    beta = np.asarray(beta, dtype=float)
    means = np.array([m for m, _ in std.values()])
    sds = np.array([s for _, s in std.values()])
    return np.concatenate([[beta[0] + beta[1:] @ means], beta[1:] * sds])


def known_limitation(case: Case) -> str | None:
    """Why a lower logLik than glmm's is a known limitation of the engine, not a new bug
    (each has pinned ``xfail`` tests below); None if there is no such reason.

    Vector terms on few groups (several local optima) are handled by the multi-start and the
    correlated boundary probes, slopes on any scale by theta on centred and scaled columns of
    Z: no structure is exempt now (the function stays as the place for the next one).
    """
    del case
    return None


def fit_both(case: Case) -> dict:
    """Both fits of one case: logLik, fixed effects (raw and standardized), or glmm's error."""
    df, ours_formula, peer_formula, std = simulate(case)
    family = {"poisson_offset": "poisson"}.get(case.family, case.family)
    peer_family = "binomial" if family == "bernoulli" else family
    kw = {"reml": False} if family == "gaussian" else {}
    out: dict = {"ours_formula": ours_formula, "peer_formula": peer_formula}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            peer = glmm.fit(df, peer_formula, peer_family, link=case.link, **kw)
            out["peer_loglik"] = float(peer.loglik)
            out["peer_beta"] = np.asarray(peer.beta, dtype=float)
        except Exception as e:  # glmm rejects or fails: the example is skipped
            out["peer_error"] = f"{type(e).__name__}: {e}"
        try:
            ours = bg.GLMM(ours_formula, df, family, link=case.link).fit(method="ml").ml
        except BayesGLMMError as e:
            out["ours_error"] = f"{type(e).__name__}: {e}"
            return out
    out["ours_loglik"] = float(ours.loglik)
    out["ours_converged"] = bool(ours.converged)
    out["ours_beta"] = np.asarray(ours.beta, dtype=float)
    out["std"] = std
    return out


def check_case(case: Case, tally: Counter | None = None, problems: list | None = None) -> str:
    """Check the property on one case and return its outcome (counted in ``tally``).

    A missed optimum or a fixed-effect mismatch is appended to ``problems`` when given (so a
    run reports every one with its counts), else raised.
    """
    r = fit_both(case)
    if "peer_error" in r:
        outcome = f"skipped (glmm: {r['peer_error'][:70]})"
    elif "ours_error" in r:
        outcome = "ours raised BayesGLMMError"
    else:
        d = r["ours_loglik"] - r["peer_loglik"]
        outcome = "equal" if abs(d) < LOGLIK_TOL else ("higher" if d > 0 else "lower")
    if tally is not None:
        tally[outcome] += 1
    failure = None
    if "ours_error" in r and "peer_error" not in r:
        why = known_limitation(case)
        if "random effects" in r["ours_error"] and "observations" in r["ours_error"]:
            # more random effects than observations: lme4 refuses these too
            # (check.nobs.vs.nRE = "stop"); glmm fits them
            why = "more random effects than observations (lme4 refuses too)"
        if why is None:
            failure = f"ours raised where glmm fitted: {case}\n{r}"
        elif tally is not None:
            tally[f"raised, known limitation: {why}"] += 1
    elif outcome == "lower":
        d = r["peer_loglik"] - r["ours_loglik"]
        why = known_limitation(case)
        if why is None and not r["ours_converged"]:
            # loud, not silent: the fit says it did not converge (ConvergenceWarning); the
            # property fails on a *silent* miss (reported converged but below glmm)
            why = "not converged, and the fit says so"
        if why is None:
            failure = f"missed optimum by {d:.3g}: {case}\n{r}"
        elif tally is not None:
            tally[f"lower, known limitation: {why}"] += 1
    elif outcome == "equal":
        ours_b = _standardized(r["ours_beta"], r["std"])
        peer_b = _standardized(r["peer_beta"], r["std"])
        if np.max(np.abs(ours_b - peer_b)) > BETA_TOL:
            if r["ours_converged"] and r["ours_loglik"] > r["peer_loglik"] + RIDGE_GAIN:
                # a flat ridge: the fixed effects move by more than BETA_TOL for a logLik
                # change below LOGLIK_TOL, and ours is the higher one (the higher
                # log-likelihood wins): glmm stopped short along it
                # (test_pinned_flat_ridge_glmm_stops_short)
                if tally is not None:
                    tally["equal logLik, ours higher on a flat ridge (fixed effects differ)"] += 1
            else:
                failure = f"fixed effects differ at the same optimum: {ours_b} vs {peer_b}: {case}"
    if failure is not None:
        if problems is None:
            raise AssertionError(failure)
        problems.append(failure)
    assume("peer_error" not in r)
    return outcome


def _run(max_examples: int, derandomize: bool, max_n: int = 2000) -> tuple[Counter, list]:
    tally: Counter = Counter()
    problems: list = []

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(cases(max_n=max_n))
    def prop(case: Case) -> None:
        check_case(case, tally, problems)

    # a fixed seed, not ``derandomize``: derandomized examples differed between this work
    # tree and a fresh clone in another folder, so CI ran other structures than a developer
    (hypothesis.seed(20261201)(prop) if derandomize else prop)()
    return tally, problems


@needs_glmm
def test_ml_structures_fixed_profile():
    """12 derandomized examples (the normal suite)."""
    tally, problems = _run(12, derandomize=True, max_n=600)
    print(dict(tally))
    assert not problems, "\n\n".join(problems)
    assert sum(tally.values()) >= 12


@pytest.mark.slow
@needs_glmm
def test_ml_structures_property():
    """100 random structures; prints the tally (higher / equal / lower / skipped)."""
    # derandomized, so CI runs the same 100 structures every time; BAYESGLMM_EXPLORE=1
    # draws new ones (how the pinned cases above were found)
    explore = os.environ.get("BAYESGLMM_EXPLORE") == "1"
    tally, problems = _run(100, derandomize=not explore)
    print(dict(tally))
    assert not problems, "\n\n".join(problems)


# ------------------------------------------------------------------ cases the property found
# Each with the data generator's seed (via its Case) and glmm 0.6's answer stored.


def _ours(case: Case):
    df, formula, _, _ = simulate(case)
    family = {"poisson_offset": "poisson"}.get(case.family, case.family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.GLMM(formula, df, family, link=case.link).fit(method="ml").ml


def test_pinned_probit_slope_on_small_scale():
    """``cbind(s, f) ~ x1 + (1 + x1 | g0)``, probit, x1 on the scale 0.01: from lme4's raw
    start theta = (1, 0, 1) the slope started at an SD of 0.01 effect units and L-BFGS-B ended
    on the boundary L11 = 0 at logLik -313.2470, 2.91 below glmm's.  Fixed by starting theta
    in units of 1 / rms of each term's column (laplace.fit_ml)."""
    case = Case(
        seed=124642731,
        family="binomial",
        link="probit",
        n=192,
        factors=(Factor(42, None, 2, (0.05, 2.0), 0.0, ""),),
        predictors=(("normal", 0.01, 0.0),),
        sigma=1.0,
    )
    fit = _ours(case)
    assert fit.loglik >= -310.3361558615559 - LOGLIK_TOL  # glmm 0.6
    np.testing.assert_allclose(fit.beta, [-0.0454411899034043, 37.20190759203438], atol=1e-3)


def test_pinned_flat_ridge_glmm_stops_short():
    """Poisson with an offset, ``(1 + x1 | g0)`` on 6 groups with SDs 2 and x1 ~ 1049 +- 29
    (uncentred), a nested ``(1 | g0_g1)`` and a ``(1 + x1 | g2)`` of SDs 0.05: the intercept
    moves along a flat ridge (0.08 on the raw scale, 2e-3 standardized, for 1e-5 of
    logLik).  glmm 0.6 stops at logLik -3762.40050129 with an intercept of 20.460 (20.46-20.54
    as the other predictors' scales change, the same data); ours reaches -3762.40048891,
    1.2e-5 higher, with an intercept of 20.538 that does not move with those scales.  The
    higher log-likelihood wins: ours is the optimum (found by BAYESGLMM_EXPLORE=1)."""
    case = Case(
        seed=18682,
        family="poisson_offset",
        link="log",
        n=1712,
        factors=(
            Factor(6, None, 2, (2.0, 2.0), 0.9, ""),
            Factor(6, 0, 1, (2.0,), 0.9, "label"),
            Factor(41, None, 2, (0.05, 0.05), 0.9, ""),
        ),
        predictors=(("uniform", 100.0, 10.0), ("binary", 0.01, 0.0), ("uniform", 0.01, 0.0)),
        sigma=1.0,
    )
    fit = _ours(case)
    assert fit.converged
    peer_loglik = -3762.4005012936304  # glmm 0.6
    assert fit.loglik > peer_loglik + RIDGE_GAIN
    np.testing.assert_allclose(fit.beta[0], 20.538115, atol=2e-3)  # glmm 20.460


def test_pinned_other_rank_deficient_face():
    """Poisson with an offset, two crossed ``(1 + x1 + x2 | g)`` terms (17 and 40 groups, x1
    binary 0/100) and a nested intercept: both optima put the 17-group covariance on a
    boundary face of rank 2.  From the default start ours ended on the face where x1's
    slope is perfectly correlated with the intercept (logLik -3841.6942, reported converged,
    0.049 below glmm: a silent miss), where glmm's has x2's slope dependent on the other two
    (-3841.6455).  The multi-start now also runs the full optimizer from the fitted
    covariance plus a ridge (multistart.ridge_starts), which leaves every face at once and
    reaches glmm's optimum (found by BAYESGLMM_EXPLORE=1)."""
    case = Case(
        seed=698808,
        family="poisson_offset",
        link="log",
        n=1885,
        factors=(
            Factor(17, None, 3, (0.3, 0.0, 1.0), -0.9, ""),
            Factor(40, None, 3, (0.3, 1.0, 0.3), -0.5, ""),
            Factor(2, 0, 1, (0.3,), 0.9, "label"),
        ),
        predictors=(("binary", 100.0, 0.0), ("normal", 0.01, 0.0), ("normal", 0.01, 10.0)),
        sigma=0.3,
    )
    fit = _ours(case)
    assert fit.converged
    assert fit.loglik >= -3841.6454713229705 - 1e-6  # glmm 0.6


@pytest.mark.xfail(
    strict=True,
    reason="gaussian LMM, a (1 + x1 + x2 | g2) covariance near a rank-1 face (its Cholesky "
    "diagonals in optimizer units 1.079, 0.0015, 0.014 at glmm's optimum): ours converges to "
    "(1.079, 0, 6.08), 9.5e-4 logLik units lower (a nearly flat valley; the fixed effects "
    "agree to 6e-5). Started from glmm's estimates ours reaches -706.554008, above glmm. "
    "The LMM path has the boundary restarts but not the GLMM engine's multi-start; adding "
    "it (screened +-0.9 correlations and the ridge restart) did not reach it either. Found "
    "by BAYESGLMM_EXPLORE=1 in session 8; open",
)
def test_pinned_lmm_near_rank_one_face():
    case = Case(
        seed=643,
        family="gaussian",
        link="identity",
        n=1110,
        factors=(
            Factor(3, None, 2, (1.0, 0.3), -0.9, ""),
            Factor(51, None, 1, (2.0,), 0.9, ""),
            Factor(53, None, 3, (0.3, 0.0, 2.0), -0.9, ""),
        ),
        predictors=(("uniform", 0.01, 0.0), ("uniform", 0.01, 0.0)),
        sigma=0.3,
    )
    fit = _ours(case)
    assert fit.loglik >= -706.55412570308 - LOGLIK_TOL  # glmm 0.6, ML


def test_pinned_uncentred_slope_not_converged():
    """``(1 + x1 | g0) + (1 | g0_g1)``, cloglog, x1 ~ 1000 +- 100: on the raw columns of Z the
    intercept and slope columns are nearly collinear, theta was badly conditioned and
    L-BFGS-B stopped with max|grad| ~1 (converged=False) 0.003 below glmm.  Fixed by
    optimizing theta on centred and scaled columns (scaling.random_scaling)."""
    case = Case(
        seed=7754,
        family="binomial",
        link="cloglog",
        n=318,
        factors=(
            Factor(27, None, 2, (0.3, 0.3), -0.9, ""),
            Factor(3, 0, 1, (0.05,), 0.5, "label"),
        ),
        predictors=(("normal", 100.0, 10.0),),
        sigma=3.0,
    )
    fit = _ours(case)
    assert fit.converged
    assert fit.loglik >= -545.9722429854176 - LOGLIK_TOL  # glmm 0.6


def test_pinned_few_groups_local_optimum():
    """2x2 covariance from 3 groups: two local optima (intercept variance ~0 with a large
    slope variance, logLik -67.8367; glmm's correlation +1, -67.7720).  From the default
    start L-BFGS-B ended in the worse one: at a zero intercept variance the deviance is flat
    in the split of the slope variance between L10 and L11.  Two fixes reach glmm's optimum:
    the correlated boundary probes (boundary.correlated_probes) and the vector-term
    multi-start (multistart.vector_multistart)."""
    case = Case(
        seed=17,
        family="bernoulli",
        link="logit",
        n=100,
        factors=(Factor(3, None, 2, (0.0, 0.0), -0.9, ""),),
        predictors=(("normal", 0.01, 0.0),),
        sigma=0.3,
    )
    fit = _ours(case)
    assert fit.loglik >= -67.77197041339616 - LOGLIK_TOL  # glmm 0.6
    assert fit.converged
    C = fit.covariances[0]
    assert C[0, 1] / np.sqrt(C[0, 0] * C[1, 1]) > 0.999  # glmm's correlation +1
    # (the correlated boundary probes reach it first; the multi-start then finds nothing
    # better, or is not needed: the fit is interior in the probes' direction)


def test_pinned_slope_small_scale_three_terms():
    """(1 + x1 + x2 | g) on two columns of scale 0.01: on the raw Z columns L-BFGS-B stopped
    with max|grad| 1.3, 138 below glmm; on standardized columns it converged to a rank-1
    face 0.0009 below glmm's rank-2 optimum.  Fixed by the column probes of
    boundary.correlated_probes and the polish/L-BFGS-B cycles (laplace.fit_ml)."""
    case = Case(
        seed=27193,
        family="binomial",
        link="cloglog",
        n=2000,
        factors=(Factor(60, None, 3, (0.05, 0.0, 0.05), 0.5, ""),),
        predictors=(("uniform", 0.01, 0.0), ("uniform", 0.01, 0.0)),
        sigma=0.3,
    )
    fit = _ours(case)
    assert fit.converged
    assert fit.loglik >= -3418.9229539220764 - LOGLIK_TOL  # glmm 0.6


def _engine_without_nobs_check(case: Case):
    """The ML engine on a case whose design the public API refuses (more random effects in
    a term than observations: lme4's check.nobs.vs.nRE), built from the frame stacked twice
    and cut back to its rows (the same data, levels and columns)."""
    import dataclasses

    from bayesglmm.engines.ml.laplace import fit_ml

    df, formula, _, _ = simulate(case)
    family = {"poisson_offset": "poisson"}.get(case.family, case.family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(bg.DesignError, match="random effects .* for .* observations"):
            bg.GLMM(formula, df, family, link=case.link)
        big = bg.GLMM(formula, pd.concat([df, df], ignore_index=True), family, link=case.link)
        d, n = big.design, len(df)
        blocks = tuple(dataclasses.replace(b, Z=b.Z[:n], index=b.index[:n]) for b in d.blocks)
        assert all(np.unique(b.index).size == b.n_levels for b in blocks)
        d = dataclasses.replace(
            d,
            y=d.y[:n],
            X=d.X[:n],
            offset=d.offset[:n],
            trials=None if d.trials is None else d.trials[:n],
            blocks=blocks,
            row_index=None,
            n_input=n,
        )
        return fit_ml(d)


def test_pinned_slope_uncentred_three_factors():
    """Three crossed factors, two ``(1 + x1 + x2 | g)`` terms on off-centre binary columns
    (values 10/11 and 0.10/0.11), 123 rows: L-BFGS-B stopped with max|grad| 15.7, 180 below
    glmm.  The public API now refuses the model (159 random effects in a term for 123 rows,
    as lme4); the engine on centred and scaled columns ends 0.20 above glmm."""
    case = Case(
        seed=820362,
        family="bernoulli",
        link="probit",
        n=123,
        factors=(
            Factor(52, None, 1, (0.05,), 0.9, ""),
            Factor(58, None, 3, (0.05, 0.3, 2.0), -0.5, ""),
            Factor(15, None, 3, (1.0, 0.0, 0.0), 0.5, ""),
        ),
        predictors=(("binary", 0.01, 10.0), ("binary", 1.0, 10.0), ("binary", 1.0, 10.0)),
        sigma=3.0,
    )
    fit = _engine_without_nobs_check(case)
    assert fit.converged
    assert fit.loglik >= -51.896627936493225 - LOGLIK_TOL  # glmm 0.6


def test_pinned_slopes_uncentred_singular_error():
    """Three crossed ``(1 + x1 + x2 | g)`` terms on 100 rows (138 random effects in one term:
    the public API refuses the model, as lme4; the engine is called directly).  On centred
    and scaled columns the engine no longer raised 'random-effect cross-product is
    numerically singular', but ended on a singular fit 1.8 below glmm's -39.3014 while
    reporting convergence (an xfail until session 8).  The ridge restart of the multi-start
    (multistart.ridge_starts: the full optimizer from just off the boundary face) now
    reaches glmm's optimum."""
    case = Case(
        seed=4,
        family="bernoulli",
        link="cloglog",
        n=100,
        factors=(
            Factor(54, None, 3, (0.05, 0.0, 1.0), 0.9, ""),
            Factor(31, None, 3, (0.0, 2.0, 2.0), 0.9, ""),
            Factor(6, None, 3, (0.0, 0.05, 2.0), -0.9, ""),
        ),
        predictors=(("normal", 100.0, 10.0), ("binary", 1.0, 10.0), ("binary", 1.0, 10.0)),
        sigma=0.3,
    )
    fit = _engine_without_nobs_check(case)
    assert fit.loglik >= -39.301387070273876 - LOGLIK_TOL  # glmm 0.6


def test_pinned_cloglog_score_in_the_tail():
    """``cbind(s, f) ~ x1 + x2 + (1 | g0/g1) + (1 | g2)``, cloglog, x1 on the scale 100 (found
    by the slow property run): the binomial probit/cloglog score clipped ``p`` to
    ``[eps, 1 - eps]``, so at large ``eta`` it vanished, the optimizer stalled in that flat
    region and ended at logLik -875503.47 (with a convergence warning).  The score is now
    exact in both tails (families.score_weights).  glmm 0.6.2: -83.43546183574415."""
    case = Case(
        seed=0,
        family="binomial",
        link="cloglog",
        n=100,
        factors=(
            Factor(33, None, 1, (0.3,), 0.0, ""),
            Factor(2, 0, 1, (2.0,), -0.9, "slash"),
            Factor(3, None, 1, (2.0,), -0.5, ""),
        ),
        predictors=(("uniform", 100.0, 0.0), ("uniform", 1.0, 10.0)),
        sigma=0.3,
    )
    ml = _ours(case)
    assert ml.converged
    assert ml.loglik >= -83.43546183574415 - 1e-4
    np.testing.assert_allclose(ml.beta, [11.509367, -0.01278107, -0.71311467], atol=1e-3)


def test_pinned_vector_term_at_zero_intercept_sd_after_polish():
    """(1 + x1 | g0) with a true intercept SD of 0 beside (1 | g0:g1) + (1 | g2), Poisson with
    offset, x1 off-centre (found by the seeded slow property run).  L-BFGS-B stopped on the
    face SD(g0:g1) = 0; the Newton polish left that face and ran out of rounds with max|grad|
    49.5, 0.868 below glmm, reported unconverged.  Fixed twice over: a polish that ends with a
    projected gradient above 1e-3 hands back to L-BFGS-B (``_CYCLE_GTOL``), and theta lives on
    centred and scaled columns of Z.  glmm 0.6.2: -828.4817020292933."""
    case = Case(
        seed=0,
        family="poisson_offset",
        link="log",
        n=533,
        factors=(
            Factor(49, None, 2, (0.0, 0.3), 0.5, ""),
            Factor(3, 0, 1, (0.3,), -0.9, "slash"),
            Factor(3, None, 1, (1.0,), 0.0, ""),
        ),
        predictors=(("normal", 1.0, 0.0), ("normal", 1.0, 10.0), ("uniform", 100.0, 0.0)),
        sigma=0.3,
    )
    ml = _ours(case)
    assert ml.converged
    assert ml.loglik >= -828.4817020292933 - 1e-4
