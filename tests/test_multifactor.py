"""Several grouping factors (crossed, nested) and vector-valued terms in the ML Laplace
engine: the blocked Cholesky of ``A' W A + I`` (:mod:`bayesglmm.engines.ml.blocked_cholesky`)
and the analytic gradient of the Laplace deviance.

References: lme4's tests/elston.R (grouseticks, three factors, nested and crossed; its
deviance function at lme4's estimates, 1780.5427072, and lme4's estimates), and the `glmm`
package (Rust, lme4's Laplace deviance) run on the same data in the test.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from bayesglmm.cli import main
from bayesglmm.design.build import build_design
from bayesglmm.design.types import RandomBlock
from bayesglmm.engines.ml import blocked_cholesky as bc
from bayesglmm.engines.ml.blocked_cholesky import BlockedStructure
from bayesglmm.engines.ml.laplace import LaplaceObjective, fit_ml
from bayesglmm.errors import InferenceError

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = Path(__file__).parents[1] / "models"
GROUSE_FORMULA = "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"


def _grouseticks() -> pd.DataFrame:
    df = pd.read_csv(FIXTURES / "grouseticks.csv")
    for c in ("INDEX", "BROOD", "YEAR", "LOCATION"):
        df[c] = df[c].astype(str)
    return df


def _fit(design, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_ml(design, **kw)


# ---------------------------------------------------------------------- the factorization
def _small_blocks(n: int = 300, seed: int = 1) -> tuple[RandomBlock, ...]:
    """A vector term on a small factor, a scalar term nested in a third factor that carries a
    correlated slope: crossed and nested at once, blocks deliberately not ordered by size."""
    rng = np.random.default_rng(seed)
    ga = rng.integers(0, 40, n)
    gb = rng.integers(0, 7, n)
    gc = ga * 3 + rng.integers(0, 3, n)  # nested in a
    x = rng.normal(size=n)

    def blk(name, idx, Z):
        L = int(idx.max()) + 1
        terms = tuple(f"t{j}" for j in range(Z.shape[1]))
        return RandomBlock(name, terms, Z, idx.astype(np.int64), tuple(map(str, range(L))))

    return (
        blk("b", gb, np.column_stack([np.ones(n), x])),
        blk("c", gc, np.ones((n, 1))),
        blk("a", ga, np.column_stack([np.ones(n), x])),
    )


def _nested_blocks(p: int, n: int = 300, seed: int = 4) -> tuple[RandomBlock, ...]:
    """``(x | a) + (x | a:c)`` (``p = 2``) or ``(1 | a) + (1 | a:c)``: two factors, the larger
    nested in the other, so the Schur complement stays block diagonal."""
    rng = np.random.default_rng(seed)
    ga = rng.integers(0, 30, n)
    gc = ga * 4 + rng.integers(0, 4, n)
    Z = np.column_stack([np.ones(n), rng.normal(size=n)])[:, :p]
    terms = ("(Intercept)", "x")[:p]
    return (
        RandomBlock("a", terms, Z, ga.astype(np.int64), tuple(map(str, range(30)))),
        RandomBlock("a:c", terms, Z, gc.astype(np.int64), tuple(map(str, range(120)))),
    )


def _three_nested_blocks(n: int = 300, seed: int = 5) -> tuple[RandomBlock, ...]:
    """grouseticks' shape: an observation-level factor, nested in broods (40), crossed with
    locations (9, not nested): the Schur complement's brood block stays diagonal."""
    rng = np.random.default_rng(seed)
    brood = rng.integers(0, 40, n)
    loc = (brood % 8 + rng.integers(0, 2, n)).astype(np.int64)
    one = np.ones((n, 1))
    return (
        RandomBlock(
            "brood",
            ("(Intercept)",),
            one,
            brood.astype(np.int64),
            tuple(f"b{i}" for i in range(40)),
        ),
        RandomBlock(
            "index", ("(Intercept)",), one, np.arange(n, dtype=np.int64), tuple(map(str, range(n)))
        ),
        RandomBlock("loc", ("(Intercept)",), one, loc, tuple(map(str, range(9)))),
    )


