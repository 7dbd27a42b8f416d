"""The bad-input catalogue (docs/bad_input.md): one test per entry, message pinned.

Every entry raises a named :class:`bayesglmm.BayesGLMMError` or warns with a named
:class:`bayesglmm.BayesGLMMWarning`, and the message names the column, value, level or term.
Nothing may come back as a silent NaN or a result of the wrong length.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.design.build import build_design, encode_new_data
from bayesglmm.design.types import Design
from bayesglmm.errors import SpecError

# a warning that a test does not ask for is a failure, and so is a stray NumPy RuntimeWarning
pytestmark = [
    pytest.mark.filterwarnings("error::bayesglmm.BayesGLMMWarning"),
    pytest.mark.filterwarnings("error::RuntimeWarning"),
]


@pytest.fixture
def df() -> pd.DataFrame:
    """Ten rows, five groups of two."""
    return pd.DataFrame(
        {
            "y": [0, 1, 2, 3, 4, 5, 0, 1, 2, 3],
            "x": np.linspace(0.0, 1.0, 10),
            "g": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
        }
    )


def raises(exc: type[Exception], message: str):
    """``pytest.raises`` with the message pinned literally (a prefix match)."""
    return pytest.raises(exc, match=re.escape(message))


def warns(warning: type[Warning], message: str):
    return pytest.warns(warning, match=re.escape(message))


# --------------------------------------------------------------------------- responses
@pytest.mark.parametrize(
    ("y", "message"),
    [
        ([0, 1.5, 2, 3, 4, 5, 0, 1, 2, 3], "found 1.5 at row 1 (1 bad value(s))"),
        ([0, 1, -1, 3, 4, 5, 0, 1, 2, 3], "found -1 at row 2 (1 bad value(s))"),
        ([0, 1, 2, np.inf, 4, 5, 0, 1, 2, 3], "found inf at row 3 (1 bad value(s))"),
        ([0, 1, 2, -np.inf, 4, 5, 0, 1, 2, -np.inf], "found -inf at row 3 (2 bad value(s))"),
    ],
    ids=["non-integer", "negative", "inf", "-inf"],
)
def test_poisson_counts(df, y, message):
    with raises(bg.DataError, "`y` must hold non-negative integer counts; " + message):
        build_design("y ~ x + (1 | g)", df.assign(y=y), "poisson")


def test_bernoulli_outside_0_1(df):
    with raises(
        bg.DataError,
        "response `y` must be 0/1 for the bernoulli family; found 2 at row 2 "
        "(6 value(s) outside {0, 1})",
    ):
        build_design("y ~ x + (1 | g)", df, "bernoulli")


def test_string_response_with_more_than_two_levels(df):
    with raises(
        bg.DataError,
        "response `y` must have exactly two levels for the bernoulli family; "
        "found 3: 'a', 'b', 'c'",
    ):
        build_design("y ~ x + (1 | g)", df.assign(y=list("abcabcabca")), "bernoulli")


def test_string_response_for_a_count_family(df):
    with raises(
        bg.DataError,
        "response `y` must be numeric for the poisson family; it is str (first value 'a')",
    ):
        build_design("y ~ x + (1 | g)", df.assign(y=list("abcabcabca")), "poisson")


def test_gaussian_non_finite_response(df):
    with raises(bg.DataError, "response `y` must be finite; found inf at row 4"):
        build_design("y ~ x + (1 | g)", df.assign(y=df.y.where(df.y != 4, np.inf)), "gaussian")


def test_binomial_successes_exceed_trials(df):
    with raises(
        bg.DataError, "successes exceed trials: failures `n - y` = -1 < 0 at row 5 (1 row(s))"
    ):
        build_design("cbind(y, n - y) ~ x + (1 | g)", df.assign(n=4), "binomial")


def test_binomial_proportion_above_one(df):
    with raises(
        bg.DataError,
        "with trials=, the response `p` must be a proportion in [0, 1]; found 1.25 at row 5",
    ):
        build_design("p ~ x + (1 | g)", df.assign(p=df.y / 4, n=4), "binomial", trials="n")


def test_binomial_negative_trials(df):
    n = [4, 4, 4, 4, 4, 4, -4, 4, 4, 4]
    with raises(bg.DataError, "`n` must hold non-negative integer trials; found -4 at row 6"):
        build_design("p ~ x + (1 | g)", df.assign(p=df.y / 8, n=n), "binomial", trials="n")


def test_binomial_zero_trials(df):
    n = [5, 0, 5, 5, 0, 5, 5, 5, 5, 5]
    with raises(
        bg.DataError,
        "`n` is 0 in 2 row(s) (first at row 1); drop them: they carry no information",
    ):
        build_design("p ~ x + (1 | g)", df.assign(p=df.y / 5, n=n), "binomial", trials="n")


def test_binomial_proportion_not_whole_successes(df):
    with raises(
        bg.DataError,
        "`p` * `n` is not a whole number of successes at row 2: 0.285714 * 5 = 1.42857",
    ):
        build_design("p ~ x + (1 | g)", df.assign(p=df.y / 7, n=5), "binomial", trials="n")


def test_binomial_without_trials(df):
    with raises(bg.DataError, "family='binomial' needs cbind(successes, failures)"):
        build_design("y ~ x + (1 | g)", df, "binomial")


def test_cbind_with_another_family(df):
    with raises(bg.DataError, "cbind() response needs family='binomial', not 'poisson'"):
        build_design("cbind(y, y) ~ x + (1 | g)", df, "poisson")


# --------------------------------------------------------------------------- weights=, offset=
@pytest.mark.parametrize(
    ("w", "message"),
    [
        ([1, 1, -1, 1, 1, 1, 1, 1, 1, 1.0], "weights `w` is -1 at row 2; weights must be >= 0 (1 "),
        (
            [1, 1, np.inf, 1, 1, 1, 1, 1, 1, 1.0],
            "weights `w` is inf at row 2; weights must be finite (1 infinite value(s))",
        ),
        (
            list("abcdefghij"),
            "weights='w': column `w` must be numeric; it is str (first value 'a')",
        ),
    ],
    ids=["negative", "inf", "strings"],
)
def test_bad_weights_column(df, w, message):
    with raises(bg.DataError, message):
        build_design("y ~ x + (1 | g)", df.assign(w=w), "poisson", weights="w")


def test_bad_weights_array(df):
    with raises(bg.DataError, "weights= has shape (3,) but data has 10 rows; give one value per"):
        build_design("y ~ x + (1 | g)", df, "poisson", weights=np.ones(3))
    with raises(bg.DataError, "weights= must be a column name or numeric values, one per row of"):
        build_design("y ~ x + (1 | g)", df, "poisson", weights=["a"] * 10)
    with raises(bg.FormulaError, "unknown column `ww` in `weights=`; did you mean `w`?"):
        build_design("y ~ x + (1 | g)", df.assign(w=1.0), "poisson", weights="ww")


def test_missing_weights_drop_rows_with_count(df):
    w = [1, np.nan, 1, 1, 1, 1, 1, 1, 1, 1.0]
    with warns(
        bg.DroppedRowsWarning, "dropped 1 of 10 rows with missing or non-finite values (w: 1)"
    ):
        d = build_design("y ~ x + (1 | g)", df.assign(w=w), "poisson", weights="w")
    assert d.n == 9 and d.weights.shape == (9,)
    with warns(bg.DroppedRowsWarning, "(weights=: 1); 9 rows used"):
        build_design("y ~ x + (1 | g)", df, "poisson", weights=[1, None, 1, 1, 1, 1, 1, 1, 1, 1])


def test_binomial_proportion_weights_must_be_trials(df):
    p = [0, 0.5, 1, 0, 0.5, 1, 0, 0.5, 1, 0.0]
    with raises(
        bg.DataError,
        "with family='binomial' and a proportion response, weights are the numbers of trials "
        "and must be whole numbers; `w` is 2.5 at row 1",
    ):
        build_design(
            "p ~ x + (1 | g)", df.assign(p=p, w=[2, 2.5] + [2.0] * 8), "binomial", weights="w"
        )
    with raises(bg.DataError, "non-integer #successes (as glmer warns): `p` * `w` = 0.5 * 3 = 1.5"):
        build_design(
            "p ~ x + (1 | g)", df.assign(p=p, w=[2, 3] + [2.0] * 8), "binomial", weights="w"
        )
    with raises(
        bg.DataError, "with family='binomial' and weights=, the response `y` must be a proportion"
    ):
        build_design("y ~ x + (1 | g)", df.assign(w=2.0), "binomial", weights="w")


def test_bernoulli_non_integer_weights_warn(df):
    b = [0, 1, 0, 1, 0, 1, 0, 1, 1, 0]
    with warns(
        bg.SuspiciousDataWarning,
        "non-integer #successes: bernoulli response with non-integer weights (`w` = 0.5 at row 1)",
    ):
        build_design(
            "b ~ x + (1 | g)", df.assign(b=b, w=[1, 0.5] + [1.0] * 8), "bernoulli", weights="w"
        )


def test_bad_offset_argument(df):
    with raises(bg.DataError, "offset `o` is inf at row 3; offset must be finite (1 infinite"):
        build_design(
            "y ~ x + (1 | g)", df.assign(o=[0, 0, 0, np.inf] + [0.0] * 6), "poisson", offset="o"
        )
    with raises(bg.DataError, "offset= has shape (9,) but data has 10 rows"):
        build_design("y ~ x + (1 | g)", df, "poisson", offset=np.zeros(9))


def test_newdata_without_the_offset_column(df):
    d = build_design("y ~ x + (1 | g)", df.assign(o=0.1), "poisson", offset="o")
    with raises(
        bg.DesignError, "newdata is missing column `o`: the model was fitted with offset='o'"
    ):
        encode_new_data(d, df)
    d = build_design("y ~ x + (1 | g)", df, "poisson", offset=np.zeros(10))
    with raises(
        bg.DesignError, "the model was fitted with offset= given as an array, so the offsets"
    ):
        encode_new_data(d, df)


def test_unknown_family_and_link(df):
    with raises(bg.DesignError, "unknown family `negbin`; choose one of bernoulli, beta, binomial"):
        build_design("y ~ x + (1 | g)", df, "negbin")
    with raises(bg.DesignError, "link `logit` is not available for family `poisson`"):
        build_design("y ~ x + (1 | g)", df, "poisson", link="logit")


def test_non_finite_offset(df):
    w = np.r_[0.0, np.ones(9)]
    with raises(
        bg.DataError,
        "offset(log(w)) is -inf at row 0; offsets must be finite (log of a zero exposure?)",
    ):
        build_design("y ~ x + offset(log(w)) + (1 | g)", df.assign(w=w), "poisson")


# --------------------------------------------------------------------------- dropped rows
@pytest.mark.parametrize(
    ("column", "values", "count"),
    [
        ("x", [0, np.nan, 1, 2, np.inf, 3, 4, 5, 6, -np.inf], 3),
        ("g", [1, np.nan, 1, 2, 2, 3, 3, 4, 4, 5], 1),
        ("g", ["a", None, "a", "b", "b", "c", "c", "d", "d", "e"], 1),
        ("y", [0, 1, np.nan, 3, 4, 5, 0, 1, 2, 3], 1),
    ],
    ids=["predictor-nan-inf", "group-nan", "group-str-none", "response-nan"],
)
def test_missing_and_non_finite_rows_dropped_with_count(df, column, values, count):
    with warns(
        bg.DroppedRowsWarning,
        f"dropped {count} of 10 rows with missing or non-finite values ({column}: {count}); "
        f"{10 - count} rows used",
    ):
        d = build_design("y ~ x + (1 | g)", df.assign(**{column: values}), "poisson")
    assert d.n == 10 - count and d.n_dropped == count and d.n_input == 10
    assert len(d.row_index) == d.X.shape[0] == d.blocks[0].index.shape[0] == d.n
    assert np.isfinite(d.X).all() and np.isfinite(d.y).all()


def test_integer_group_with_nan_keeps_integer_labels(df):
    with warns(bg.DroppedRowsWarning, "(g: 1)"):
        d = build_design(
            "y ~ x + (1 | g)", df.assign(g=[1, np.nan, 1, 2, 2, 3, 3, 4, 4, 5]), "poisson"
        )
    assert d.blocks[0].levels == ("1", "2", "3", "4", "5")


def test_empty_after_dropping(df):
    with raises(
        bg.DesignError,
        "no rows left: all 10 rows have a missing or non-finite value (per column: `x`: 10)",
    ):
        build_design("y ~ x + (1 | g)", df.assign(x=np.nan), "poisson")


def test_empty_data(df):
    with raises(bg.DesignError, "data has no rows"):
        build_design("y ~ x + (1 | g)", df.iloc[:0], "poisson")


def test_data_not_a_frame(df):
    with raises(bg.DesignError, "data must be a pandas DataFrame, not dict"):
        build_design("y ~ x + (1 | g)", df.to_dict(), "poisson")


# --------------------------------------------------------------------------- formula
def test_unknown_column_suggests_close_matches(df):
    with raises(
        bg.FormulaError,
        "unknown column `xx` in `xx`; did you mean `x`?\n    y ~ xx + (1 | g)\n        ^",
    ):
        build_design("y ~ xx + (1 | g)", df, "poisson")


def test_unknown_grouping_column_suggests_case_match(df):
    with raises(
        bg.FormulaError,
        "unknown column `G` in `(1 | G)`; did you mean `g`?\n    y ~ x + (1 | G)\n"
        "                 ^",
    ):
        build_design("y ~ x + (1 | G)", df, "poisson")


def test_unknown_column_in_toenail(load):
    with raises(
        bg.FormulaError, "unknown column `treatmnt` in `treatmnt`; did you mean `treatment`?"
    ):
        build_design("outcome ~ treatmnt + (1 | patientID)", load("toenail"), "bernoulli")


def test_formula_syntax_error_has_caret(df):
    with raises(
        bg.FormulaError,
        "unbalanced parentheses: `(` is never closed\n    y ~ x + (1 | g\n            ^",
    ):
        build_design("y ~ x + (1 | g", df, "poisson")


# --------------------------------------------------------------------------- grouping factors
def test_group_with_one_level(df):
    with raises(
        bg.DesignError,
        "grouping factor `g` in `(1 | g)` has only one level ('1'); a random effect needs "
        "at least two",
    ):
        build_design("y ~ x + (1 | g)", df.assign(g=1), "poisson")


def test_as_many_levels_as_rows_under_bernoulli(df):
    with warns(
        bg.IdentifiabilityWarning,
        "grouping factor `g` has as many levels as rows (10) under a bernoulli response: the "
        "random-effect variance is not identifiable",
    ):
        build_design("y ~ x + (1 | g)", df.assign(g=range(10), y=[0, 1] * 5), "bernoulli")


def test_fewer_than_five_levels(df):
    with warns(
        bg.IdentifiabilityWarning,
        "grouping factor `g` has only 2 levels: its SD is weakly identified (use at least 5 "
        "levels, or treat it as a fixed effect)",
    ):
        build_design("y ~ x + (1 | g)", df.assign(g=[1] * 5 + [2] * 5), "poisson")


# --------------------------------------------------------------------------- fixed part
def test_rank_deficiency(df):
    with warns(
        bg.RankDeficiencyWarning,
        "fixed-effect model matrix is rank deficient so dropping 1 column(s): x2",
    ):
        d = build_design("y ~ x + x2 + (1 | g)", df.assign(x2=3 * df.x), "poisson")
    assert d.x_names == ("(Intercept)", "x")


def test_unused_categorical_levels(df):
    f = pd.Categorical(list("ababababab"), categories=list("abc"))
    with warns(
        bg.RankDeficiencyWarning, "categorical column `f` has unused level(s) 'c'; they are dropped"
    ):
        d = build_design("y ~ x + f + (1 | g)", df.assign(f=f), "poisson")
    assert d.x_names == ("(Intercept)", "x", "fb")  # no all-zero `fc` column


_SEPARATED = (
    "separation in the fixed effects: {what}; the ML estimates are unreliable (infinite); the "
    "Bayesian fit's priors keep the posterior proper"
)


def test_complete_separation(df):
    """Every row with x > 0.5 is a success, every other a failure."""
    with warns(
        bg.IdentifiabilityWarning,
        "complete " + _SEPARATED.format(what="`x` separates the outcome"),
    ):
        build_design("y ~ x + (1 | g)", df.assign(y=(df.x > 0.5).astype(int)), "bernoulli")


def test_quasi_complete_separation(df):
    """Level `c` has only failures; the other rows overlap."""
    data = df.assign(f=list("abcabcabca"), y=[0, 1, 0, 1, 0, 0, 0, 1, 0, 1])
    with warns(
        bg.IdentifiabilityWarning,
        "quasi-complete " + _SEPARATED.format(what="`fc` separates the outcome"),
    ):
        build_design("y ~ x + f + (1 | g)", data, "bernoulli")


def test_quasi_complete_separation_binomial(df):
    """Binomial rows with 0 < y < n count as both outcomes; level `b` has only successes."""
    data = df.assign(f=list("aabbaabbaa"), s=[1, 2, 3, 3, 1, 0, 3, 3, 2, 1], n=3)
    with warns(
        bg.IdentifiabilityWarning,
        "quasi-complete " + _SEPARATED.format(what="`fb` separates the outcome"),
    ):
        build_design("cbind(s, n - s) ~ x + f + (1 | g)", data, "binomial")


def test_constant_outcome_is_complete_separation(df):
    with warns(
        bg.IdentifiabilityWarning,
        "complete "
        + _SEPARATED.format(
            what="every row is a failure, so no predictor is needed to separate the outcome"
        ),
    ):
        build_design("y ~ x + (1 | g)", df.assign(y=0), "bernoulli")


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("toenail", "outcome ~ treatment * time + (1 | patientID)"),
        ("polls", "bush ~ black + female + edu_label + age_label + (1 | state)"),
        ("hdp", "remission ~ Age + Married + IL6 + (1 | DID)"),
    ],
)
def test_no_separation_in_course_data(load, name, formula):
    """The control: overlapping data never warn (polls only says it dropped rows)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_design(formula, load(name), "bernoulli")
    assert [w.category for w in caught] in ([], [bg.DroppedRowsWarning])


