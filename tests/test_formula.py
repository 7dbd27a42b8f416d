"""Table-driven tests of the lme4 formula parser: expansions and pinned error messages."""

from __future__ import annotations

import pytest

from bayesglmm.errors import FormulaError
from bayesglmm.formula.bars import RandomTerm, parse_formula

# One random term: (expr, group, factors, correlated)
G = ("1", "g", ("g",), True)


def _re(expr: str, *factors: str, correlated: bool = True) -> tuple:
    return (expr, ":".join(factors), tuple(factors), correlated)


# formula -> (response, failures, fixed as formulaic sees it, offsets, random terms)
CASES: list[tuple[str, tuple]] = [
    # --- bars
    ("y ~ x + (1 | g)", ("y", None, "x", (), [G])),
    ("y ~ x + (x | g)", ("y", None, "x", (), [_re("x", "g")])),  # = (1 + x | g)
    ("y ~ x + (1 + x | g)", ("y", None, "x", (), [_re("1 + x", "g")])),
    ("y ~ x + (0 + x | g)", ("y", None, "x", (), [_re("0 + x", "g")])),
    ("y ~ x + (x - 1 | g)", ("y", None, "x", (), [_re("x - 1", "g")])),
    ("y ~ x + (1 + x || g)", ("y", None, "x", (), [_re("1 + x", "g", correlated=False)])),
    ("y ~ x + (x + z || g)", ("y", None, "x", (), [_re("x + z", "g", correlated=False)])),
    ("y ~ x + (C(f) || g)", ("y", None, "x", (), [_re("C(f)", "g", correlated=False)])),
    ("y ~ (1 | g)", ("y", None, "1", (), [G])),
    ("y ~ 1 + (1 | g)", ("y", None, "1", (), [G])),
    # --- nesting and interaction groups
    ("y ~ (1 | a/b)", ("y", None, "1", (), [_re("1", "a"), _re("1", "a", "b")])),
    (
        "y ~ (1 | a/b/c)",
        ("y", None, "1", (), [_re("1", "a"), _re("1", "a", "b"), _re("1", "a", "b", "c")]),
    ),
    ("y ~ (1 | a:b)", ("y", None, "1", (), [_re("1", "a", "b")])),
    ("y ~ (1 | a:b/c)", ("y", None, "1", (), [_re("1", "a", "b"), _re("1", "a", "b", "c")])),
    (
        "y ~ (1 + x || a/b)",
        (
            "y",
            None,
            "1",
            (),
            [_re("1 + x", "a", correlated=False), _re("1 + x", "a", "b", correlated=False)],
        ),
    ),
    ("y ~ (1 | a / b)", ("y", None, "1", (), [_re("1", "a"), _re("1", "a", "b")])),
    # --- crossed terms, several terms on one factor
    ("y ~ x + (1 | a) + (1 | b)", ("y", None, "x", (), [_re("1", "a"), _re("1", "b")])),
    ("y ~ x + (1 | g) + (0 + x | g)", ("y", None, "x", (), [G, _re("0 + x", "g")])),
    (
        "y ~ x + (1 | g/h) + (1 | k)",
        ("y", None, "x", (), [_re("1", "g"), _re("1", "g", "h"), _re("1", "k")]),
    ),
    ("y ~ (1 | g) + x + (1 | h)", ("y", None, "x", (), [G, _re("1", "h")])),
    # --- fixed part: interactions, transforms, intercept removal
    ("y ~ a * b + (1 | g)", ("y", None, "a * b", (), [G])),
    ("y ~ a + b + a:b + (1 | g)", ("y", None, "a + b + a:b", (), [G])),
    ("y ~ x*z + (1 + x | g)", ("y", None, "x*z", (), [_re("1 + x", "g")])),
    ("y ~ C(a) + (1 | g)", ("y", None, "C(a)", (), [G])),
    ("y ~ C(a, levels=['u', 'v']) + (1 | g)", ("y", None, "C(a, levels=['u', 'v'])", (), [G])),
    ("y ~ I(x**2) + log(z) + (1 | g)", ("y", None, "I(x**2) + log(z)", (), [G])),
    ("y ~ I(x - 1) + (1 | g)", ("y", None, "I(x - 1)", (), [G])),
    ("y ~ (a + b)**2 + (1 | g)", ("y", None, "(a + b)**2", (), [G])),
    ("y ~ 0 + x + (1 | g)", ("y", None, "0 + x", (), [G])),
    ("y ~ x - 1 + (1 | g)", ("y", None, "x - 1", (), [G])),
    ("y ~ -1 + x + (1 | g)", ("y", None, "- 1 + x", (), [G])),
    ("y ~ (1 | g) - 1", ("y", None, "- 1", (), [G])),
    ("y ~ a*b - a:b + (1 | g)", ("y", None, "a*b - a:b", (), [G])),
    # --- offsets
    ("y ~ offset(log(weeks)) + x + (1 | g)", ("y", None, "x", ("log(weeks)",), [G])),
    ("y ~ x + offset(w) + offset(log(v)) + (1 | g)", ("y", None, "x", ("w", "log(v)"), [G])),
    ("y ~ offset(log(w) - u) + (1 | g)", ("y", None, "1", ("log(w) - u",), [G])),
    # --- responses
    ("cbind(s, f) ~ x + (1 | g)", ("s", "f", "x", (), [G])),
    ("cbind(s, n - s) ~ x + (1 | g)", ("s", "n - s", "x", (), [G])),
    ("cbind( s , f ) ~ x + (1 | g)", ("s", "f", "x", (), [G])),
    ("I(y > 0) ~ x + (1 | g)", ("I(y > 0)", None, "x", (), [G])),
    ("log(y) ~ x + (1 | g)", ("log(y)", None, "x", (), [G])),
    # --- backtick names
    ("`my y` ~ `my x` + (1 | `my group`)", ("`my y`", None, "`my x`", (), [_re("1", "my group")])),
    ("y ~ x + (1 | `a b`/c)", ("y", None, "x", (), [_re("1", "a b"), _re("1", "a b", "c")])),
    ("y ~ x + (1 | `a|b`)", ("y", None, "x", (), [_re("1", "a|b")])),
    # --- whitespace and redundant parentheses
    ("y~x+(1|g)", ("y", None, "x", (), [G])),
    ("  y  ~  x  +  ( 1  |  g )  ", ("y", None, "x", (), [G])),
    ("y ~ x +\n (1 | g)", ("y", None, "x", (), [G])),
    ("y ~ x + (1||g)", ("y", None, "x", (), [_re("1", "g", correlated=False)])),
    ("y ~ ((1 | g)) + x", ("y", None, "x", (), [G])),
]