FACTORS = {1: np.array([[1.3]]), 2: np.array([[0.9, 0.0], [-0.5, 0.4]])}


@pytest.mark.parametrize("scale", [0.0, 1e-3, 1.0, 30.0, 1e3])
@pytest.mark.parametrize(
    "shape", ["crossed_nested", "nested_vector", "nested_scalar", "three_nested_scalar"]
)
@pytest.mark.parametrize("coupling", ["pattern", "dense", "dense_chunks"])
def test_blocked_factor_matches_dense(scale, shape, coupling, monkeypatch):
    # the coupling block L21 pair by pair on its pattern, or as dense level chunks for
    # BLAS (one chunk, or chunks of a few levels): the same factor either way
    monkeypatch.setattr(bc, "DENSE_SPEEDUP", 0.0 if coupling == "pattern" else np.inf)
    if coupling == "dense_chunks":
        monkeypatch.setattr(bc, "DENSE_CHUNK", 7 * 20)
    if shape == "crossed_nested":
        blocks = _small_blocks()
    elif shape == "three_nested_scalar":
        blocks = _three_nested_blocks()
    else:
        blocks = _nested_blocks(2 if shape == "nested_vector" else 1)
    n = blocks[0].index.size
    st = BlockedStructure(blocks, n)
    if coupling == "pattern" or st.bs:  # nested: block-diagonal Schur, always the pattern
        assert st.dense_chunk == 0
    else:
        assert st.dense_chunk == (st.L1 if coupling == "dense" else max(1, 140 // (st.p1 * st.q2)))
    if shape == "crossed_nested":
        assert [blocks[b].group for b in st.order] == ["c", "a", "b"]  # most levels first
        assert st.bs == 0  # dense Schur complement
        # c is nested in a: a's block of the Schur complement is (2 x 2)-block diagonal
        assert (st.bs2, st.k2) == (2, 80)
    elif shape == "three_nested_scalar":
        assert [blocks[b].group for b in st.order] == ["index", "brood", "loc"]
        assert st.bs == 0 and (st.bs2, st.k2) == (1, 40)
    else:
        assert [blocks[b].group for b in st.order] == ["a:c", "a"]
        assert st.bs == blocks[0].n_terms  # block-diagonal Schur complement
    rng = np.random.default_rng(2)
    st.set_factors([scale * FACTORS[b.n_terms] for b in blocks])
    w = rng.uniform(0.1, 2.0, n)
    F = st.factor(w)
    A = st.sparse_a().toarray()
    M = A.T @ (w[:, None] * A) + np.eye(st.q)
    np.testing.assert_allclose(F.M.toarray(), M, rtol=1e-13, atol=1e-13)
    ld = np.linalg.slogdet(M)[1]
    assert abs(F.logdet() - ld) <= 1e-10 * max(1.0, abs(ld))
    b = rng.normal(size=(st.q, 3))
    x = F.solve(b)
    ref = np.linalg.solve(M, b)
    cond = np.linalg.cond(M)
    # solves agree to 1e-10 relative, up to the conditioning of M itself (1e12 at scale 1e3)
    tol = 1e-10 if cond < 1e4 else 1e-14 * cond
    assert np.max(np.abs(x - ref)) <= tol * np.max(np.abs(ref))
    np.testing.assert_allclose(F.solve(b[:, 0]), x[:, 0], rtol=0, atol=1e-14 * np.abs(x).max())
    # backward error of the blocked solve is at rounding level whatever the conditioning
    assert np.max(np.abs(M @ x - b)) <= 1e-12 * np.abs(M).max() * np.abs(x).max()
    # diagonal blocks of M^-1 and the selected inverse on every row's term pairs
    Minv = np.linalg.inv(M)
    atol = max(1e-10, 1e-14 * cond)
    off = 0
    for blk, inv in zip(blocks, F.inv_blocks(), strict=True):
        p = blk.n_terms
        for lev in range(blk.n_levels):
            s = slice(off + lev * p, off + (lev + 1) * p)
            np.testing.assert_allclose(inv[lev], Minv[s, s], rtol=0, atol=atol)
        off += p * blk.n_levels
    sel = F.selected_inverse()[st.slots]
    ref_sel = Minv[st.cols_ext[:, st.pair_t], st.cols_ext[:, st.pair_u]]
    np.testing.assert_allclose(sel, ref_sel, rtol=0, atol=atol)
    # L^-T maps N(0, I) to N(0, M^-1): L^-T L^-1 = M^-1
    e = rng.normal(size=st.q)
    v = F.solve_lt(e)
    np.testing.assert_allclose(v @ M @ v, e @ e, rtol=1e-8)


def test_theta_zero_is_identity():
    blocks = _small_blocks()
    st = BlockedStructure(blocks, blocks[0].index.size)
    st.set_factors([np.zeros((2, 2)), np.zeros((1, 1)), np.zeros((2, 2))])
    F = st.factor(np.full(blocks[0].index.size, 1e6))
    assert F.logdet() == 0.0
    b = np.arange(st.q, dtype=float)
    np.testing.assert_array_equal(F.solve(b), b)


def test_schur_complement_limit_is_a_clear_error(monkeypatch):

    monkeypatch.setattr(bc, "MAX_DENSE_SCHUR", 10)
    blocks = _small_blocks()
    with pytest.raises(InferenceError, match="dense Schur complement is limited to 10"):
        BlockedStructure(blocks, blocks[0].index.size)
    # two nested factors keep a block-diagonal Schur complement: no limit
    nested = _nested_blocks(2)
    assert BlockedStructure(nested, nested[0].index.size).q2 == 60


# ---------------------------------------------------------------------- gradient
def _sim_crossed(n=2000, seed=0, link=None):
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 100, n)
    g2 = rng.integers(0, 12, n)
    x1 = rng.normal(size=n)
    b0, b1, c = rng.normal(size=(3, 100))
    eta = 0.3 * x1 + 0.8 * b0[g1] + 0.5 * b1[g1] * x1 + rng.normal(size=12)[g2]
    y = (rng.random(n) < expit(eta)).astype(int)
    return pd.DataFrame({"y": y, "x1": x1, "g": np.char.mod("g%d", g1), "h": g2.astype(str)})


@pytest.mark.parametrize(
    "formula",
    ["y ~ x1 + (1 + x1 | g)", "y ~ x1 + (1 + x1 | g) + (1 | h)", "y ~ x1 + (x1 || g) + (1 | h)"],
)
def test_analytic_gradient_matches_differences(formula):
    d = build_design(formula, _sim_crossed(), "bernoulli")
    obj = LaplaceObjective(d)
    assert obj.analytic
    rng = np.random.default_rng(3)
    nt = obj.n_theta
    x = np.concatenate(
        [np.where(obj.lower[:nt] == 0, 0.3, -0.2) + 0.5 * rng.random(nt), [0.1, 0.2]]
    )
    _, g = obj.deviance_grad(x)
    fd = obj._fd_gradient(x, 1)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-5)