def test_no_separation_warning_for_overlapping_bernoulli(df):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_design("y ~ x + (1 | g)", df.assign(y=[0, 1] * 5), "bernoulli")


def test_ml_fit_says_separated_estimates_are_unreliable(df):
    """The ML fit repeats it in its messages and its diagnostics, with one warning in all:
    the design already warned, so the fit does not warn a second time."""
    data = df.assign(y=(df.x > 0.5).astype(int))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bg.GLMM("y ~ x + (1 | g)", data, family="bernoulli").fit(method="ml")
    message = (
        "ML estimates are unreliable (infinite): complete separation in the fixed effects "
        "(`(Intercept)`, `x`)"
    )
    assert message in fit.ml.messages
    sep_warnings = [
        str(w.message)
        for w in caught
        if w.category is bg.IdentifiabilityWarning and "separation" in str(w.message)
    ]
    assert len(sep_warnings) == 1 and sep_warnings[0].startswith("complete separation")
    row = fit.diagnostics().set_index("check").loc["separation"]
    assert row["status"] == "warn" and "unreliable" in row["advice"]


def test_refit_with_separated_response_warns_from_the_fit(df):
    """``with_response`` forgets the design-time check (it was for the old y), so a
    separated new response is caught by the ML fit, which then warns itself."""
    model = bg.GLMM("y ~ x + (1 | g)", df.assign(y=[0, 1] * 5), family="bernoulli")
    assert model.design.separation is None
    refit = model.with_response((df.x > 0.5).astype(float).to_numpy())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = refit.fit(method="ml")
    assert any("separation in the fixed effects" in m for m in fit.ml.messages)
    assert any(
        w.category is bg.IdentifiabilityWarning and "ML estimates are unreliable" in str(w.message)
        for w in caught
    )


