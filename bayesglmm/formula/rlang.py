"""R's formula and expression language, translated for formulaic.

formulaic reads the fixed part of a formula, but as Python: ``^`` inside ``I()`` is xor,
``factor()``, ``as.numeric()`` and ``sqrt()`` do not exist, ``age.group`` is an attribute
lookup, a column called ``center`` or ``log`` is shadowed by formulaic's function of that
name (backticks do not help), and the variables of stateful transforms (``scale(x)``,
``poly(x, 2)``, ``bs(x)``) are not reported as required.  The R text is read itself, token
by token (the tokens and the tables of R functions are in :mod:`bayesglmm.formula.rsyntax`,
the walk over them in :mod:`bayesglmm.formula.render`); :class:`Lang` holds one data set's
column names and their safe names and produces

* the formulaic text, in which every column is referred to by a safe name (``_bg0_`` for a
  name formulaic would misread, the column's own name otherwise) and R's functions and
  operators are spelled as formulaic and NumPy spell them;
* the columns the text uses, in order, with the position of each in the R text;
* a map from formulaic's names of the translated factors back to the R text, so that
  model-matrix columns keep R's names (``I(x^2)``, ``factor(year)2``).

R's rule for names is kept: a name that is a column means the column wherever it stands as
a value (a term, or an argument of a call), and the function only when it is called, so a
column ``center`` and ``center(x)`` can share a formula.  No data and no PyMC here; the
caller gives the column names.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Collection

from formulaic.transforms import TRANSFORMS

from bayesglmm.formula.render import Renderer, Translation
from bayesglmm.formula.rsyntax import CONSTANTS, NUMPY_FUNCTIONS, tokens

__all__ = ["Lang", "Translation"]


_SAFE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = frozenset(
    {*TRANSFORMS, *NUMPY_FUNCTIONS, *CONSTANTS, "np", "numpy", "contr", "I", "C", "Q", "c"}
    | set(dir(builtins))
)


class Lang:
    """Translate R formula text for one data set's column names.

    Parameters
    ----------
    columns : collection of str
        The data's column names.
    formula : str
        The whole formula, for carets in error messages.
    """

    def __init__(self, columns: Collection[object], formula: str = "") -> None:
        self.columns = frozenset(c for c in columns if isinstance(c, str))
        self.formula = formula
        self.safe: dict[str, str] = {}
        for c in sorted(self.columns):
            if not _SAFE.fullmatch(c) or keyword.iskeyword(c) or c in _RESERVED:
                self.safe[c] = f"_bg{len(self.safe)}_"
            elif c.startswith("_bg"):
                self.safe[c] = f"_bg{len(self.safe)}_"
        self.original = {v: k for k, v in self.safe.items()}
        self.display: dict[str, str] = {}

    # ------------------------------------------------------------------ public
    def safe_name(self, column: str) -> str:
        """The name formulaic sees for ``column``."""
        return self.safe.get(column, column)

    def frame(self, df):  # noqa: ANN001, ANN201 - a pandas DataFrame in and out
        """``df`` with its columns renamed to the names formulaic sees."""
        ren = {c: self.safe[c] for c in df.columns if isinstance(c, str) and c in self.safe}
        return df.rename(columns=ren) if ren else df

    def translate(self, text: str, offset: int | None = None) -> Translation:
        """Translate formula text (a fixed part, or a random term's left-hand side).

        ``offset`` is where ``text`` starts in :attr:`formula` (found by search if None).
        """
        if offset is None:
            found = self.formula.find(text) if self.formula else 0
            offset = max(found, 0)
            if found < 0:
                self.formula, whole = text, self.formula
                try:
                    return self._run(text, 0, whole)
                finally:
                    self.formula = whole
        return self._run(text, offset, self.formula)

    def _run(self, text: str, offset: int, whole: str) -> Translation:
        formula = self.formula or text
        toks = tokens(text, offset, self.formula) if self.formula else tokens(text)
        tr = Translation("")
        tr.text = Renderer(self, formula, tr, whole).terms(toks)
        self.display.update(tr.display)
        return tr

    def show(self, name: str) -> str:
        """formulaic's name of a model-matrix column or factor, in R's spelling."""
        for norm in sorted(self.display, key=len, reverse=True):
            if norm in name:
                name = name.replace(norm, self.display[norm])
        if self.original:
            name = re.sub(r"_bg\d+_", lambda m: self.original.get(m.group(), m.group()), name)
        return name

    def column_of(self, key: str) -> str | None:
        """The column a bare factor or ``C(col, ...)`` key of formulaic refers to."""
        m = re.fullmatch(r"C\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*(,.*)?\)", key, flags=re.S)
        name = m.group(1) if m else key
        col = self.original.get(name, name)
        return col if col in self.columns else None
