"""The design stage: one frame, dropped rows counted, aliased columns, blocks, new data.

One test per item of the design contract (issue "Core" §2).
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.design.build import build_design, encode_new_data
from bayesglmm.design.types import Design, RandomBlock

# every bayesglmm warning a test does not expect is a failure
pytestmark = pytest.mark.filterwarnings("error::bayesglmm.BayesGLMMWarning")


def _quiet(*args, **kwargs) -> Design:
    """build_design with bayesglmm warnings silenced (for tests about something else)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        return build_design(*args, **kwargs)


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "y": rng.poisson(2.0, n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "f": np.tile(["lo", "mid", "hi"], n)[:n],
            "g": np.repeat(np.arange(n // 5), 5)[:n],
            "w": rng.uniform(1.0, 2.0, n),
        }
    )


# --------------------------------------------------------------------------- one frame
def test_one_frame_rows_agree_across_parts():
    """NA anywhere (response, fixed, random lhs, group, offset) drops the row from all parts."""
    df = _frame()
    df.loc[1, "y"] = np.nan
    df.loc[5, "x"] = np.nan
    df.loc[9, "z"] = np.inf
    df.loc[13, "g"] = np.nan
    df.loc[17, "w"] = np.nan
    with pytest.warns(bg.DroppedRowsWarning, match=r"dropped 5 of 40 rows"):
        d = _quiet_groups(build_design, "y ~ x + offset(log(w)) + (1 + z | g)", df, "poisson")
    keep = np.setdiff1d(np.arange(40), [1, 5, 9, 13, 17])
    np.testing.assert_array_equal(d.row_index, keep)
    assert d.n == 35 == d.X.shape[0] == d.offset.shape[0] == d.blocks[0].Z.shape[0]
    np.testing.assert_array_equal(d.y, df["y"].to_numpy()[keep])
    np.testing.assert_allclose(d.X[:, 1], df["x"].to_numpy()[keep])
    np.testing.assert_allclose(d.blocks[0].Z[:, 1], df["z"].to_numpy()[keep])
    np.testing.assert_allclose(d.offset, np.log(df["w"].to_numpy()[keep]))
    # the design owns its arrays: changing the data afterwards does not change it
    before = d.X.copy()
    df.loc[:, "x"] = 0.0
    np.testing.assert_array_equal(d.X, before)


def _quiet_groups(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.IdentifiabilityWarning)
        return fn(*args, **kwargs)


def test_polls_drops_178_rows(load):
    with pytest.warns(
        bg.DroppedRowsWarning,
        match=re.escape("dropped 178 of 2193 rows with missing or non-finite values (bush: 178)"),
    ) as rec:
        d = build_design("bush ~ black + female + (1 | state)", load("polls"), "bernoulli")
    assert "2015 rows used" in str(rec[0].message)
    assert d.n == 2015 and d.n_input == 2193 and d.n_dropped == 178
    assert d.blocks[0].n_levels == 49
    assert len(d.row_index) == 2015


# --------------------------------------------------------------------------- fixed part
def test_rank_deficient_column_dropped_and_named():
    df = _frame()
    df["x2"] = 2 * df["x"]
    with pytest.warns(
        bg.RankDeficiencyWarning,
        match=re.escape("fixed-effect model matrix is rank deficient so dropping 1 column(s): x2"),
    ):
        d = build_design("y ~ x + x2 + (1 | g)", df, "poisson")
    assert d.x_names == ("(Intercept)", "x") and d.dropped_columns == ("x2",)
    assert d.X.shape == (40, 2)


def test_r_style_names_toenail(load):
    d = build_design("outcome ~ treatment * time + (1 | patientID)", load("toenail"), "bernoulli")
    assert d.x_names == (
        "(Intercept)",
        "treatmentterbinafine",
        "time",
        "treatmentterbinafine:time",
    )
    assert d.blocks[0].terms == ("(Intercept)",) and d.blocks[0].group == "patientID"


# --------------------------------------------------------------------------- frozen, no dense Z
def test_design_is_frozen(load):
    d = build_design("outcome ~ treatment * time + (1 | patientID)", load("toenail"), "bernoulli")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.y = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.blocks[0].index = None  # type: ignore[misc]
    assert isinstance(d.blocks, tuple) and isinstance(d.x_names, tuple)


def test_blocks_are_indexed_never_dense(load):
    d = build_design("outcome ~ treatment * time + (1 | patientID)", load("toenail"), "bernoulli")
    b = d.blocks[0]
    assert isinstance(b, RandomBlock)
    assert b.Z.shape == (1908, 1) and b.n_levels == 294
    assert b.index.dtype == np.int64 and b.index.shape == (1908,)
    assert b.index.min() == 0 and b.index.max() == b.n_levels - 1
    assert set(np.unique(b.index)) == set(range(b.n_levels))  # every level used
    arrays = [v for v in vars(d).values() if isinstance(v, np.ndarray)]
    arrays += [v for blk in d.blocks for v in vars(blk).values() if isinstance(v, np.ndarray)]
    assert all(b.n_levels not in a.shape for a in arrays)


# --------------------------------------------------------------------------- responses
def test_cbind_response_trials_are_sum():
    df = _frame().assign(s=lambda d: d.y, f=lambda d: (d.y * 3) % 4)
    d = _quiet("cbind(s, f) ~ x + (1 | g)", df, "binomial")
    np.testing.assert_array_equal(d.y, df.s)
    np.testing.assert_array_equal(d.trials, df.s + df.f)
    assert d.response_name == "cbind(s, f)"


def test_cbind_with_expression_failures():
    """``cbind(s, n - s)``: the failures are the difference (not ``n`` with ``s`` removed)."""
    df = _frame().assign(s=lambda d: d.y, n=lambda d: d.y + 3)
    d = _quiet("cbind(s, n - s) ~ x + (1 | g)", df, "binomial")
    np.testing.assert_array_equal(d.trials, df.n)


def test_proportion_response_with_trials():
    df = _frame().assign(n=4, p=lambda d: (d.y % 5) / 4)
    d = _quiet("p ~ x + (1 | g)", df, "binomial", trials="n")
    np.testing.assert_array_equal(d.y, df.y % 5)
    np.testing.assert_array_equal(d.trials, np.full(40, 4.0))


def test_proportion_with_trials_array_follows_dropped_rows():
    df = _frame().assign(p=lambda d: (d.y % 5) / 4)
    df.index = df.index + 100  # labels are not positions
    df.loc[103, "x"] = np.nan
    n = np.arange(40) % 3 + 4.0
    df["p"] = np.round(df["p"] * n) / n
    with pytest.warns(bg.DroppedRowsWarning):
        d = _quiet_groups(build_design, "p ~ x + (1 | g)", df, "binomial", trials=n)
    np.testing.assert_array_equal(d.trials, np.delete(n, 3))


def test_offset_log_weeks_epilepsy(load):
    ep = load("epilepsy")
    d = build_design("y ~ trt + offset(log(weeks)) + (1 | subject)", ep, "poisson")
    np.testing.assert_allclose(d.offset, np.log(ep["weeks"].to_numpy()))
    assert d.x_names == ("(Intercept)", "trtprogabide")
    np.testing.assert_array_equal(d.y, ep["y"])


def test_offset_expression_is_evaluated_whole():
    df = _frame()
    d = _quiet("y ~ x + offset(log(w) - z) + (1 | g)", df, "poisson")
    np.testing.assert_allclose(d.offset, np.log(df.w) - df.z)


def test_two_level_string_response_second_sorted_level_is_success():
    df = _frame().assign(r=lambda d: np.where(d.y > 1, "yes", "no"))
    d = _quiet("r ~ x + (1 | g)", df, "bernoulli")
    assert d.success_level == "yes"  # sorted: "no" < "yes"
    np.testing.assert_array_equal(d.y, (df.r == "yes").astype(float))


def test_two_level_categorical_response_uses_category_order(load):
    tn = load("toenail")
    d = build_design("outcome ~ treatment * time + (1 | patientID)", tn, "bernoulli")
    assert d.success_level == "moderate or severe"  # second category, not sorted order
    np.testing.assert_array_equal(d.y, (tn.outcome == "moderate or severe").astype(float))


def test_numeric_response_has_no_success_level(load):
    d = build_design("bush ~ 1 + (1 | state)", load("polls").dropna(subset=["bush"]), "bernoulli")
    assert d.success_level is None


@pytest.mark.parametrize(
    ("family", "y", "message"),
    [
        ("poisson", [0, 1.5, 2, 3, 4], "`y` must hold non-negative integer counts; found 1.5"),
        ("bernoulli", [0, 1, 2, 1, 0], "response `y` must be 0/1 for the bernoulli family"),
        ("binomial", [0, 1, 0, 1, 0], "family='binomial' needs cbind(successes, failures)"),
        ("gaussian", [0.5, np.inf, 2, 3, 4], "response `y` must be finite; found inf at row 1"),
    ],
)
def test_every_family_validates_its_response(family, y, message):
    df = pd.DataFrame({"y": y, "g": [1, 2, 3, 4, 5]})
    with pytest.raises(bg.DataError, match=re.escape(message)):
        build_design("y ~ 1 + (1 | g)", df, family)


@pytest.mark.parametrize(
    ("family", "y"),
    [
        ("poisson", [0, 1, 2, 3, 9]),
        ("bernoulli", [0, 1, 1, 0, 1]),
        ("gaussian", [0.5, -1, 2, 3, 4]),
    ],
)
def test_every_family_accepts_valid_response(family, y):
    y = y * 2
    d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": [1, 2, 3, 4, 5] * 2}), family)
    np.testing.assert_array_equal(d.y, np.asarray(y, dtype=float))
    assert d.family.name == family


# --------------------------------------------------------------------------- random blocks
def test_nested_expansion_levels_rikz(load):
    rikz = load("rikz")
    d = build_design("Richness ~ NAP + (1 | Beach/Sample)", rikz, "poisson")
    assert [b.group for b in d.blocks] == ["Beach", "Beach:Sample"]
    assert d.blocks[0].levels == tuple(str(i) for i in range(1, 10))
    assert d.blocks[1].n_levels == 45
    expect = (rikz.Beach.astype(str) + ":" + rikz.Sample.astype(str)).tolist()
    assert [d.blocks[1].levels[i] for i in d.blocks[1].index] == expect
    assert [d.blocks[0].levels[i] for i in d.blocks[0].index] == rikz.Beach.astype(str).tolist()


def test_double_bar_with_factor_splits_as_lme4():
    """lme4 (>= 1.1-36, default "split"): (1 + f || g) is (1 | g) + (0 + f | g), the factor's
    indicators correlated among themselves (lme4's expandDoubleVerts); diag(1 + f | g) is one
    diagonal block over the intercept and the contrasts."""
    df = _frame()
    d = _quiet("y ~ x + (0 + f || g)", df, "poisson")
    assert len(d.blocks) == 1
    b = d.blocks[0]
    assert b.correlated and b.n_terms == 3 and b.Z.shape == (40, 3)
    assert b.terms == ("fhi", "flo", "fmid")
    d2 = _quiet("y ~ x + (1 + f || g)", df, "poisson")
    assert [(b.terms, b.correlated) for b in d2.blocks] == [
        (("(Intercept)",), False),
        (("fhi", "flo", "fmid"), True),
    ]
    d3 = _quiet("y ~ x + (x | g)", df, "poisson")  # (x | g) = (1 + x | g)
    assert d3.blocks[0].terms == ("(Intercept)", "x") and d3.blocks[0].correlated
    d4 = _quiet("y ~ x + diag(1 + f | g)", df, "poisson")
    assert d4.blocks[0].terms == ("(Intercept)", "flo", "fmid") and not d4.blocks[0].correlated
    d5 = _quiet("y ~ x + (1 + x || g)", df, "poisson")  # numeric: one diagonal block
    assert len(d5.blocks) == 1 and d5.blocks[0].terms == ("(Intercept)", "x")
    assert not d5.blocks[0].correlated


@pytest.mark.parametrize("dtype", ["int", "str", "category"])
def test_group_dtypes(dtype):
    df = pd.DataFrame({"y": np.arange(15) % 3, "g": np.repeat([3, 1, 2, 10, 7], 3)})
    df["g"] = df["g"].astype(dtype)
    d = build_design("y ~ 1 + (1 | g)", df, "poisson")
    expect = {
        "int": ["1", "2", "3", "7", "10"],  # numeric order, as R's factor()
        "str": ["1", "10", "2", "3", "7"],  # string order
        "category": ["1", "2", "3", "7", "10"],  # category order (int categories sort)
    }[dtype]
    assert list(d.blocks[0].levels) == expect
    labels = [d.blocks[0].levels[i] for i in d.blocks[0].index]
    assert labels == df["g"].astype(str).tolist()


def test_categorical_group_keeps_category_order_and_drops_unused():
    g = pd.Categorical(
        np.repeat(["z", "b", "y", "a", "x"], 3), categories=["z", "unused", "y", "x", "b", "a"]
    )
    d = build_design("y ~ 1 + (1 | g)", pd.DataFrame({"y": np.arange(15) % 3, "g": g}), "poisson")
    assert d.blocks[0].levels == ("z", "y", "x", "b", "a")
    assert d.blocks[0].index.max() == 4


# --------------------------------------------------------------------------- new data
def test_encode_new_data_reproduces_design(load):
    rikz = load("rikz")
    d = build_design("Richness ~ NAP + (1 + NAP | Beach) + (1 | Beach:Exposure)", rikz, "poisson")
    nd = encode_new_data(d, rikz)
    np.testing.assert_array_equal(nd.X, d.X)
    np.testing.assert_array_equal(nd.offset, d.offset)
    for blk, z, idx, flags in zip(d.blocks, nd.Z, nd.index, nd.unseen, strict=True):
        np.testing.assert_array_equal(z, blk.Z)
        np.testing.assert_array_equal(idx, blk.index)
        assert not flags.any()


def test_encode_new_data_reproduces_design_with_factors_and_offset(load):
    ep = load("epilepsy")
    d = build_design("y ~ trt * period + offset(log(weeks)) + (1 | subject)", ep, "poisson")
    nd = encode_new_data(d, ep.sample(frac=1.0, random_state=1))
    order = ep.sample(frac=1.0, random_state=1).index.to_numpy()
    np.testing.assert_array_equal(nd.X, d.X[order])
    np.testing.assert_allclose(nd.offset, d.offset[order])
    np.testing.assert_array_equal(nd.index[0], d.blocks[0].index[order])


def test_encode_new_data_flags_unseen_levels(load):
    rikz = load("rikz")
    d = build_design("Richness ~ NAP + (1 | Beach)", rikz, "poisson")
    new = rikz.head(3).assign(Beach=[1, 77, 77])
    nd = encode_new_data(d, new)
    assert nd.index[0].tolist() == [0, -1, -1]
    assert nd.unseen[0].tolist() == [False, True, True]
    assert nd.new_levels[0] == ("77",)
    assert nd.n == 3 and nd.X.shape == (3, 2)
    # labels given as strings still find their level
    assert encode_new_data(d, new.assign(Beach=["2", "3", "9"])).index[0].tolist() == [1, 2, 8]


def test_encode_new_data_names_missing_columns(load):
    rikz = load("rikz")
    d = build_design("Richness ~ NAP + (1 | Beach)", rikz, "poisson")
    with pytest.raises(
        bg.DesignError,
        match=re.escape("newdata is missing column(s) `NAP` used by the formula"),
    ):
        encode_new_data(d, rikz[["Beach"]])
    # grouping columns are optional for population-level predictions
    nd = encode_new_data(d, rikz[["NAP"]], need_groups=False)
    assert nd.index[0].tolist() == [-1] * 45
