"""lme4 formula syntax: find and expand the ``(terms | group)`` parts.

formulaic cannot parse bars, so this module splits a formula such as
``y ~ x + offset(log(w)) + (1 + x || g) + (1 | a/b)`` into

* the response (a column, an expression, or ``cbind(successes, failures)``),
* the fixed part, handed to formulaic as a string (``"x"``),
* offset expressions (``"log(w)"``),
* one :class:`RandomTerm` per random-effect term, with ``a/b`` expanded to ``a`` and
  ``a:b`` and ``||`` marked as uncorrelated.

Column names that are not Python identifiers are written in backticks
(``(1 | `school id`)``); text inside backticks or quotes is never split.

No data and no PyMC here.  Errors are :class:`~bayesglmm.errors.FormulaError` with the
formula and a caret under the offending spot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bayesglmm.errors import FormulaError

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula"]

_IDENT = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")
_QUOTES = "`'\""
# lme4 (>= 2.0) covariance tags: diag(1 + x | g), us(...), cs(...), ar1(...), ...
_COVARIANCE = re.compile(
    r"(diag|us|cs|ar1|homdiag|hetar1|homcs|hetcs|ou|exp|gau|mat|toep|rr|propto)\s*\((.*)\)",
    flags=re.S,
)


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term after expansion.

    Attributes
    ----------
    expr : str
        Left-hand side of the bar, e.g. ``"1 + x"`` (formulaic syntax).  As in lme4 an
        intercept is implied: ``"x"`` gives the columns ``(Intercept)`` and ``x``.
    group : str
        Grouping factor label, e.g. ``"g"`` or ``"a:b"`` (backticks removed).
    factors : tuple of str
        Columns whose interaction forms the group, e.g. ``("a", "b")``.
    correlated : bool
        False for ``||`` and ``diag()``.
    diag : bool
        True for ``diag(lhs | g)``: one term with a diagonal covariance matrix.  A ``||``
        term (``correlated=False``, ``diag=False``) is split by the design as lme4 splits
        it, one term per left-hand-side term: ``(1 + f || g)`` is ``(1 | g) + (0 + f | g)``.
    """

    expr: str
    group: str
    factors: tuple[str, ...]
    correlated: bool = True
    diag: bool = False

    def __str__(self) -> str:
        group = ":".join(f if _IDENT.match(f) else f"`{f}`" for f in self.factors)
        if self.diag:
            return f"diag({self.expr} | {group})"
        return f"({self.expr} {'|' if self.correlated else '||'} {group})"


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


def _scan(text: str) -> Iterator[tuple[int, str, int]]:
    """Yield ``(position, character, depth)`` for characters outside quotes and backticks.

    ``depth`` is the parenthesis depth before the character.  Quoted text is skipped, so a
    ``(`` or ``|`` inside a backticked column name or a string never counts.
    """
    depth, quote = 0, ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in _QUOTES:
            quote = ch
            continue
        yield i, ch, depth
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1


def _check_parens(formula: str) -> None:
    stack: list[int] = []
    for i, ch, _ in _scan(formula):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                raise _fail(formula, i, "unbalanced parentheses: `)` has no matching `(`")
            stack.pop()
    if stack:
        raise _fail(formula, stack[-1], "unbalanced parentheses: `(` is never closed")
    open_quote = -1
    for i, ch in enumerate(formula):
        if open_quote >= 0:
            if ch == formula[open_quote]:
                open_quote = -1
        elif ch in _QUOTES:
            open_quote = i
    if open_quote >= 0:
        kind = {"`": "backtick", "'": "single quote", '"': "double quote"}[formula[open_quote]]
        raise _fail(formula, open_quote, f"unbalanced quotes: this {kind} is never closed")


def _split_top(text: str, seps: str, offset: int) -> list[tuple[str, int, str]]:
    """Split ``text`` at depth-0 separator characters (outside quotes).

    Returns (piece, absolute start position, preceding separator) triples; the first
    piece has the separator ``"+"``.
    """
    out: list[tuple[str, int, str]] = []
    start, sep = 0, "+"
    for i, ch, depth in _scan(text):
        if depth == 0 and ch in seps:
            out.append((text[start:i], offset + start, sep))
            sep, start = ch, i + 1
    out.append((text[start:], offset + start, sep))
    return out


