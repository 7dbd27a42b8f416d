"""The design stage: one frame, dropped rows counted, aliased columns, blocks, new data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.design import build_design, encode_new_data


def test_polls_drops_178_rows():
    with pytest.warns(
        bg.DroppedRowsWarning, match=r"dropped 178 of 2193 rows .*\(bush: 178\); 2015 rows used"
    ):
        d = build_design(
            "bush ~ black + female + (1 | state)", bg.datasets.load("polls"), "bernoulli"
        )
    assert d.n == 2015 and d.n_dropped == 178 and d.blocks[0].n_levels == 49
    assert len(d.row_index) == 2015


def test_aliased_column_dropped_and_named():
    df = pd.DataFrame(
        {"y": [0, 1, 0, 1, 1, 0] * 5, "x": np.arange(30.0), "g": np.repeat(np.arange(6), 5)}
    )
    df["x2"] = 2 * df["x"]
    with pytest.warns(bg.RankDeficiencyWarning, match=r"dropping 1 column\(s\): x2"):
        d = build_design("y ~ x + x2 + (1 | g)", df, "bernoulli")
    assert d.x_names == ("(Intercept)", "x") and d.dropped_columns == ("x2",)


def test_frozen_and_index_blocks():
    d = build_design(
        "outcome ~ treatment * time + (1 | patientID)", bg.datasets.load("toenail"), "bernoulli"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.y = None  # type: ignore[misc]
    b = d.blocks[0]
    assert b.Z.shape == (1908, 1) and b.index.dtype == np.int64
    assert b.index.min() == 0 and b.index.max() == b.n_levels - 1 == 293
    assert d.x_names == ("(Intercept)", "treatmentterbinafine", "time", "treatmentterbinafine:time")
    assert d.success_level == "moderate or severe"


def test_cbind_offset_nesting_and_double_bar():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "s": rng.integers(0, 5, 40),
            "f": rng.integers(0, 5, 40),
            "x": rng.normal(size=40),
            "a": np.repeat(list("ABCDEFGH"), 5),
            "b": np.tile(["u", "v"], 20),
            "w": rng.uniform(1, 2, 40),
        }
    )
    d = build_design("cbind(s, f) ~ x + offset(log(w)) + (1 | a/b)", df, "binomial")
    np.testing.assert_array_equal(d.trials, df.s + df.f)
    np.testing.assert_allclose(d.offset, np.log(df.w))
    assert [b.group for b in d.blocks] == ["a", "a:b"] and d.blocks[1].n_levels == 16
    d2 = build_design("s ~ x + (1 + C(b) || a)", df, "poisson")
    assert d2.blocks[0].terms == ("(Intercept)", "C(b)v") and not d2.blocks[0].correlated
    d3 = build_design("p ~ x + (1 | a)", df.assign(p=df.s / 4, n=4), "binomial", trials="n")
    np.testing.assert_array_equal(d3.y, df.s)


@pytest.mark.parametrize("dtype", ["int", "str", "category"])
def test_group_dtypes(dtype):
    df = pd.DataFrame({"y": np.arange(12) % 3, "g": np.repeat([3, 1, 2, 10], 3)})
    df["g"] = df["g"].astype(dtype)
    d = build_design("y ~ 1 + (1 | g)", df, "poisson")
    expect = ["1", "2", "3", "10"] if dtype == "int" else sorted(["3", "1", "2", "10"])
    if dtype == "category":
        expect = [str(c) for c in df["g"].cat.categories]
    assert list(d.blocks[0].levels) == expect


def test_encode_new_data_flags_unseen_levels():
    df = bg.datasets.load("rikz")
    d = build_design("Richness ~ NAP + (1 | Beach)", df, "poisson")
    same = encode_new_data(d, df)
    np.testing.assert_array_equal(same.X, d.X)
    np.testing.assert_array_equal(same.index[0], d.blocks[0].index)
    new = df.head(3).assign(Beach=[1, 77, 77])
    nd = encode_new_data(d, new)
    assert list(nd.index[0]) == [0, -1, -1] and list(nd.new_levels[0]) == ["77"]
    with pytest.raises(bg.DesignError, match="missing column\\(s\\) `NAP`"):
        encode_new_data(d, df[["Beach"]])


@pytest.mark.parametrize(
    "family,y,match",
    [
        ("poisson", [0, 1.5, 2, 3], "non-negative integer counts; found 1.5"),
        ("poisson", [0, -1, 2, 3], "non-negative integer counts; found -1"),
        ("bernoulli", [0, 1, 2, 1], "must be 0/1 for the bernoulli family; found 2"),
        ("bernoulli", ["a", "b", "c", "a"], "exactly two levels for the bernoulli family; found 3"),
    ],
)
def test_response_validation(family, y, match):
    df = pd.DataFrame({"y": y, "g": [1, 2, 3, 4]})
    with pytest.raises(bg.DataError, match=match):
        build_design("y ~ 1 + (1 | g)", df, family)


def test_unknown_column_suggests():
    with pytest.raises(
        bg.FormulaError, match="unknown column `treatmnt` .*did you mean `treatment`"
    ):
        build_design(
            "outcome ~ treatmnt + (1 | patientID)", bg.datasets.load("toenail"), "bernoulli"
        )


def test_one_level_group_errors_few_levels_warn():
    df = pd.DataFrame({"y": [1, 2, 3, 4], "g": [1, 1, 1, 1], "h": [1, 2, 1, 2]})
    with pytest.raises(bg.DesignError, match="only one level"):
        build_design("y ~ 1 + (1 | g)", df, "poisson")
    with pytest.warns(bg.IdentifiabilityWarning, match="only 2 levels"):
        build_design("y ~ 1 + (1 | h)", df, "poisson")