def test_analytic_gradient_non_canonical_link():
    d = build_design("y ~ x1 + (x1 || g) + (1 | h)", _sim_crossed(), "bernoulli", link="probit")
    obj = LaplaceObjective(d)
    x = np.array([0.8, 0.5, 0.6, 0.1, 0.2])
    _, g = obj.deviance_grad(x)
    fd = obj._fd_gradient(x, 1, h=1e-3)  # the probit mode is less exact: a larger step
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-3)


def test_grouseticks_gradient_matches_differences():
    d = build_design(GROUSE_FORMULA, _grouseticks(), "poisson")
    obj = LaplaceObjective(d)
    x = np.array([0.6, 0.7, 0.45, 11.0, 1.1, -1.0, -0.023])
    _, g = obj.deviance_grad(x)
    fd = obj._fd_gradient(x, 1)
    # HEIGHT (~465) makes its coordinate's curvature ~1e8: the differences' own error is ~1e-5
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------- grouseticks
# lme4 tests/elston.R: estimates (c1, allcoefs1) and the deviance function at them
LME4_THETA = {"INDEX": 0.541509425632023, "BROOD": 0.750034415832756, "LOCATION": 0.528723159081737}
LME4_BETA = [11.3559080756861, 1.1804105508475, -0.978704335712111, -0.0237607330254979]
LME4_VAR = {"INDEX": 0.293232458048324, "BROOD": 0.562551624933584, "LOCATION": 0.279548178949372}
LME4_DEV = 1780.5427072