def _strip_pos(piece: str, pos: int) -> tuple[str, int]:
    lead = len(piece) - len(piece.lstrip())
    return piece.strip(), pos + lead


def _find_top(text: str, target: str) -> int:
    for i, ch, depth in _scan(text):
        if depth == 0 and ch == target[0] and text.startswith(target, i):
            return i
    return -1


def _wrapped(text: str) -> bool:
    """True when ``text`` is ``( ... )`` with the first ``(`` closed by the last ``)``."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    for i, ch, depth in _scan(text):
        if ch == ")" and depth == 1:
            return i == len(text) - 1
    return False


def _stray_bar(text: str) -> int:
    """Position of a ``|`` inside bare parentheses (not a function call's), or -1."""
    stack: list[bool] = []  # True for a bare "(", False for a call such as I(...)
    for i, ch, _ in _scan(text):
        if ch == "(":
            before = text[:i].rstrip()
            stack.append(not before or not (before[-1].isalnum() or before[-1] in "_.`"))
        elif ch == ")":
            stack.pop()
        elif ch == "|" and (not stack or stack[-1]):
            return i
    return -1


def _expand_group(formula: str, group: str, pos: int) -> list[tuple[str, tuple[str, ...]]]:
    """``a/b/c`` -> ``a``, ``a:b``, ``a:b:c``; ``a:b`` stays one interaction."""
    if not group:
        raise _fail(formula, pos, "empty grouping factor after `|`")
    out: list[tuple[str, tuple[str, ...]]] = []
    acc: list[str] = []
    for part, ppos, _ in _split_top(group, "/", pos):
        for factor, fpos, _ in _split_top(part, ":", ppos):
            name, fpos = _strip_pos(factor, fpos)
            if not name:
                raise _fail(formula, fpos, f"empty grouping factor in `{group}`")
            if not _IDENT.match(name):
                raise _fail(
                    formula,
                    fpos,
                    f"grouping factor `{name}` must be a column name (use `a:b` for an "
                    "interaction, `a/b` for nesting and backticks for other names)",
                )
            acc.append(name.strip("`"))
        out.append((":".join(acc), tuple(acc)))
    return out


def _random_term(
    formula: str, inner: str, pos: int, structure: str | None = None
) -> list[RandomTerm]:
    """Expand the inside of ``( lhs | group )``; ``pos`` is where ``inner`` starts.

    ``structure`` is lme4's covariance tag of ``diag(lhs | group)`` / ``us(lhs | group)``.
    """
    bar = _find_top(inner, "|")
    double = inner.startswith("||", bar)
    width = 2 if double else 1
    lhs = inner[:bar].strip()
    rest = inner[bar + width :]
    extra = _find_top(rest, "|")
    if extra >= 0:
        raise _fail(
            formula, pos + bar + width + extra, "a random-effect term has more than one `|`"
        )
    if not lhs:
        raise _fail(formula, pos + bar, "empty left-hand side before `|`; write `(1 | g)`")
    group, gpos = _strip_pos(rest, pos + bar + width)
    if not group:
        raise _fail(formula, pos + len(inner), "empty grouping factor after `|`")
    correlated = not double if structure is None else structure == "us"
    diag = structure == "diag"
    return [
        RandomTerm(expr=lhs, group=label, factors=factors, correlated=correlated, diag=diag)
        for label, factors in _expand_group(formula, group, gpos)
    ]


def _parse_cbind(formula: str, lhs: str, pos: int) -> tuple[str, str] | None:
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs, flags=re.S)
    if not m or not _wrapped(lhs[lhs.index("(") :]):
        return None
    args = _split_top(m.group(1), ",", 0)
    if len(args) != 2 or not all(a.strip() for a, _, _ in args):
        raise _fail(
            formula,
            pos,
            f"cbind() needs exactly two arguments: cbind(successes, failures); got {len(args)}"
            if len(args) != 2
            else "cbind() needs exactly two arguments: cbind(successes, failures); one is empty",
        )
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
        On unbalanced parentheses or quotes, a missing or repeated ``~``, an empty response,
        an empty term, an empty group or left-hand side, a bar outside its own parenthesized
        term, a removed (``-``) random term, or a malformed ``cbind``/``offset``; the message
        shows the formula with a caret under the offending spot.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string, not {type(formula).__name__}")
    if not formula.strip():
        raise FormulaError("the formula is empty; write e.g. `y ~ x + (1 | g)`")
    _check_parens(formula)
    tilde = _find_top(formula, "~")
    if tilde < 0:
        raise _fail(formula, len(formula), "the formula has no `~`; write `response ~ terms`")
    second = _find_top(formula[tilde + 1 :], "~")
    if second >= 0:
        raise _fail(formula, tilde + 1 + second, "more than one `~`")
    lhs, lpos = _strip_pos(formula[:tilde], 0)
    if not lhs:
        raise _fail(formula, tilde, "the formula has no response before `~`")
    bar = _stray_bar(lhs)
    if bar >= 0:
        raise _fail(formula, lpos + bar, "`|` is only allowed in a random-effect term `(1 | g)`")
    cb = _parse_cbind(formula, lhs, lpos)
    response, failures = cb if cb else (lhs, None)

    rhs_text = formula[tilde + 1 :]
    rhs_off = tilde + 1
    if not rhs_text.strip():
        raise _fail(formula, len(formula), "the formula has no terms after `~`; write `y ~ 1`")
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
    for k, (piece, start, sign) in enumerate(_split_top(rhs_text, "+-", rhs_off)):
        text, pos = _strip_pos(piece, start)
        if not text:
            if k == 0:  # a leading sign, as in `y ~ -1 + x`
                continue
            raise _fail(formula, start - 1, f"`{sign}` must be followed by a term")
        while _wrapped(text) and _wrapped(text[1:-1].strip()):  # ((1 | g)) -> (1 | g)
            text, pos = _strip_pos(text[1:-1], pos + 1)
        if _wrapped(text) and _find_top(text[1:-1], "|") >= 0:
            if sign == "-":
                raise _fail(formula, pos, "a random-effect term cannot be removed with `-`")
            random.extend(_random_term(formula, text[1:-1], pos + 1))
            continue
        m = _COVARIANCE.fullmatch(text)
        if m and _wrapped(text[m.end(1) :].lstrip()) and _find_top(m.group(2), "|") >= 0:
            tag = m.group(1)
            if sign == "-":
                raise _fail(formula, pos, "a random-effect term cannot be removed with `-`")
            if tag not in ("diag", "us"):
                raise _fail(
                    formula,
                    pos,
                    f"covariance structure `{tag}()` is not supported; use `us(...)` or "
                    "`(... | g)` for an unstructured and `diag(...)` or `(... || g)` for a "
                    "diagonal covariance matrix",
                )
            inner_pos = pos + text.index("(", len(tag)) + 1
            random.extend(_random_term(formula, m.group(2), inner_pos, structure=tag))
            continue
        stray = _stray_bar(text)
        if stray >= 0:
            raise _fail(
                formula,
                pos + stray,
                "a random-effect term must be added on its own, as `+ (1 | g)`",
            )
        m = re.fullmatch(r"offset\s*\((.*)\)", text, flags=re.S)
        if m and _wrapped(text[text.index("(") :]):
            if sign == "-" or not m.group(1).strip():
                raise _fail(formula, pos, "offset() needs one expression, added with `+`")
            offsets.append(m.group(1).strip())
            continue
        fixed.append(f"{sign} {text}")
    fixed_str = " ".join(fixed).strip()
    fixed_str = fixed_str[2:] if fixed_str.startswith("+ ") else fixed_str
    return ParsedFormula(
        formula=formula,
        response=response,
        failures=failures,
        fixed=fixed_str or "1",
        offsets=tuple(offsets),
        random=tuple(random),
    )
