"""Hypothesis property tests of the parser and the design builder.

* Formulas drawn from a small lme4 grammar parse, and their expanded random terms are the
  expansion of the bars that were written (``a/b`` -> ``a``, ``a:b``) and reassemble into a
  formula that parses back to the same terms.
* Random data frames (random NaNs and infs, group labels of int or str dtype) give a design
  whose every block index is in ``range(n_levels)`` and points at the row's own label, with
  kept + dropped = input rows and every array of length ``n``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesglmm as bg
from bayesglmm.design.build import build_design, encode_new_data
from bayesglmm.formula.bars import RandomTerm, parse_formula

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- formula grammar
FIXED = ["x", "z", "x:z", "x*z", "C(a)", "I(x**2)", "log(w)", "a + x", "0", "- 1"]
LHS = ["1", "x", "1 + x", "0 + x", "x + z", "C(a)", "1 + I(x**2)"]
FACTORS = ["g", "h", "k", "site", "`my id`"]
RESPONSES = [("y", "y", None), ("cbind(s, f)", "s", "f"), ("cbind(s, n - s)", "s", "n - s")]
space = st.sampled_from(["", " ", "  "])


@st.composite
def groups(draw) -> tuple[str, list[tuple[str, ...]]]:
    """A grouping expression like ``g/h:k`` and its expansion into factor tuples."""
    parts = draw(
        st.lists(
            st.lists(st.sampled_from(FACTORS), min_size=1, max_size=2, unique=True),
            min_size=1,
            max_size=3,
        )
    )
    sp = draw(space)
    text = f"{sp}/{sp}".join(":".join(p) for p in parts)
    expansion, acc = [], []
    for p in parts:
        acc.extend(f.strip("`") for f in p)
        expansion.append(tuple(acc))
    return text, expansion


@st.composite
def bars(draw) -> tuple[str, list[RandomTerm]]:
    lhs = draw(st.sampled_from(LHS))
    bar = draw(st.sampled_from(["|", "||"]))
    group, expansion = draw(groups())
    sp1, sp2 = draw(space), draw(space)
    text = f"({sp1}{lhs}{sp2}{bar}{sp2}{group}{sp1})"
    terms = [RandomTerm(lhs, ":".join(fs), fs, correlated=bar == "|") for fs in expansion]
    return text, terms


@st.composite
def formulas(draw):
    response, successes, failures = draw(st.sampled_from(RESPONSES))
    fixed = draw(st.lists(st.sampled_from(FIXED), max_size=3, unique=True))
    random = draw(st.lists(bars(), min_size=1, max_size=3))
    offsets = draw(st.lists(st.sampled_from(["log(w)", "z"]), max_size=1))
    pieces = [("fixed", f) for f in fixed]
    pieces += [("random", r) for r in random]
    pieces += [("offset", o) for o in offsets]
    order = draw(st.permutations(pieces))
    sp = draw(space)
    text, expect_fixed, expect_random = "", [], []
    for i, (kind, item) in enumerate(order):
        sign = "" if i == 0 else f"{sp}+{sp}"
        if kind == "fixed":
            if item == "- 1":  # a removal is written with its own sign
                sign, item_text = (f"{sp}-{sp}" if i else "-"), "1"
                expect_fixed.append(("-", "1"))
            else:
                item_text = item
                expect_fixed.append(("+", item))
            text += sign + item_text
        elif kind == "random":
            text += sign + item[0]
            expect_random.extend(item[1])
        else:
            text += f"{sign}offset({item})"
    formula = f"{response}{sp}~{sp}{text}"
    fixed_str = " ".join(f"{s} {t}" for s, t in expect_fixed)
    fixed_str = fixed_str[2:] if fixed_str.startswith("+ ") else fixed_str
    return formula, (successes, failures, fixed_str or "1", tuple(offsets), expect_random)


@SETTINGS
@given(formulas())
def test_grammar_formulas_parse_to_their_expansion(case):
    formula, (successes, failures, fixed, offsets, random) = case
    p = parse_formula(formula)
    assert p.response == successes and p.failures == failures
    assert p.fixed == fixed
    assert p.offsets == offsets
    assert list(p.random) == random


@SETTINGS
@given(formulas())
def test_expanded_bars_reassemble(case):
    """The expanded terms, written back as bars, parse to the same terms (and nothing else)."""
    p = parse_formula(case[0])
    rebuilt = f"y ~ {p.fixed} + " + " + ".join(str(t) for t in p.random)
    q = parse_formula(rebuilt)
    assert q.random == p.random
    # every written bar is the union of its expansion: the last expanded term of a bar has
    # all of the bar's factors, and its label is the factors joined with ":"
    for t in p.random:
        assert t.group == ":".join(t.factors)
        assert str(t) == f"({t.expr} {'|' if t.correlated else '||'} {t.group})" or "`" in str(t)


# --------------------------------------------------------------------------- random data
@st.composite
def frames(draw):
    n = draw(st.integers(min_value=2, max_value=40))
    int_groups = draw(st.booleans())
    pool_g = draw(st.integers(min_value=2, max_value=8))
    pool_h = draw(st.integers(min_value=2, max_value=4))
    gvals = draw(st.lists(st.integers(0, pool_g - 1), min_size=n, max_size=n))
    hvals = draw(st.lists(st.integers(0, pool_h - 1), min_size=n, max_size=n))
    x = draw(
        st.lists(
            st.one_of(
                st.floats(-5, 5, allow_nan=False),
                st.sampled_from([np.nan, np.inf, -np.inf]),
            ),
            min_size=n,
            max_size=n,
        )
    )
    y = draw(st.lists(st.one_of(st.integers(0, 20), st.just(None)), min_size=n, max_size=n))
    g_na = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    df = pd.DataFrame(
        {
            "y": pd.array(y, dtype="Float64").to_numpy(dtype=float, na_value=np.nan),
            "x": np.asarray(x, dtype=float),
        }
    )
    if int_groups:
        g = pd.Series(np.asarray(gvals) * 7 + 3, dtype="float64")  # int labels; NaN -> float
        df["h"] = np.asarray(hvals, dtype=np.int64)
    else:
        g = pd.Series([f"G{v}" for v in gvals], dtype="str")
        df["h"] = pd.Series([f"h{v}" for v in hvals], dtype="str")
    df["g"] = g.mask(np.asarray(g_na) & (np.arange(n) % 3 == 0))
    df.index = np.arange(n) * 2 + 5  # labels are not positions
    return df


FORMULAS = ["y ~ x + (1 | g)", "y ~ x + (1 + x | g) + (1 | h)", "y ~ 1 + (1 | g/h)"]


@SETTINGS
@given(frames(), st.sampled_from(FORMULAS))
def test_random_frames_give_consistent_designs(df, formula):
    n_input = len(df)
    used = ["y", "g", "h"] + (["x"] if "x" in formula else [])
    ok_rows = df[used].notna().all(axis=1) & (np.isfinite(df["x"]) | ("x" not in used))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        try:
            d = build_design(formula, df, "poisson")
        except bg.DesignError as exc:  # nothing left, or a grouping factor with one level,
            kept = df[ok_rows]  # or more random effects than rows (lme4's check.nobs.vs.nRE)
            assert (
                kept.empty
                or any(kept[c].nunique() < 2 for c in ("g", "h") if c in formula)
                or "random effects" in str(exc)
            ), str(exc)
            return
    assert d.n_input == n_input and d.n + d.n_dropped == n_input
    np.testing.assert_array_equal(d.row_index, np.flatnonzero(ok_rows.to_numpy()))
    assert len(d.row_index) == d.n == d.X.shape[0] == d.y.shape[0] == d.offset.shape[0]
    assert np.isfinite(d.X).all() and np.isfinite(d.y).all()
    kept = df.iloc[d.row_index]
    for b in d.blocks:
        assert b.index.dtype == np.int64 and b.index.shape == (d.n,)
        assert b.index.min() >= 0 and b.index.max() < b.n_levels
        assert b.Z.shape == (d.n, b.n_terms)
        labels = kept[b.group.split(":")].astype(str).agg(":".join, axis=1)
        labels = labels.str.replace(r"\.0\b", "", regex=True)  # integral float labels
        assert [b.levels[i] for i in b.index] == labels.tolist()
    # re-encoding the kept rows gives the same design
    nd = encode_new_data(d, kept)
    assert nd.n == d.n
    np.testing.assert_array_equal(nd.X, d.X)
    for b, idx in zip(d.blocks, nd.index, strict=True):
        np.testing.assert_array_equal(idx, b.index)