# --------------------------------------------------------------------------- new data
@pytest.fixture
def fitted(df) -> Design:
    data = df.assign(
        f=list("ababcabcab"),
        v=[1, 2, 3, 1, 2, 3, 1, 2, 3, 1],
        c=pd.Categorical(list("uvuvuvuvuw"), categories=["u", "v", "w"]),
        w=np.arange(1.0, 11.0),
    )
    return build_design("y ~ x + f + C(v) + c + offset(log(w)) + (1 | g)", data, "poisson")


def _new(**changes) -> pd.DataFrame:
    base = pd.DataFrame(
        {
            "x": [0.5, 0.25],
            "f": ["a", "c"],
            "v": [1, 3],
            "c": ["u", "w"],
            "w": [1.0, 2.0],
            "g": [1, 5],
        }
    )
    return base.assign(**changes)


def test_newdata_valid_is_encoded(fitted):
    nd = encode_new_data(fitted, _new())
    assert nd.X.shape == (2, fitted.k) and np.isfinite(nd.X).all()
    assert nd.index[0].tolist() == [0, 4]


def test_newdata_missing_columns(fitted):
    with raises(
        bg.DesignError,
        "newdata is missing column(s) `x`, `w` used by the formula "
        "`y ~ x + f + C(v) + c + offset(log(w)) + (1 | g)`",
    ):
        encode_new_data(fitted, _new().drop(columns=["x", "w"]))


