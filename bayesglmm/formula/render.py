"""One translation of R formula tokens into formulaic text (:class:`Renderer`), and its
result (:class:`Translation`): the text, the columns it uses and R's spelling of each
translated call.

The walk over the tokens is here; the tokens and the tables of R functions are in
:mod:`bayesglmm.formula.rsyntax`, and :class:`bayesglmm.formula.rlang.Lang` (one data set's
column names and their safe names) starts each translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from formulaic import Formula

from bayesglmm.errors import FormulaError
from bayesglmm.formula.rsyntax import (
    CONSTANTS,
    FACTOR_FUNCTIONS,
    FORMULAIC_TRANSFORMS,
    NUMERIC_FUNCTIONS,
    NUMPY_FUNCTIONS,
    R_OPERATORS,
    SPLINE_DF,
    SUPPORTED_FUNCTIONS,
    TOKEN,
    Tok,
    caret,
)

__all__ = ["ColumnNames", "Renderer", "Translation"]


@dataclass
class Translation:
    """The formulaic text of some R text, and the columns it uses.

    Attributes
    ----------
    text : str
        formulaic text.
    columns : list of (str, int)
        Each column reference (column name as in the data, or an unknown name) and its
        position in the R text.
    display : dict
        formulaic's name of each translated call -> the R text it came from.
    """

    text: str
    columns: list[tuple[str, int]] = field(default_factory=list)
    display: dict[str, str] = field(default_factory=dict)


class ColumnNames(Protocol):
    """What a translation needs of :class:`bayesglmm.formula.rlang.Lang`: the data's column
    names and the name formulaic sees for each."""

    columns: frozenset[str]

    def safe_name(self, column: str) -> str:
        """The name formulaic sees for ``column``."""
        ...


class Renderer:
    """One translation: walks the tokens, writes formulaic text, records columns."""

    def __init__(self, lang: ColumnNames, formula: str, out: Translation, whole: str = "") -> None:
        self.lang = lang
        self.formula = formula
        self.out = out
        self.whole = whole or formula

    def fail(self, pos: int, message: str) -> FormulaError:
        if self.whole != self.formula:  # a piece not found verbatim: place the caret by text
            m = TOKEN.match(self.formula, pos)
            found = self.whole.find(m.group()) if m else -1
            if found >= 0:
                return FormulaError(caret(self.whole, found, message))
        return FormulaError(caret(self.formula, pos, message))

    # -------------------------------------------------------------- structure
    def _close(self, toks: list[Tok], i: int) -> int:
        """Index of the token closing the bracket at ``toks[i]``."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack = [pairs[toks[i].text]]
        for j in range(i + 1, len(toks)):
            t = toks[j].text
            if toks[j].kind != "op":
                continue
            if t in pairs:
                stack.append(pairs[t])
            elif t in (")", "]", "}"):
                if t != stack[-1]:
                    raise self.fail(toks[j].pos, f"`{t}` does not close `{toks[i].text}`")
                stack.pop()
                if not stack:
                    return j
        raise self.fail(toks[i].pos, f"`{toks[i].text}` is never closed")

    def _split_args(self, toks: list[Tok]) -> list[list[Tok]]:
        args: list[list[Tok]] = [[]]
        depth = 0
        for t in toks:
            if t.kind == "op" and t.text in "([{":
                depth += 1
            elif t.kind == "op" and t.text in ")]}":
                depth -= 1
            if depth == 0 and t.kind == "op" and t.text == ",":
                args.append([])
            else:
                args[-1].append(t)
        return [] if args == [[]] else args

    def _column(self, name: str, pos: int) -> str:
        self.out.columns.append((name, pos))
        return self.lang.safe_name(name)

    def _source(self, toks: list[Tok]) -> str:
        return self.formula[toks[0].pos : toks[-1].pos + len(toks[-1].text)]

    # -------------------------------------------------------------- formula level
    def terms(self, toks: list[Tok]) -> str:
        parts: list[str] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if t.kind == "name" and nxt is not None and nxt.text == "(" and nxt.kind == "op":
                j = self._close(toks, i + 1)
                code = self.call(toks[i : j + 1])
                src = " ".join(self._source(toks[i : j + 1]).split())
                norm = _normalized(code)
                if norm != src:  # model-matrix columns keep the user's spelling
                    self.out.display[norm] = src
                parts.append(code)
                i = j + 1
                continue
            if t.kind == "name":
                parts.append(self._column(t.text, t.pos))
            elif t.kind == "bq":
                if not t.text.strip("`"):
                    raise self.fail(t.pos, "empty name in backticks")
                parts.append(self._column(t.text[1:-1], t.pos))
            elif t.kind == "op" and t.text == "(":
                j = self._close(toks, i)
                parts.append("(" + self.terms(toks[i + 1 : j]) + ")")
                i = j + 1
                continue
            elif t.kind == "str":
                raise self.fail(
                    t.pos, f"a string {t.text} cannot be a term; did you mean a column?"
                )
            elif t.kind == "num":
                parts.append(t.text.rstrip("L"))
            else:
                parts.append(t.text)
            i += 1
        return " ".join(parts)

    # -------------------------------------------------------------- code
    def code(self, toks: list[Tok]) -> str:
        parts: list[str] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if t.kind == "name" and nxt is not None and nxt.text == "(" and nxt.kind == "op":
                j = self._close(toks, i + 1)
                parts.append(self.call(toks[i : j + 1]))
                i = j + 1
                continue
            if t.kind == "op" and t.text in "([{":
                j = self._close(toks, i)
                inner = self.code(toks[i + 1 : j])
                parts.append(t.text + inner + toks[j].text)
                i = j + 1
                continue
            if t.kind == "name":
                parts.append(self.value_name(t))
            elif t.kind == "bq":
                if not t.text.strip("`"):
                    raise self.fail(t.pos, "empty name in backticks")
                parts.append(self._column(t.text[1:-1], t.pos))
            elif t.kind == "num":
                parts.append(t.text.rstrip("L"))
            elif t.kind == "op":
                if t.text == "%in%":
                    raise self.fail(t.pos, "`%in%` inside a function call is not supported")
                parts.append(R_OPERATORS.get(t.text, t.text))
                if t.text in ("&", "|", "&&", "||", "!"):
                    parts[-1] = _Logic(parts[-1])
            else:
                parts.append(t.text)
            i += 1
        return _precedence(parts)

    def value_name(self, t: Tok) -> str:
        """A bare name used as a value: the column if there is one, else a constant."""
        if t.text in self.lang.columns:
            return self._column(t.text, t.pos)
        if t.text in CONSTANTS:
            return CONSTANTS[t.text]
        if t.text.startswith(("np.", "numpy.")):
            return t.text
        return self._column(t.text, t.pos)  # unknown: reported by the caller, with a caret

    def _args(self, toks: list[Tok]) -> list[tuple[str | None, list[Tok]]]:
        """``(name, value tokens)`` per argument of the call ``toks`` (name ``(`` ... ``)``)."""
        out: list[tuple[str | None, list[Tok]]] = []
        for arg in self._split_args(toks[2:-1]):
            if not arg:
                raise self.fail(toks[1].pos, f"empty argument in `{toks[0].text}()`")
            if len(arg) >= 2 and arg[0].kind == "name" and arg[1].text == "=":
                if len(arg) == 2:
                    raise self.fail(arg[1].pos, f"argument `{arg[0].text}` has no value")
                out.append((arg[0].text, arg[2:]))
            else:
                out.append((None, arg))
        return out

    def _join(self, args: list[tuple[str | None, list[Tok]]], rename: Mapping[str, str]) -> str:
        shown = []
        for name, vals in args:
            v = self.code(vals)
            shown.append(v if name is None else f"{rename.get(name, name)}={v}")
        return ", ".join(shown)

    def call(self, toks: list[Tok]) -> str:
        """Translate one call ``name(...)``."""
        name, pos = toks[0].text, toks[0].pos
        args = self._args(toks)
        if name == "I":
            return f"I({self._join(args, {})})"
        if name == "Q":
            if len(args) == 1 and args[0][1][0].kind == "str" and len(args[0][1]) == 1:
                return self._column(args[0][1][0].text[1:-1], args[0][1][0].pos)
            raise self.fail(pos, "Q() takes one column name in quotes, e.g. Q('my col')")
        if name in FACTOR_FUNCTIONS:
            ren = {"contrasts": "contrasts", "levels": "levels"}
            return f"C({self._join(args, ren)})"
        if name == "relevel":
            if len(args) != 2:
                raise self.fail(pos, 'relevel() needs a factor and a reference: relevel(f, "b")')
            ref = self.code(args[1][1])
            return f"C({self.code(args[0][1])}, contr.treatment({ref}))"
        if name in NUMERIC_FUNCTIONS:
            if len(args) != 1:
                raise self.fail(pos, f"{name}() takes one argument")
            return f"np.asarray({self.code(args[0][1])}, dtype=float)"
        if name == "log":
            if len(args) == 1:
                return f"log({self.code(args[0][1])})"
            if len(args) == 2 and args[1][0] in (None, "base"):
                x, b = self.code(args[0][1]), self.code(args[1][1])
                return f"np.divide(np.log({x}), np.log({b}))"
            raise self.fail(pos, "log() takes a value and an optional base: log(x, 2)")
        if name == "c":
            return f"[{self._join(args, {})}]"
        if name in NUMPY_FUNCTIONS:
            return f"{NUMPY_FUNCTIONS[name]}({self._join(args, {})})"
        if name == "bs":
            ren = {"intercept": "include_intercept", "Boundary.knots": "_bg_boundary"}
            text = self._join(args, ren)
            if "_bg_boundary=" in text:
                raise self.fail(pos, "bs(): write lower_bound= and upper_bound= for the knots")
            if not any(a == "extrapolation" for a, _ in args):
                text += ", extrapolation='extend'"  # as R's predict.bs: polynomial ends
            return f"bs({text})"
        if name in SPLINE_DF:
            if not any(a in ("df", "knots") for a, _ in args) and len(args) < 2:
                raise self.fail(
                    pos,
                    f"{name}() needs the basis size: write {name}(x, df=4) (or knots=[...]); "
                    "an unpenalized spline has no default size",
                )
            text = self._join(args, {})
            if not any(a == "constraints" for a, _ in args):
                text += ", constraints='center'"  # mgcv's identifiability constraint
            return f"{name}({text})"
        if name in FORMULAIC_TRANSFORMS or name.startswith(("np.", "numpy.", "contr.")):
            return f"{name}({self._join(args, {})})"
        if name in ("ns", "s", "te", "t2"):
            raise self.fail(
                pos,
                f"`{name}()` is not available: for a spline write bs(x, df = 4) (R's "
                "splines::bs) or cr(x, df = 4) (a natural cubic regression spline)",
            )
        shown = ", ".join(f for f in SUPPORTED_FUNCTIONS)
        raise self.fail(pos, f"unknown function `{name}()`; a formula can call {shown}, np.*")


