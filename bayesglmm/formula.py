"""lme4 formula syntax: find and expand the ``(terms | group)`` parts.

formulaic cannot parse bars, so this module splits a formula such as
``y ~ x + offset(log(w)) + (1 + x || g) + (1 | a/b)`` into

* the response (a column, an expression, or ``cbind(successes, failures)``),
* the fixed part, handed to formulaic as a string (``"x"``),
* offset expressions (``"log(w)"``),
* one :class:`RandomTerm` per random-effect term, with ``a/b`` expanded to ``a`` and
  ``a:b`` and ``||`` marked as uncorrelated.

No data and no PyMC here.  Errors are :class:`~bayesglmm.errors.FormulaError` with the
formula and a caret under the offending spot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bayesglmm.errors import FormulaError

_IDENT = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term after expansion.

    Attributes
    ----------
    expr : str
        Left-hand side of the bar, e.g. ``"1 + x"`` (formulaic syntax).
    group : str
        Grouping factor label, e.g. ``"g"`` or ``"a:b"``.
    factors : tuple of str
        Columns whose interaction forms the group, e.g. ``("a", "b")``.
    correlated : bool
        False for ``||``.
    """

    expr: str
    group: str
    factors: tuple[str, ...]
    correlated: bool = True

    def __str__(self) -> str:
        return f"({self.expr} {'|' if self.correlated else '||'} {self.group})"


@dataclass(frozen=True)
class ParsedFormula:
    """A parsed lme4-style formula.

    Attributes
    ----------
    formula : str
        The original text.
    response : str
        Response expression (for ``cbind`` the successes expression).
    failures : str or None
        The second ``cbind`` argument, when the response is ``cbind(s, f)``.
    fixed : str
        Fixed part in formulaic syntax (``"1"`` when only an intercept).
    offsets : tuple of str
        Expressions inside ``offset(...)`` terms.
    random : tuple of RandomTerm
        Expanded random-effect terms, in formula order.
    """

    formula: str
    response: str
    failures: str | None
    fixed: str
    offsets: tuple[str, ...]
    random: tuple[RandomTerm, ...]

    @property
    def is_cbind(self) -> bool:
        """True for a ``cbind(successes, failures)`` response."""
        return self.failures is not None


def _fail(formula: str, pos: int, message: str) -> FormulaError:
    pos = max(0, min(pos, len(formula)))
    return FormulaError(f"{message}\n    {formula}\n    {' ' * pos}^")


def _check_parens(formula: str) -> None:
    stack: list[int] = []
    for i, ch in enumerate(formula):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                raise _fail(formula, i, "unbalanced parentheses: `)` has no matching `(`")
            stack.pop()
    if stack:
        raise _fail(formula, stack[-1], "unbalanced parentheses: `(` is never closed")


def _split_top(text: str, seps: str, offset: int) -> list[tuple[str, int, str]]:
    """Split ``text`` at depth-0 separator characters.

    Returns (piece, absolute start position, preceding separator) triples.
    """
    out: list[tuple[str, int, str]] = []
    depth, start, sep = 0, 0, "+"
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in seps:
            # a '-' directly after an operator or at start is a unary sign, not a separator
            out.append((text[start:i], offset + start, sep))
            sep, start = ch, i + 1
    out.append((text[start:], offset + start, sep))
    return out


def _strip_pos(piece: str, pos: int) -> tuple[str, int]:
    lead = len(piece) - len(piece.lstrip())
    return piece.strip(), pos + lead


def _find_top(text: str, target: str) -> int:
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text.startswith(target, i):
            return i
    return -1


def _expand_group(formula: str, group: str, pos: int) -> list[tuple[str, tuple[str, ...]]]:
    if not group:
        raise _fail(formula, pos, "empty grouping factor after `|`")
    parts = [p.strip() for p in group.split("/")]
    out: list[tuple[str, tuple[str, ...]]] = []
    acc: list[str] = []
    for part in parts:
        factors = [f.strip() for f in part.split(":")]
        for f in factors:
            if not f:
                raise _fail(formula, pos, f"empty grouping factor in `{group}`")
            if not _IDENT.match(f):
                raise _fail(
                    formula,
                    pos,
                    f"grouping factor `{f}` must be a column name (use `a:b` for an "
                    "interaction and `a/b` for nesting)",
                )
        acc.extend(f.strip("`") for f in factors)
        out.append((":".join(acc), tuple(acc)))
    return out