def test_newdata_numeric_column_as_strings(fitted):
    with raises(
        bg.DesignError,
        "column `x` was numeric (float64) in the fitted data but is str in newdata (first "
        "value '0.5'); convert it with pd.to_numeric",
    ):
        encode_new_data(fitted, _new(x=["0.5", "0.25"]))


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        (
            "f",
            ["a", "zz"],
            "column `f` has level(s) 'zz' not seen in the fit (levels: 'a', 'b', 'c')",
        ),
        (
            "c",
            ["u", "q"],
            "column `c` has level(s) 'q' not seen in the fit (levels: 'u', 'v', 'w')",
        ),
        ("v", [1, 4], "column `v` has level(s) '4' not seen in the fit (levels: '1', '2', '3')"),
    ],
    ids=["string", "categorical", "C(numeric)"],
)
def test_newdata_unseen_level_of_fixed_predictor(fitted, column, values, message):
    """formulaic would encode these rows as the reference level, silently: we raise."""
    with raises(bg.DesignError, message):
        encode_new_data(fitted, _new(**{column: values}))


def test_newdata_categorical_given_as_other_dtype(fitted):
    """A categorical column passed as plain strings, in another order, encodes the same."""
    a = encode_new_data(fitted, _new())
    b = encode_new_data(
        fitted, _new(c=pd.Categorical(["u", "w"], categories=["w", "u"]), f=["a", "c"])
    )
    np.testing.assert_array_equal(a.X, b.X)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"x": [np.nan, 1.0]}, "newdata column `x` has 1 missing value(s) (first at row 0)"),
        ({"x": [0.0, np.inf]}, "newdata column `x` is inf at row 1; values must be finite"),
        ({"g": [1, None]}, "newdata column `g` has 1 missing value(s) (first at row 1)"),
        ({"w": [0.0, 1.0]}, "offset(log(w)) is -inf at row 0 of newdata; offsets must be finite"),
    ],
    ids=["nan-predictor", "inf-predictor", "nan-group", "bad-offset"],
)
def test_newdata_missing_or_non_finite(fitted, changes, message):
    with raises(bg.DesignError, message):
        encode_new_data(fitted, _new(**changes))


def test_newdata_empty_or_not_a_frame(fitted):
    with raises(bg.DesignError, "newdata has no rows"):
        encode_new_data(fitted, _new().iloc[:0])
    with raises(bg.DesignError, "newdata must be a pandas DataFrame, not dict"):
        encode_new_data(fitted, _new().to_dict())


def test_newdata_unseen_group_level_is_flagged_not_an_error(fitted):
    nd = encode_new_data(fitted, _new(g=[5, 99]))
    assert nd.index[0].tolist() == [4, -1] and nd.new_levels[0] == ("99",)


def test_all_messages_are_package_errors():
    """Every class used in the catalogue derives from the package roots."""
    for exc in (bg.DataError, bg.DesignError, bg.FormulaError):
        assert issubclass(exc, bg.BayesGLMMError) and issubclass(exc, ValueError)
    for w in (bg.DroppedRowsWarning, bg.IdentifiabilityWarning, bg.RankDeficiencyWarning):
        assert issubclass(w, bg.BayesGLMMWarning)


def test_no_warning_for_clean_data(df):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_design("y ~ x + (1 | g)", df, "poisson")


# --------------------------------------------------------------------------- fit arguments
@pytest.fixture
def model(df) -> bg.GLMM:
    return bg.GLMM("y ~ x + (1 | g)", df, family="poisson")