class _Logic(str):
    """A logical operator (``&``, ``|``, ``~``): R binds it looser than comparisons."""


def _precedence(parts: list[str]) -> str:
    """Join code parts, bracketing around R's logical operators.

    R reads ``x > 2 & z < 1`` as ``(x > 2) & (z < 1)`` and ``!x > 2`` as ``!(x > 2)``;
    Python's ``&``, ``|`` and ``~`` bind tighter than comparisons, so the operands are
    bracketed.
    """
    if not any(isinstance(p, _Logic) for p in parts):
        return " ".join(parts)
    out: list[str] = []
    operand: list[str] = []
    nots = 0

    def flush() -> None:
        nonlocal nots
        text = f"({' '.join(operand)})" if operand else ""
        out.append("~" * nots + text)
        operand.clear()
        nots = 0

    for p in parts:
        if isinstance(p, _Logic) and p == "~" and not operand:
            nots += 1
        elif isinstance(p, _Logic) and p != "~":
            flush()
            out.append(str(p))
        else:
            operand.append(p)
    flush()
    return " ".join(out)


def _normalized(code: str) -> str:
    """formulaic's spelling of one Python factor (it re-formats the code)."""
    try:
        terms = list(Formula(code))
        factors = [f for term in terms for f in term.factors]
        names = [str(f.expr) for f in factors if str(f.expr) != "1"]
        return names[0] if len(names) == 1 else code
    except Exception:  # noqa: BLE001 - formulaic's parser: keep the text as written
        return code