def test_grouseticks_deviance_at_lme4_estimates():
    """Our Laplace deviance is lme4's deviance function: 1780.5427072 at lme4's estimates
    (elston.R ``stopifnot(all.equal(1780.5427072, mm(allcoefs1), tol = 1e-7))``)."""
    d = build_design(GROUSE_FORMULA, _grouseticks(), "poisson")
    assert d.x_names == ("(Intercept)", "YEAR96", "YEAR97", "HEIGHT")
    obj = LaplaceObjective(d)
    theta = np.array([LME4_THETA[b.group] for b in d.blocks])
    dev = obj.deviance(np.concatenate([theta, LME4_BETA]))
    assert abs(dev - LME4_DEV) < 1e-7 * LME4_DEV


def test_grouseticks_fit_lme4_and_glmm():
    """The crash of the issue (splu: "Factor is exactly singular"): now fits, at lme4's
    estimates and at glmm's log-likelihood."""
    df = _grouseticks()
    d = build_design(GROUSE_FORMULA, df, "poisson")
    fit = _fit(d)
    assert fit.converged and not fit.singular
    np.testing.assert_allclose(fit.beta, LME4_BETA, atol=1e-3)
    for b, cov in zip(d.blocks, fit.covariances, strict=True):
        assert abs(cov[0, 0] - LME4_VAR[b.group]) < 1e-3
    assert -2 * fit.loglik <= LME4_DEV + 1e-4  # lme4 stopped at this deviance
    glmm = pytest.importorskip("glmm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = glmm.fit(df, GROUSE_FORMULA, family="poisson")
    assert fit.loglik >= peer.loglik - 1e-4
    np.testing.assert_allclose(fit.beta, np.asarray(peer.beta, dtype=float), atol=1e-3)


# ---------------------------------------------------------------------- against glmm
def _nested(n=3000, seed=7):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 40, n)
    b = rng.integers(0, 8, n)
    x = rng.normal(size=n)
    eta = 0.1 + 0.4 * x + 0.7 * rng.normal(size=40)[a] + 0.6 * rng.normal(size=(40, 8))[a, b]
    y = (rng.random(n) < expit(eta)).astype(int)
    return pd.DataFrame({"y": y, "x1": x, "a": np.char.mod("a%d", a), "b": np.char.mod("b%d", b)})


def _slope(n=4000, groups=150, seed=11):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    C = np.array([[0.8, 0.25], [0.25, 0.5]])
    b = rng.multivariate_normal([0.0, 0.0], C, groups)
    y = rng.poisson(np.exp(0.2 + 0.3 * x + b[g, 0] + b[g, 1] * x))
    return pd.DataFrame({"y": y, "x1": x, "g": np.char.mod("g%d", g)})


def _subject_item(seed=5):
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(60), 12)
    it = np.tile(np.arange(12), 60)
    x = rng.normal(size=s.size)
    eta = -0.3 + 0.5 * x + 1.2 * rng.normal(size=60)[s] + 0.6 * rng.normal(size=12)[it]
    y = (rng.random(s.size) < expit(eta)).astype(int)
    return pd.DataFrame({"y": y, "x1": x, "subj": np.char.mod("s%d", s), "item": it.astype(str)})