def _random_term(formula: str, inner: str, pos: int) -> list[RandomTerm]:
    bar = _find_top(inner, "|")
    double = inner.startswith("||", bar)
    lhs = inner[:bar].strip()
    rest = inner[bar + (2 if double else 1) :]
    if _find_top(rest, "|") >= 0:
        raise _fail(formula, pos + bar, "a random-effect term has more than one `|`")
    if not lhs:
        raise _fail(formula, pos + bar, "empty left-hand side before `|`; write `(1 | g)`")
    group = rest.strip()
    gpos = pos + bar + (2 if double else 1) + (len(rest) - len(rest.lstrip()))
    return [
        RandomTerm(expr=lhs, group=label, factors=factors, correlated=not double)
        for label, factors in _expand_group(formula, group, gpos)
    ]


def _parse_cbind(formula: str, lhs: str, pos: int) -> tuple[str, str] | None:
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs, flags=re.S)
    if not m:
        return None
    args = _split_top(m.group(1), ",", 0)
    if len(args) != 2 or not all(a.strip() for a, _, _ in args):
        raise _fail(formula, pos, "cbind() needs exactly two arguments: cbind(successes, failures)")
    return args[0][0].strip(), args[1][0].strip()


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4-style GLMM formula.

    Parameters
    ----------
    formula : str
        For example ``"y ~ x + (1 + x | g)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        On unbalanced parentheses, a missing ``~``, an empty group, a bar outside
        parentheses or a malformed ``cbind``; the message shows the formula with a caret.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("the formula is empty; write e.g. `y ~ x + (1 | g)`")
    _check_parens(formula)
    tilde = _find_top(formula, "~")
    if tilde < 0:
        raise _fail(formula, len(formula), "the formula has no `~`; write `response ~ terms`")
    if _find_top(formula[tilde + 1 :], "~") >= 0:
        raise _fail(formula, tilde + 1 + _find_top(formula[tilde + 1 :], "~"), "more than one `~`")
    lhs, lpos = _strip_pos(formula[:tilde], 0)
    if not lhs:
        raise _fail(formula, tilde, "the formula has no response before `~`")
    bar = _find_top(lhs, "|")
    if bar >= 0:
        raise _fail(formula, lpos + bar, "`|` is only allowed inside parentheses: `(1 | g)`")
    cb = _parse_cbind(formula, lhs, lpos)
    response, failures = cb if cb else (lhs, None)

    rhs_text = formula[tilde + 1 :]
    rhs_off = tilde + 1
    bar = _find_top(rhs_text, "|")
    if bar >= 0:
        raise _fail(
            formula,
            rhs_off + bar,
            "`|` outside parentheses: random-effect terms are written `(1 | g)`",
        )
    fixed: list[str] = []
    offsets: list[str] = []
    random: list[RandomTerm] = []
    for piece, pos, sign in _split_top(rhs_text, "+-", rhs_off):
        text, pos = _strip_pos(piece, pos)
        if not text:
            if sign == "-":
                raise _fail(formula, pos, "`-` must be followed by a term")
            if fixed or random or offsets:
                raise _fail(formula, pos, "empty term (two `+` in a row?)")
            continue
        if text.startswith("(") and text.endswith(")") and _find_top(text[1:-1], "|") >= 0:
            if sign == "-":
                raise _fail(formula, pos, "a random-effect term cannot be removed with `-`")
            random.extend(_random_term(formula, text[1:-1], pos + 1))
            continue
        m = re.fullmatch(r"offset\s*\((.*)\)", text, flags=re.S)
        if m:
            if sign == "-" or not m.group(1).strip():
                raise _fail(formula, pos, "offset() needs one expression, added with `+`")
            offsets.append(m.group(1).strip())
            continue
        fixed.append(f"{'-' if sign == '-' else '+'} {text}")
    fixed_str = " ".join(fixed).lstrip("+ ").strip()
    if fixed_str.startswith("-"):
        fixed_str = "1 " + fixed_str
    return ParsedFormula(
        formula=formula,
        response=response,
        failures=failures,
        fixed=fixed_str or "1",
        offsets=tuple(offsets),
        random=tuple(random),
    )
