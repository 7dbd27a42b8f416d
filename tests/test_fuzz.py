"""Fuzz test: random small frames and formulas never escape as a foreign exception.

Every outcome of ``GLMM(...)`` followed by ``fit(method="ml")`` (the fast engine) must be
a fit with finite estimates or a :class:`bayesglmm.BayesGLMMError`.  Frames mix numeric,
string, categorical, nullable, boolean, datetime and NaN-holding columns, stray strings,
mixed types and odd column names; formulas mix plain terms, transforms, interactions,
offsets and 0-2 random-effect bars.  Hypothesis runs derandomized (the same examples on
every run).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesglmm as bg

PLAIN = ("x", "x1", "z", "dose", "w2", "age")
ODD = ("my var", "x.y", "_w", "Äb", "log", "C", "y2", "1x", "g")
NAMES = PLAIN * 6 + ODD  # odd names in about one term in five
KINDS = (
    "float",
    "float_nan",
    "int",
    "str",
    "category",
    "Int64",
    "Float64",
    "bool",
    "datetime",
    "string",
    "stray",
    "mixed",
    "constant",
    "float",
    "int",
    "float",
    "object_numbers",
    "huge",
)
TRANSFORMS = ("{}", "{}", "{}", "np.log({})", "I({} ** 2)", "C({})", "scale({})", "log({})")
FAMILIES = ("gaussian", "poisson", "bernoulli", "binomial")


def _ref(name: str) -> str:
    """A column reference in a formula (backticks for names that are not identifiers)."""
    plain = name.replace("_", "a").isalnum() and not name[0].isdigit()
    return name if plain else f"`{name}`"


def _column(
    kind: str, n: int, rng: np.random.Generator
) -> pd.Series | pd.api.extensions.ExtensionArray:
    x = rng.normal(size=n)
    if kind == "float":
        return pd.Series(x)
    if kind == "float_nan":
        return pd.Series(np.where(rng.random(n) < 0.2, np.nan, x))
    if kind == "int":
        return pd.Series(rng.integers(0, 5, n))
    if kind == "str":
        return pd.Series(rng.choice(list("abc"), n))
    if kind == "category":
        return pd.Series(pd.Categorical(rng.choice(list("abc"), n), categories=list("abcd")))
    if kind == "Int64":
        return pd.Series(
            pd.array(
                [None if rng.random() < 0.2 else int(v) for v in rng.integers(0, 9, n)],
                dtype="Int64",
            )
        )
    if kind == "Float64":
        return pd.Series(
            pd.array([None if rng.random() < 0.2 else float(v) for v in x], dtype="Float64")
        )
    if kind == "bool":
        return pd.Series(rng.random(n) < 0.5)
    if kind == "datetime":
        return pd.Series(pd.date_range("2020-01-01", periods=n, freq="D"))
    if kind == "string":
        return pd.Series(pd.array(rng.choice(list("ab"), n), dtype="string"))
    if kind == "stray":
        s = pd.Series(x.round(3), dtype=object)
        s[int(rng.integers(n))] = rng.choice([".", "n/a", "NA", "?"])
        return s
    if kind == "mixed":
        return pd.Series([1 if rng.random() < 0.5 else "1" for _ in range(n)], dtype=object)
    if kind == "constant":
        return pd.Series(np.full(n, 2.0))
    if kind == "object_numbers":
        return pd.Series(list(x), dtype=object)
    return pd.Series(x * 1e8)  # huge


def _group(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    k = int(rng.integers(1, max(2, n // 2) + 1))
    codes = rng.integers(0, k, n)
    if kind == "int":
        return pd.Series(codes)
    if kind == "str":
        return pd.Series([f"L{c:02d}" for c in codes])
    if kind == "nan":
        return pd.Series(np.where(rng.random(n) < 0.15, np.nan, codes.astype(float)))
    if kind == "category":
        return pd.Series(pd.Categorical(codes))
    return pd.Series(np.arange(n))  # one level per row


def _response(family: str, n: int, rng: np.random.Generator, weird: str) -> pd.Series:
    if weird == "nan":
        y = rng.poisson(2.0, n).astype(float)
        y[int(rng.integers(n))] = np.nan
        return pd.Series(y)
    if weird == "string":
        return pd.Series(rng.choice(["no", "yes"], n))
    if weird == "wrong":
        return pd.Series(rng.normal(size=n))
    if family == "gaussian":
        return pd.Series(rng.normal(size=n))
    if family == "bernoulli":
        return pd.Series(rng.integers(0, 2, n))
    return pd.Series(rng.poisson(2.0, n))


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, pd.DataFrame, str]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(3, 40))
    family = draw(st.sampled_from(FAMILIES))
    weird = draw(st.sampled_from(("none",) * 12 + ("nan", "string", "wrong")))
    data: dict[str, object] = {"y": _response(family, n, rng, weird)}
    names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=3, unique=True))
    terms = []
    for name in names:
        kind = draw(st.sampled_from(KINDS))
        data[name] = _column(kind, n, rng)
        terms.append(draw(st.sampled_from(TRANSFORMS)).format(_ref(name)))
    if len(terms) >= 2 and draw(st.booleans()):
        terms.append(f"{terms[0]}:{terms[1]}")
    if draw(st.booleans()) and family in ("poisson", "binomial"):
        data["e"] = pd.Series(
            rng.uniform(-0.5, 3.0, n) if draw(st.booleans()) else rng.uniform(1, 3, n)
        )
        terms.append("offset(log(e))")
    bars = []
    for j in range(draw(st.sampled_from((0,) + (1,) * 5 + (2,) * 4))):
        gname = f"g{j}"
        data[gname] = _group(
            draw(st.sampled_from(("int", "str", "nan", "category", "rows"))), n, rng
        )
        lhs = draw(st.sampled_from(("1", "1", "1 + {}", "0 + {}")))
        slope = _ref(names[0]) if names else "1"
        bar = draw(st.sampled_from(("|", "|", "||")))
        bars.append(f"({lhs.format(slope)} {bar} {gname})")
    if len(bars) == 2 and draw(st.booleans()):
        bars.append("(1 | g0/g1)")
    lhs = "y"
    if family == "binomial":
        data["n"] = pd.Series(rng.integers(1, 8, n) + 4)
        lhs = "cbind(y, n - y)"
    rhs = " + ".join(terms + bars) or "1"
    frame = pd.DataFrame(data)
    return f"{lhs} ~ {rhs}", frame, family


def _finite_fit(fit: bg.GLMMFit) -> bool:
    ml = fit.ml
    parts = [np.asarray(ml.beta, dtype=float), np.asarray(ml.theta, dtype=float)]
    parts += [np.asarray(c, dtype=float).ravel() for c in ml.covariances]
    return all(np.isfinite(p).all() for p in parts)


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_every_outcome_is_a_fit_or_a_package_error(case):
    formula, frame, family = case
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = bg.GLMM(formula, frame, family=family)
            fit = model.fit(method="ml")
    except bg.BayesGLMMError:
        return
    assert _finite_fit(fit), (formula, family, fit.ml.beta, fit.ml.theta)