@pytest.mark.parametrize(
    ("data", "formula", "peer_formula", "family"),
    [
        (_subject_item, "y ~ x1 + (1 | subj) + (1 | item)", None, "bernoulli"),
        (_nested, "y ~ x1 + (1 | a / b)", "y ~ x1 + (1 | a) + (1 | a:b)", "bernoulli"),
        (_slope, "y ~ x1 + (1 + x1 | g)", None, "poisson"),
    ],
    ids=["crossed", "nested", "correlated_slope"],
)
def test_agrees_with_glmm(data, formula, peer_formula, family):
    glmm = pytest.importorskip("glmm")
    df = data()
    d = build_design(formula, df, family)
    fit = _fit(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = glmm.fit(
            df, peer_formula or formula, family="binomial" if family == "bernoulli" else family
        )
    assert fit.converged
    assert fit.loglik >= peer.loglik - 1e-4
    np.testing.assert_allclose(fit.beta, np.asarray(peer.beta, dtype=float), atol=1e-3)


# ---------------------------------------------------------------------- CLI
def test_cli_pql_rikz_olre_no_longer_crashes(capsys):
    """``bayesglmm fit models/rikz_poisson_olre.toml`` exited 1 in PQL (splu singular)."""
    assert main(["fit", str(MODELS / "rikz_poisson_olre.toml"), "--methods", "pql"]) == 0
    assert "sd(Sample: (Intercept))" in capsys.readouterr().out


@pytest.mark.parametrize("family", ["bernoulli", "binomial", "poisson"])
def test_fused_rows_match_the_family_and_the_scalar_rows(family):
    # the blocked PIRLS pass (eta, then NumPy's vectorized exp/log, then one Numba pass
    # that also accumulates M and A' d1) against the NumPy family kernel, the scalar row
    # kernel and a direct M = A' W A + I, at ordinary and extreme linear predictors
    from bayesglmm.engines.ml.family_kernel import FamilyKernel
    from bayesglmm.engines.ml.scalar_laplace import KIND_CODES, _row, row_exps
    from bayesglmm.families import get_family

    blocks = _small_blocks()
    n = blocks[0].index.size
    rng = np.random.default_rng(11)
    st = BlockedStructure(blocks, n)
    st.set_factors([FACTORS[b.n_terms] for b in blocks])
    trials = rng.integers(1, 6, n).astype(float) if family == "binomial" else None
    if family == "poisson":
        y = rng.poisson(2.0, n).astype(float)
    else:
        y = rng.binomial(1 if trials is None else trials.astype(int), 0.4, n).astype(float)
    fam = FamilyKernel(get_family(family), y, trials)
    u = rng.normal(size=st.q)
    ef = rng.normal(size=n) * 3.0
    # overflow guards: exp(-|eta|) (logit); exp(min(eta, 700)) (log, whose weights at
    # eta = 800 would make M singular, so only underflow here)
    ef[:4] = [-800.0, -40.0, 8.0, 5.0] if family == "poisson" else [800.0, -800.0, 40.0, -40.0]
    eta, ll, d1, w = st.rows_at(fam, ef, u)
    np.testing.assert_allclose(eta, ef + st.au(u), rtol=1e-14, atol=1e-12)
    fll, fd1, fw = fam.full(eta)
    finite = np.abs(eta) < 700.0
    np.testing.assert_allclose(ll[finite], fll[finite], rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(d1, fd1, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(w[finite], fw[finite], rtol=1e-13, atol=1e-300)
    code = KIND_CODES[fam.kind]
    ntr = np.ones(n) if trials is None else trials
    scalar = np.array([_row(code, y[i], ntr[i], eta[i])[:3] for i in range(n)])
    np.testing.assert_array_equal(np.column_stack([ll, d1, w]), scalar)
    assert row_exps(code, eta)[0].shape == (n,)
    F = st.factor(w)  # the slots accumulated in the same pass
    A = st.sparse_a().toarray()
    M = A.T @ (w[:, None] * A) + np.eye(st.q)
    np.testing.assert_allclose(F.M.toarray(), M, rtol=1e-13, atol=1e-13)
    assert abs(F.logdet() - np.linalg.slogdet(M)[1]) <= 1e-9 * abs(np.linalg.slogdet(M)[1])
    np.testing.assert_allclose(st.atv(d1), A.T @ d1, rtol=1e-12, atol=1e-9)
    st._fuse = False  # the unfused pass (a large dense Schur complement) gives the same rows
    for got, ref in zip(st.rows_at(fam, ef, u), (eta, ll, d1, w), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-12)