_SEED_RANGE = "None, an integer in [0, 2**63 - 1 = 9223372036854775807] or a numpy.random.Generator"


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        ("nuts", {"draws": 0}, "`draws` must be an integer >= 1; got 0 (int)"),
        ("nuts", {"draws": 100.0}, "`draws` must be an integer >= 1; got 100.0 (float)"),
        ("nuts", {"chains": 0}, "`chains` must be an integer >= 1; got 0 (int)"),
        ("nuts", {"tune": -5}, "`tune` must be an integer >= 0; got -5 (int)"),
        ("nuts", {"cores": 0}, "`cores` must be None or an integer >= 1; got 0 (int)"),
        ("nuts", {"random_seed": -1}, f"`random_seed` must be {_SEED_RANGE}; got -1 (int)"),
        ("nuts", {"random_seed": 2**70}, f"must be {_SEED_RANGE}; got {2**70} (int)"),
        ("nuts", {"random_seed": 1.7}, f"must be {_SEED_RANGE}; got 1.7 (float)"),
        ("nuts", {"random_seed": "abc"}, f"must be {_SEED_RANGE}; got 'abc' (str)"),
        ("nuts", {"random_seed": True}, f"must be {_SEED_RANGE}; got True (bool)"),
        ("nuts", {"target_accept": 1.5}, "`target_accept` must be None or a number in (0, 1); "),
        ("nuts", {"target_accept": 0}, "`target_accept` must be None or a number in (0, 1); got 0"),
        ("nuts", {"sampler": "kernal"}, "got 'kernal' (str); did you mean 'kernel'?"),
        ("nuts", {"init": "adapt_diag"}, "`init` is PyMC's NUTS initialization: pass sampler="),
        ("ml", {"nagq": 2.7}, "`nagq` must be an integer in [1, 100]; got 2.7 (float)"),
        ("ml", {"nagq": 1000}, "`nagq` must be an integer in [1, 100]; got 1000 (int)"),
        ("laplace", {"nagq": 0}, "`nagq` must be None or an integer in [1, 100]; got 0 (int)"),
        ("laplace", {"strategy": "grd"}, "got 'grd' (str); did you mean 'grid'?"),
        ("pql", {"dispersion": 1}, "`dispersion` must be one of 'estimate', 'fixed'; got 1"),
        ("advi", {"learning_rate": -0.1}, "`learning_rate` must be a number > 0; got -0.1"),
    ],
)
def test_fit_arguments_checked_before_any_work(model, method, kwargs, message):
    with raises(bg.ArgumentError, message) as err:
        model.fit(method=method, **kwargs)
    assert str(err.value).startswith(f"fit(method={method!r}): ")


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        (
            "nuts",
            {"drws": 10},
            "fit(method='nuts'): unknown option `drws` for method='nuts'; did you mean `draws`? "
            "(valid: draws, tune, chains, cores, random_seed, sampler, target_accept, "
            "progressbar, init, max_treedepth, adaptation, allow_partial, log_likelihood)",
        ),
        (
            "ml",
            {"draws": 10},
            "fit(method='ml'): unknown option `draws` for method='ml'; it is an option of "
            "method 'nuts', 'laplace', 'advi', 'fullrank_advi' (valid: nagq, start, tol, "
            "maxiter, log_likelihood)",
        ),
    ],
)
def test_fit_unknown_keyword_did_you_mean(model, method, kwargs, message):
    with raises(bg.ArgumentError, message):
        model.fit(method=method, **kwargs)


def test_fit_unknown_method_did_you_mean(model):
    with raises(bg.ArgumentError, "unknown method `nust`; did you mean `nuts`? (choose one of"):
        model.fit(method="nust")


def test_fit_seed_accepts_numpy_integers_and_generators():
    from bayesglmm.engines.registry import check_fit_options

    out = check_fit_options("laplace", {"random_seed": np.int64(3), "draws": np.int32(50)})
    assert out == {"random_seed": 3, "draws": 50} and type(out["draws"]) is int
    a = check_fit_options("nuts", {"random_seed": np.random.default_rng(1)})["random_seed"]
    b = check_fit_options("nuts", {"random_seed": np.random.default_rng(1)})["random_seed"]
    assert a == b and 0 <= a < 2**63


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"draws": 0}, "sample_prior_predictive(): `draws` must be an integer >= 1; got 0 (int)"),
        ({"draws": 2.5}, "sample_prior_predictive(): `draws` must be an integer >= 1; got 2.5"),
        (
            {"random_seed": -1},
            f"sample_prior_predictive(): `random_seed` must be {_SEED_RANGE}; got -1 (int)",
        ),
        ({"random_seed": "abc"}, f"`random_seed` must be {_SEED_RANGE}; got 'abc' (str)"),
        (
            {"drws": 5},
            "sample_prior_predictive(): unknown option `drws`; did you mean `draws`? "
            "(valid: draws, random_seed)",
        ),
        (
            {"seed": 5},
            "sample_prior_predictive(): unknown option `seed`; did you mean `random_seed`? "
            "(valid: draws, random_seed)",
        ),
    ],
)
def test_sample_prior_predictive_arguments(model, kwargs, message, monkeypatch):
    """Checked before any work: the PyMC model is never built."""
    monkeypatch.setattr(bg.GLMM, "build", lambda self: pytest.fail("built before the check"))
    with raises(bg.ArgumentError, message):
        model.sample_prior_predictive(**kwargs)


@pytest.fixture
def indexed() -> pd.DataFrame:
    """Twelve rows labelled r0..r11; row r2 is dropped (missing x), so 11 are used."""
    return pd.DataFrame(
        {
            "y": [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 1, 2],
            "x": [0.1, 0.2, np.nan, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2],
            "g": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6],
        },
        index=[f"r{i}" for i in range(12)],
    )


_ONES = [1.0] * 10
_WR = "with_response(): "


