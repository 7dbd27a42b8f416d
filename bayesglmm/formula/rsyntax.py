"""R's formula language, as words: its tokens and the functions, constants and operators
it may use, with their formulaic / NumPy spelling.

:func:`tokens` splits R text into :class:`Tok` (a bad character is a :class:`FormulaError`
with a caret under it); the tables say how :mod:`bayesglmm.formula.rlang` spells each R
function for formulaic.  No data, no formulaic parsing here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from formulaic.transforms import TRANSFORMS

from bayesglmm.errors import FormulaError

__all__ = [
    "CONSTANTS",
    "FACTOR_FUNCTIONS",
    "FORMULAIC_TRANSFORMS",
    "NUMERIC_FUNCTIONS",
    "NUMPY_FUNCTIONS",
    "R_OPERATORS",
    "SPLINE_DF",
    "SUPPORTED_FUNCTIONS",
    "TOKEN",
    "Tok",
    "caret",
    "tokens",
]

TOKEN = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<bq>`[^`]*`)
    |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
    |(?P<name>(?:[^\W\d]|\.(?!\d))[\w.]*)
    |(?P<op>%[^%\s]*%|\*\*|==|!=|<=|>=|&&|\|\||[-+*/^:~|&!<>=(),\[\]{}$@?])
    """,
    re.X,
)


# R's functions with a NumPy spelling of the same meaning (element-wise, stateless)
NUMPY_FUNCTIONS = {
    "sqrt": "np.sqrt",
    "exp": "np.exp",
    "log1p": "np.log1p",
    "expm1": "np.expm1",
    "abs": "np.abs",
    "floor": "np.floor",
    "ceiling": "np.ceil",
    "trunc": "np.trunc",
    "sign": "np.sign",
    "sin": "np.sin",
    "cos": "np.cos",
    "tan": "np.tan",
    "asin": "np.arcsin",
    "acos": "np.arccos",
    "atan": "np.arctan",
    "sinh": "np.sinh",
    "cosh": "np.cosh",
    "tanh": "np.tanh",
    "round": "np.round",
    "pmin": "np.minimum",
    "pmax": "np.maximum",
    "ifelse": "np.where",
}
FACTOR_FUNCTIONS = frozenset({"factor", "as.factor", "ordered", "as.ordered", "C"})
NUMERIC_FUNCTIONS = frozenset({"as.numeric", "as.double"})
# formulaic's own transforms and contrasts, used under their own names
FORMULAIC_TRANSFORMS = frozenset(TRANSFORMS) - {"np"}
SPLINE_DF = frozenset({"cr", "cc", "cs"})
CONSTANTS = {
    "TRUE": "True",
    "FALSE": "False",
    "T": "True",
    "F": "False",
    "NULL": "None",
    "Inf": "np.inf",
    "NA": "np.nan",
    "NaN": "np.nan",
    "pi": "np.pi",
}
R_OPERATORS = {"^": "**", "%%": "%", "%/%": "//", "&&": "&", "||": "|", "!": "~"}
SUPPORTED_FUNCTIONS = tuple(
    sorted(
        {*NUMPY_FUNCTIONS, *FACTOR_FUNCTIONS, *NUMERIC_FUNCTIONS, "log", "I", "relevel", "c", "Q"}
        | (FORMULAIC_TRANSFORMS - {"Q"}),
        key=str.lower,
    )
)
"""Functions a formula may call (besides ``np.*`` and formulaic's ``contr.*``)."""


@dataclass(frozen=True)
class Tok:
    """One token: its kind (``ws bq str num name op``), text and position."""

    kind: str
    text: str
    pos: int


def tokens(text: str, offset: int = 0, formula: str | None = None) -> list[Tok]:
    """Split R text into tokens (whitespace dropped); positions are ``offset + index``.

    ``formula`` is the whole formula that ``text`` is part of, for the caret of an error.
    """
    out: list[Tok] = []
    i = 0
    while i < len(text):
        m = TOKEN.match(text, i)
        if m is None:
            where = formula if formula is not None else text
            shift = offset if formula is not None else 0
            raise FormulaError(caret(where, shift + i, f"unexpected character `{text[i]}`"))
        kind = m.lastgroup or "op"
        if kind != "ws":
            out.append(Tok(kind, m.group(), offset + i))
        i = m.end()
    return out


def caret(formula: str, pos: int, message: str) -> str:
    """``message``, then ``formula`` with a caret under position ``pos``."""
    pos = max(0, min(pos, len(formula)))
    return f"{message}\n    {formula}\n    {' ' * pos}^"