@pytest.mark.parametrize(("formula", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parse_table(formula: str, expected: tuple) -> None:
    response, failures, fixed, offsets, random = expected
    p = parse_formula(formula)
    assert p.formula == formula
    assert p.response == response
    assert p.failures == failures
    assert p.is_cbind == (failures is not None)
    assert p.fixed == fixed
    assert p.offsets == offsets
    assert [(t.expr, t.group, t.factors, t.correlated) for t in p.random] == random
    assert all(isinstance(t, RandomTerm) for t in p.random)


@pytest.mark.parametrize(("formula", "expected"), CASES, ids=[c[0] for c in CASES])
def test_expanded_terms_reparse_to_themselves(formula: str, expected: tuple) -> None:
    """``str(term)`` is valid lme4 syntax that parses back to the same term."""
    for t in parse_formula(formula).random:
        again = parse_formula(f"y ~ {t}").random
        assert again == (t,)


def test_random_term_str() -> None:
    assert str(RandomTerm("1 + x", "a:b", ("a", "b"), correlated=False)) == "(1 + x || a:b)"
    assert str(RandomTerm("1", "my group", ("my group",))) == "(1 | `my group`)"


ERRORS: list[tuple[str, str]] = [
    (
        "y ~ x + (1 | g",
        "unbalanced parentheses: `(` is never closed\n    y ~ x + (1 | g\n            ^",
    ),
    ("y ~ x )", "unbalanced parentheses: `)` has no matching `(`\n    y ~ x )\n          ^"),
    (
        "y ~ x + (1 | g))",
        "unbalanced parentheses: `)` has no matching `(`\n    y ~ x + (1 | g))\n                   ^",
    ),
    (
        "y ~ `my x + (1 | g)",
        "unbalanced quotes: this backtick is never closed\n    y ~ `my x + (1 | g)\n        ^",
    ),
    (
        "y x + (1 | g)",
        "the formula has no `~`; write `response ~ terms`\n    y x + (1 | g)\n                 ^",
    ),
    ("y ~ x ~ z", "more than one `~`\n    y ~ x ~ z\n          ^"),
    ("~ x + (1 | g)", "the formula has no response before `~`\n    ~ x + (1 | g)\n    ^"),
    ("y ~", "the formula has no terms after `~`; write `y ~ 1`\n    y ~\n       ^"),
    ("y ~ x +", "`+` must be followed by a term\n    y ~ x +\n          ^"),
    ("y ~ x + + z", "`+` must be followed by a term\n    y ~ x + + z\n          ^"),
    ("y ~ x + (1 | )", "empty grouping factor after `|`\n    y ~ x + (1 | )\n                 ^"),
    ("y ~ x + (1 |)", "empty grouping factor after `|`\n    y ~ x + (1 |)\n                ^"),
    ("y ~ (1 | a/)", "empty grouping factor in `a/`\n    y ~ (1 | a/)\n               ^"),
    ("y ~ (1 | a:)", "empty grouping factor in `a:`\n    y ~ (1 | a:)\n               ^"),
    (
        "y ~ x + ( | g)",
        "empty left-hand side before `|`; write `(1 | g)`\n    y ~ x + ( | g)\n              ^",
    ),
    (
        "y ~ x | g",
        "`|` outside parentheses: random-effect terms are written `(1 | g)`\n"
        "    y ~ x | g\n          ^",
    ),
    (
        "y ~ x + (1 | g) || h",
        "`|` outside parentheses: random-effect terms are written `(1 | g)`\n"
        "    y ~ x + (1 | g) || h\n                    ^",
    ),
    (
        "y | z ~ x",
        "`|` is only allowed in a random-effect term `(1 | g)`\n    y | z ~ x\n      ^",
    ),
    (
        "y ~ (1 | g | h)",
        "a random-effect term has more than one `|`\n    y ~ (1 | g | h)\n               ^",
    ),
    (
        "y ~ x + (1 | g):z",
        "a random-effect term must be added on its own, as `+ (1 | g)`\n"
        "    y ~ x + (1 | g):z\n               ^",
    ),
    (
        "y ~ x - (1 | g)",
        "a random-effect term cannot be removed with `-`\n    y ~ x - (1 | g)\n            ^",
    ),
    (
        "y ~ (1 | log(g))",
        "grouping factor `log(g)` must be a column name (use `a:b` for an interaction, `a/b` "
        "for nesting and backticks for other names)\n    y ~ (1 | log(g))\n             ^",
    ),
    (
        "cbind(s) ~ x",
        "cbind() needs exactly two arguments: cbind(successes, failures); got 1\n"
        "    cbind(s) ~ x\n    ^",
    ),
    (
        "cbind(s, f, n) ~ x",
        "cbind() needs exactly two arguments: cbind(successes, failures); got 3\n"
        "    cbind(s, f, n) ~ x\n    ^",
    ),
    (
        "cbind(s, ) ~ x",
        "cbind() needs exactly two arguments: cbind(successes, failures); one is empty\n"
        "    cbind(s, ) ~ x\n    ^",
    ),
    (
        "y ~ x - offset(w)",
        "offset() needs one expression, added with `+`\n    y ~ x - offset(w)\n            ^",
    ),
    (
        "y ~ offset() + x",
        "offset() needs one expression, added with `+`\n    y ~ offset() + x\n        ^",
    ),
    ("", "the formula is empty; write e.g. `y ~ x + (1 | g)`"),
    ("   ", "the formula is empty; write e.g. `y ~ x + (1 | g)`"),
]


@pytest.mark.parametrize(("formula", "message"), ERRORS, ids=[e[0] or "empty" for e in ERRORS])
def test_errors_pinned(formula: str, message: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    assert str(info.value) == message


def test_non_string_formula() -> None:
    with pytest.raises(FormulaError, match="the formula must be a string, not NoneType"):
        parse_formula(None)  # type: ignore[arg-type]