@pytest.mark.parametrize(
    ("family", "y", "exc", "message"),
    [
        (
            "poisson",
            _ONES,
            bg.ArgumentError,
            f"{_WR}the response must be one-dimensional with 11 values, one per row of the "
            "model; got shape (10,)",
        ),
        (
            "poisson",
            np.ones((11, 1)),
            bg.ArgumentError,
            f"{_WR}the response must be one-dimensional with 11 values, one per row of the "
            "model; got shape (11, 1) (flatten it, e.g. y.ravel())",
        ),
        ("poisson", "abc", bg.ArgumentError, f"{_WR}the response must be an array of 11 numbers"),
        (
            "poisson",
            [*_ONES, "a"],
            bg.ArgumentError,
            f"{_WR}the response must hold numbers; found 'a' (str) at position 10 (data row 'r11')",
        ),
        (
            "poisson",
            [*_ONES, np.nan],
            bg.DataError,
            f"{_WR}the response must be finite; found nan at position 10 (data row 'r11') "
            "(1 non-finite value(s)); a new response cannot drop rows: give a value for every row",
        ),
        (
            "poisson",
            pd.array([1, None, *([1] * 9)], dtype="Int64"),
            bg.DataError,
            f"{_WR}the response must be finite; found nan at position 1 (data row 'r1')",
        ),
        (
            "gaussian",
            [*_ONES, np.inf],
            bg.DataError,
            f"{_WR}the response must be finite; found inf at position 10 (data row 'r11')",
        ),
        (
            "poisson",
            [1.0, 1.0, -1.0, *([1.0] * 8)],
            bg.DataError,
            f"{_WR}the response must hold non-negative integer counts; found -1 at position 2 "
            "(data row 'r3') (1 bad value(s))",
        ),
        (
            "poisson",
            [*_ONES, 1.5],
            bg.DataError,
            f"{_WR}the response must hold non-negative integer counts; found 1.5 at position 10",
        ),
        (
            "bernoulli",
            [*([0.0] * 10), 2.0],
            bg.DataError,
            f"{_WR}the response must be 0/1 for the bernoulli family; found 2 at position 10 "
            "(data row 'r11') (1 bad value(s))",
        ),
        (
            "binomial",
            [*([1.0] * 10), 6.0],
            bg.DataError,
            f"{_WR}the response has more successes than trials: 6 > 5 at position 10 "
            "(data row 'r11') (1 row(s))",
        ),
        (
            "binomial",
            [*([1.0] * 10), 0.5],
            bg.DataError,
            f"{_WR}the response must hold non-negative integer successes (counts, not "
            "proportions); found 0.5 at position 10",
        ),
    ],
)
def test_with_response_checks_the_new_response(indexed, family, y, exc, message):
    data = indexed.assign(yb=(indexed.y > 1).astype(int), n=5)
    formula = {
        "poisson": "y ~ x + (1 | g)",
        "gaussian": "y ~ x + (1 | g)",
        "bernoulli": "yb ~ x + (1 | g)",
        "binomial": "cbind(y, n - y) ~ x + (1 | g)",
    }[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        model = bg.GLMM(formula, data, family)
    assert model.design.n == 11
    with raises(exc, message):
        model.with_response(y)


def test_with_response_accepts_what_the_family_allows(indexed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.BayesGLMMWarning)
        model = bg.GLMM("y ~ x + (1 | g)", indexed, "poisson")
        bern = bg.GLMM("yb ~ x + (1 | g)", indexed.assign(yb=indexed.y > 1), "bernoulli")
    counts = pd.Series([0, 3, 1, 2, 7, 0, 1, 1, 2, 0, 4], dtype="Int64")
    np.testing.assert_array_equal(model.with_response(counts).design.y, counts.to_numpy(float))
    flags = np.array([True, False] * 5 + [True])
    np.testing.assert_array_equal(bern.with_response(flags).design.y, flags.astype(float))
    np.testing.assert_array_equal(bern.with_response(list(flags)).design.y, flags.astype(float))


@pytest.mark.parametrize(
    ("priors", "message"),
    [
        (
            {"fixed": {"dist": "Normal", "mu": 0, "sigma": -1}},
            "prior for `fixed` (Normal): `sigma` must be a finite number > 0; got -1",
        ),
        (
            {"sd": {"dist": "HalfNormal", "sigma": 0}},
            "prior for `sd` (HalfNormal): `sigma` must be a finite number > 0; got 0",
        ),
        (
            {"intercept": {"dist": "Normal", "mu": 0, "sigma": float("nan")}},
            "prior for `intercept` (Normal): `sigma` must be a finite number > 0; got nan",
        ),
        (
            {"fixed": {"dist": "Normal", "mu": 0, "sigma": "wide"}},
            "prior for `fixed` (Normal): `sigma` must be a finite number > 0; got 'wide'",
        ),
        ({"cor": 0}, "prior for `cor` (LKJ): `eta` must be a finite number > 0; got 0"),
    ],
)
def test_prior_parameters_checked_at_construction(df, priors, message):
    with raises(bg.DesignError, message):
        bg.GLMM("y ~ x + (1 | g)", df, family="poisson", priors=priors)


def test_prior_object_checks_its_parameters():
    with raises(bg.DesignError, "prior Normal: `sigma` must be a finite number > 0; got -1"):
        bg.Prior("Normal", mu=0, sigma=-1)
    with raises(bg.DesignError, "prior Normal: `mu` must be a finite number; got inf"):
        bg.Prior("Normal", mu=np.inf, sigma=1)


def test_spec_nuts_table_uses_the_same_ranges(tmp_path):
    from bayesglmm.spec import load_spec

    path = tmp_path / "s.toml"
    path.write_text(
        'name = "s"\nformula = "Richness ~ NAP + (1 | Beach)"\nfamily = "poisson"\n'
        'methods = ["nuts"]\n[data]\ndataset = "rikz"\n[nuts]\ndraws = 0\n'
    )
    with raises(SpecError, f"{path}: [nuts] `draws` must be an integer >= 1; got 0 (int)"):
        load_spec(path)


def test_spec_that_is_not_utf8(tmp_path):
    from bayesglmm.spec import load_spec

    path = tmp_path / "s.toml"
    path.write_bytes(b'name = "s"\nformula = "y \xff ~ x"\n')
    with raises(
        SpecError,
        f"{path}: not valid UTF-8 text: byte b'\\xff' at line 2 (offset 24); save the file as UTF-8",
    ):
        load_spec(path)


# --------------------------------------------------------------------------- column types
def test_string_dtype_predictor_is_a_factor(df):
    """pandas' "string" (pd.NA) dtype encodes as the default str dtype does."""
    f = list("ababababab")
    a = build_design("y ~ x + f + (1 | g)", df.assign(f=f), "poisson")
    b = build_design("y ~ x + f + (1 | g)", df.assign(f=pd.array(f, dtype="string")), "poisson")
    assert a.x_names == b.x_names == ("(Intercept)", "x", "fb")
    np.testing.assert_array_equal(a.X, b.X)


def test_datetime_predictor(df):
    with raises(
        bg.DesignError,
        "column `d` is datetime64[us]: a formula term needs numbers or categories; convert it, "
        "e.g. (df['d'] - df['d'].min()).dt.days for days since the first date, or "
        "df['d'].astype(str) for one level per value",
    ):
        build_design("y ~ d + (1 | g)", df.assign(d=pd.date_range("2020", periods=10)), "poisson")


@pytest.mark.parametrize("name", ["log", "C", "center", "scale", "np", "I"])
def test_column_named_like_a_formula_function(df, name):
    """As in R, a bare name that is a column means the column (it is the function only when
    called): `log` + `log(x)` are two different terms."""
    data = df.assign(**{name: df.x * 2 + 1})
    d = build_design(f"y ~ {name} + (1 | g)", data, "poisson")
    assert d.x_names == ("(Intercept)", name)
    np.testing.assert_allclose(d.X[:, 1], data[name])
    d2 = build_design(f"y ~ `{name}` + log(x + 1) + (1 | g)", data, "poisson")
    assert d2.x_names == ("(Intercept)", name, "log(x + 1)")


def test_duplicate_column_names(df):
    data = pd.concat([df, df[["x"]]], axis=1)
    with raises(
        bg.DesignError,
        "column `x` appears 2 times in the data (positions 1, 3); rename or drop the duplicates",
    ):
        build_design("y ~ x + (1 | g)", data, "poisson")


def test_transform_that_is_not_finite_names_rows(df):
    with raises(
        bg.DataError,
        "fixed-effect term `np.log(x)` is nan at row 0 (x = -0.25); 3 row(s) give a "
        "non-finite value (rows 0, 1, 2); log or sqrt of a negative or zero value? Fix or drop "
        "those rows, or change the transform",
    ):
        build_design("y ~ np.log(x) + (1 | g)", df.assign(x=df.x - 0.25), "poisson")
    with raises(bg.DataError, "fixed-effect term `log(x)` is -inf at row 0 (x = 0); 1 row(s)"):
        build_design("y ~ log(x) + (1 | g)", df, "poisson")


def test_offset_of_a_negative_value_names_the_row(df):
    e = np.r_[1.0, 1.0, -2.0, np.ones(7)]
    with raises(
        bg.DataError,
        "offset(log(e)) is nan at row 2 (e = -2); offsets must be finite (log of a negative "
        "value?)",
    ):
        build_design("y ~ x + offset(log(e)) + (1 | g)", df.assign(e=e), "poisson")


def test_stray_strings_in_a_numeric_column(df):
    x = df.x.astype(object)
    x[3], x[7] = ".", "n/a"
    with raises(
        bg.DataError,
        "column `x` looks numeric but holds 2 non-numeric value(s): '.' (row 3), 'n/a' (row 7); "
        "as it stands it would become a factor with 10 levels. Make them missing "
        "(df['x'] = pd.to_numeric(df['x'], errors='coerce'); those rows are then dropped), or "
        "write C(x) to treat `x` as categorical",
    ):
        build_design("y ~ x + (1 | g)", df.assign(x=x), "poisson")


def test_stray_string_accepted_inside_C(df):
    v = ["1", "2", "3", ".", "1", "2", "3", "1", "2", "3"]
    with raises(bg.DataError, "column `v` looks numeric but holds 1 non-numeric value(s)"):
        build_design("y ~ v + (1 | g)", df.assign(v=v), "poisson")
    d = build_design("y ~ C(v) + (1 | g)", df.assign(v=v), "poisson")
    assert d.x_names == ("(Intercept)", "C(v)1", "C(v)2", "C(v)3")


def test_complex_column(df):
    """Casting complex to float dropped the imaginary part with only a NumPy warning."""
    with raises(
        bg.DesignError,
        "column `c` is complex128: a model needs real numbers (casting would silently drop the "
        "imaginary part); use e.g. df['c'].to_numpy().real or np.abs(df['c'])",
    ):
        build_design("y ~ c + (1 | g)", df.assign(c=df.x + 1j), "poisson")
    with raises(
        bg.DataError, "response `y` is complex128: it must hold real numbers for the gaussian"
    ):
        build_design("y ~ x + (1 | g)", df.assign(y=df.x + 1j), "gaussian")


def test_unhashable_cells(df):
    """A column of lists gave pandas' raw "unhashable type: 'list'"."""
    with raises(
        bg.DesignError,
        "column `L` holds a list at row 0 ([1, 2]): each cell of a predictor or grouping "
        "column must be a single number or label",
    ):
        build_design("y ~ L + (1 | g)", df.assign(L=[[1, 2]] * 10), "poisson")


def test_glmm_priors_and_centered_arguments(df):
    """A list of priors gave a raw TypeError from dict(); centered="yes" was silently True."""
    with raises(
        bg.ArgumentError,
        "GLMM(): `priors` must be a dict of prior overrides (e.g. {'fixed': "
        "bg.Prior('Normal', mu=0, sigma=1)}) or None; got list",
    ):
        bg.GLMM("y ~ x + (1 | g)", df, "poisson", priors=[1, 2])
    with raises(bg.ArgumentError, "GLMM(): `centered` must be True or False; got 'yes' (str)"):
        bg.GLMM("y ~ x + (1 | g)", df, "poisson", centered="yes")


def test_object_column_of_numbers_is_numeric(df):
    d = build_design("y ~ x + (1 | g)", df.assign(x=df.x.astype(object)), "poisson")
    assert d.x_names == ("(Intercept)", "x")


def test_values_of_mixed_types_that_print_the_same(df):
    with raises(
        bg.DataError,
        "column `m` mixes types: 1 (int, row 0) and '1' (str, row 1) would be two different "
        "levels that print the same; convert the column to one type",
    ):
        build_design(
            "y ~ m + (1 | g)", df.assign(m=pd.Series([1, "1"] * 5, dtype=object)), "poisson"
        )


def test_values_of_mixed_types_warn(df):
    g = pd.Series([1, 1, "b", "b", 3, 3, "d", "d", 5, 5], dtype=object)
    with warns(
        bg.SuspiciousDataWarning,
        "column `g` mixes value types (number: 6, str: 4); each distinct value becomes its own "
        "level",
    ):
        d = build_design("y ~ x + (1 | g)", df.assign(g=g), "poisson")
    assert d.blocks[0].n_levels == 5


# --------------------------------------------------------------------------- identifiability
def test_response_among_the_predictors(df):
    with warns(
        bg.SuspiciousDataWarning,
        "the response `y` is also on the right-hand side of `y ~ y + x + (1 | g)`: it predicts "
        "itself; remove it from the predictors",
    ):
        build_design("y ~ y + x + (1 | g)", df, "poisson")


def test_duplicated_random_effect_terms(df):
    with warns(
        bg.IdentifiabilityWarning,
        "random-effect terms `(1 | g)` and `(1 | g)` both give `g` `(Intercept)`: only the sum "
        "of their variances is identified; remove one of them",
    ):
        build_design("y ~ x + (1 | g) + (1 | g)", df, "poisson")


def test_uncorrelated_terms_of_one_group_do_not_warn(df):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_design("y ~ x + (1 | g) + (0 + x | g)", df, "poisson")


def test_one_observation_per_level_with_a_residual(df):
    with warns(
        bg.IdentifiabilityWarning,
        "grouping factor `i` has one observation per level (10 levels, 10 rows) in a gaussian "
        "model: its variance cannot be told apart from the residual variance",
    ):
        build_design("y ~ x + (1 | i)", df.assign(i=range(10)), "gaussian")
    with warnings.catch_warnings():  # an observation-level effect is fine for counts
        warnings.simplefilter("error")
        build_design("y ~ x + (1 | i)", df.assign(i=range(10)), "poisson")


def test_dotted_column_name(df):
    """R-style names such as `x.y` work with or without backticks, as in R."""
    data = df.rename(columns={"x": "x.y"})
    d = build_design("y ~ x.y + (1 + x.y | g)", data, "poisson")
    assert d.x_names == ("(Intercept)", "x.y") and d.blocks[0].terms == ("(Intercept)", "x.y")
    d = build_design("y ~ `x.y` + (1 + `x.y` | g)", data, "poisson")
    assert d.x_names == ("(Intercept)", "x.y") and d.blocks[0].terms == ("(Intercept)", "x.y")


# --------------------------------------------------------------------------- engine boundary
def test_foreign_engine_error_becomes_inference_error(model, monkeypatch):
    """Anything but a package error from inside an engine is re-raised as an InferenceError
    naming the method and where it came from, with the original chained."""
    import bayesglmm.engines.ml.pql as pql

    def broken(design, **kwargs):
        raise RuntimeError("Factor is exactly singular")

    monkeypatch.setattr(pql, "fit_pql", broken)
    with raises(
        bg.InferenceError,
        "method='pql' failed (in bayesglmm/engines/registry.py:",
    ) as err:
        model.fit(method="pql")
    assert "RuntimeError: Factor is exactly singular; the data or model may be degenerate" in (
        str(err.value)
    )
    assert isinstance(err.value.__cause__, RuntimeError)


@pytest.mark.parametrize("method", ["pql"])
def test_fuzz_case_singular_sparse_factor(method):
    """Found by tests/test_fuzz.py: PQL (and the Bayesian Laplace, ~1 min here) raised SciPy's
    raw "Factor is exactly singular" on this 8-row bernoulli model (predictor at scale 1e8,
    one level per row).  Now: a finite fit or a package error."""
    data = pd.DataFrame(
        {
            "y": [1, 0, 1, 1, 0, 1, 0, 0],
            "x1": [
                2.2534e8,
                -5.0505e7,
                -5.4480e7,
                1.9457e8,
                6.7626e7,
                1.3147e8,
                -9.3352e7,
                1.4260e8,
            ],
            "x": [-0.34, 0.25, 0.68, 0.94, 0.48, -0.46, -0.84, 0.75],
            "g0": range(8),
            "g1": [2.0, 1.0, 1.0, 0.0, 3.0, 1.0, np.nan, np.nan],
        }
    )
    kwargs: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            formula = "y ~ scale(x1) + I(x ** 2) + (1 + x1 || g0) + (1 || g1)"
            fit = bg.GLMM(formula, data, family="bernoulli").fit(method=method, **kwargs)
    except bg.BayesGLMMError:
        return
    assert np.isfinite(np.asarray(fit.fixef(), dtype=float)).all()


def test_more_random_effects_than_observations(df):
    """lme4's check.nobs.vs.nRE; the fuzz found a 25-column term that took ML 70 s."""
    with raises(
        bg.DesignError,
        "random-effect term `(1 + x | i)` has 20 random effects (10 levels x 2 column(s)) for "
        "10 observations: its variance parameters are not identifiable; use fewer columns "
        "(e.g. (1 | i)) or a grouping factor with fewer levels",
    ):
        build_design("y ~ x + (1 + x | i)", df.assign(i=range(10)), "poisson")


def test_zero_padded_codes_with_an_na_string_stay_a_factor():
    """String codes such as "01" are not numbers: a column of "1", "01" and "NA" is a
    factor as it stands (the stray-string check is for numeric columns with a stray '.')."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "y": rng.normal(size=24),
            "f": rng.choice(["1", "01", "NA"], 24),
            "g": np.repeat(["a", "b", "c", "d", "e", "f"], 4),
        }
    )
    d = bg.build_design("y ~ f + (1 | g)", df, "gaussian")
    assert d.X.shape[1] == 3


def test_adaptation_option_is_checked():
    """The default sampler's mass-matrix adaptation is a checked choice, refused where the
    model is sampled by PyMC's NUTS."""
    df = bg.datasets.load("rikz")
    m = bg.GLMM("Richness ~ NAP + (1 | Beach)", df, "poisson")
    with pytest.raises(bg.ArgumentError, match="`adaptation` must be one of 'draw_diag'"):
        m.fit(adaptation="dense")
    with pytest.raises(bg.ArgumentError, match="works with sampler 'auto' or 'kernel'"):
        m.fit(adaptation="diag", sampler="pymc")
