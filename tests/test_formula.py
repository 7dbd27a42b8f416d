"""Table-driven tests of the lme4 formula parser: expansions and pinned error messages."""

from __future__ import annotations

import pytest

from bayesglmm.errors import FormulaError
from bayesglmm.formula import parse_formula

# formula -> (response, failures, fixed, offsets, [(expr, group, factors, correlated)])
CASES = [
    ("y ~ x + (1 | g)", ("y", None, "x", (), [("1", "g", ("g",), True)])),
    ("y ~ x + (x | g)", ("y", None, "x", (), [("x", "g", ("g",), True)])),
    ("y ~ x + (1 + x | g)", ("y", None, "x", (), [("1 + x", "g", ("g",), True)])),
    ("y ~ x + (0 + x | g)", ("y", None, "x", (), [("0 + x", "g", ("g",), True)])),
    ("y ~ x + (1 + x || g)", ("y", None, "x", (), [("1 + x", "g", ("g",), False)])),
    (
        "y ~ (1 | a/b)",
        ("y", None, "1", (), [("1", "a", ("a",), True), ("1", "a:b", ("a", "b"), True)]),
    ),
    (
        "y ~ (1 | a/b/c)",
        (
            "y",
            None,
            "1",
            (),
            [
                ("1", "a", ("a",), True),
                ("1", "a:b", ("a", "b"), True),
                ("1", "a:b:c", ("a", "b", "c"), True),
            ],
        ),
    ),
    ("y ~ (1 | a:b)", ("y", None, "1", (), [("1", "a:b", ("a", "b"), True)])),
    (
        "y ~ x + (1 | a) + (1 | b)",
        ("y", None, "x", (), [("1", "a", ("a",), True), ("1", "b", ("b",), True)]),
    ),
    (
        "y ~ x + (1 | g) + (0 + x | g)",
        ("y", None, "x", (), [("1", "g", ("g",), True), ("0 + x", "g", ("g",), True)]),
    ),
    ("y ~ a * b + (1 | g)", ("y", None, "a * b", (), [("1", "g", ("g",), True)])),
    ("y ~ a + b + a:b + (1 | g)", ("y", None, "a + b + a:b", (), [("1", "g", ("g",), True)])),
    ("y ~ C(a) + (1 | g)", ("y", None, "C(a)", (), [("1", "g", ("g",), True)])),
    (
        "y ~ I(x**2) + log(z) + (1 | g)",
        ("y", None, "I(x**2) + log(z)", (), [("1", "g", ("g",), True)]),
    ),
    (
        "y ~ offset(log(weeks)) + x + (1 | g)",
        ("y", None, "x", ("log(weeks)",), [("1", "g", ("g",), True)]),
    ),
    (
        "y ~ x + offset(w) + offset(log(v)) + (1 | g)",
        ("y", None, "x", ("w", "log(v)"), [("1", "g", ("g",), True)]),
    ),
    ("y ~ 0 + x + (1 | g)", ("y", None, "0 + x", (), [("1", "g", ("g",), True)])),
    ("y ~ x - 1 + (1 | g)", ("y", None, "x - 1", (), [("1", "g", ("g",), True)])),
    ("cbind(s, f) ~ x + (1 | g)", ("s", "f", "x", (), [("1", "g", ("g",), True)])),
    ("cbind(s, n - s) ~ x + (1 | g)", ("s", "n - s", "x", (), [("1", "g", ("g",), True)])),
    ("y~x+(1|g)", ("y", None, "x", (), [("1", "g", ("g",), True)])),
    ("  y  ~  x  +  ( 1  |  g )  ", ("y", None, "x", (), [("1", "g", ("g",), True)])),
    ("y ~ (1 | g)", ("y", None, "1", (), [("1", "g", ("g",), True)])),
    ("y ~ 1 + (1 | g)", ("y", None, "1", (), [("1", "g", ("g",), True)])),
    ("y ~ x + (x + z || g)", ("y", None, "x", (), [("x + z", "g", ("g",), False)])),
    ("y ~ x + (C(f) || g)", ("y", None, "x", (), [("C(f)", "g", ("g",), False)])),
    ("I(y > 0) ~ x + (1 | g)", ("I(y > 0)", None, "x", (), [("1", "g", ("g",), True)])),
    (
        "y ~ x + (1 | g/h) + (1 | k)",
        (
            "y",
            None,
            "x",
            (),
            [("1", "g", ("g",), True), ("1", "g:h", ("g", "h"), True), ("1", "k", ("k",), True)],
        ),
    ),
    ("y ~ x*z + (1 + x | g)", ("y", None, "x*z", (), [("1 + x", "g", ("g",), True)])),
    (
        "y ~ x + (1 | `my group`)",
        ("y", None, "x", (), [("1", "`my group`" if False else "my group", ("my group",), True)]),
    ),
]


@pytest.mark.parametrize("formula,expected", CASES, ids=[c[0] for c in CASES])
def test_parse_table(formula, expected):
    response, failures, fixed, offsets, random = expected
    p = parse_formula(formula)
    assert p.response == response
    assert p.failures == failures
    assert p.fixed == fixed
    assert p.offsets == offsets
    assert [(t.expr, t.group, t.factors, t.correlated) for t in p.random] == random
    # expanded bars reassemble: every group of the formula appears in the expansion
    for t in p.random:
        assert str(t).startswith("(") and ("||" in str(t)) == (not t.correlated)


ERRORS = [
    (
        "y ~ x + (1 | g",
        "unbalanced parentheses: `(` is never closed\n    y ~ x + (1 | g\n            ^",
    ),
    ("y ~ x )", "unbalanced parentheses: `)` has no matching `(`\n    y ~ x )\n          ^"),
    (
        "y x + (1 | g)",
        "the formula has no `~`; write `response ~ terms`\n    y x + (1 | g)\n                 ^",
    ),
    ("y ~ x + (1 | )", "empty grouping factor after `|`\n    y ~ x + (1 | )\n                 ^"),
    (
        "y ~ x + ( | g)",
        "empty left-hand side before `|`; write `(1 | g)`\n    y ~ x + ( | g)\n              ^",
    ),
    (
        "y ~ x | g",
        "`|` outside parentheses: random-effect terms are written `(1 | g)`\n    y ~ x | g\n          ^",
    ),
    ("y ~ x ~ z", "more than one `~`\n    y ~ x ~ z\n          ^"),
    (
        "y ~ x - (1 | g)",
        "a random-effect term cannot be removed with `-`\n    y ~ x - (1 | g)\n            ^",
    ),
    (
        "cbind(s) ~ x",
        "cbind() needs exactly two arguments: cbind(successes, failures)\n    cbind(s) ~ x\n    ^",
    ),
    ("", "the formula is empty; write e.g. `y ~ x + (1 | g)`"),
]


@pytest.mark.parametrize("formula,message", ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_errors_pinned(formula, message):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    assert str(info.value) == message
