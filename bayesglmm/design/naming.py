"""How the design stage names things in its messages and outputs.

``r_name`` spells a formulaic column name as R does; ``row_label`` and ``value_text`` show
a row label or a cell value in an error message; ``first_line`` keeps the first line of a
dependency's error.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["first_line", "r_name", "row_label", "value_text"]


def r_name(name: str) -> str:
    """Convert a formulaic column name to R's style (``"a[T.b]"`` -> ``"ab"``)."""
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    return re.sub(r"\[([^\]]*)\]", r"\1", name)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def value_text(v: Any) -> str:
    """A cell value for messages: ``2.5`` for floats, ``'a'`` otherwise, never ``np.float64``."""
    v = v.item() if isinstance(v, np.generic) else v
    return f"{v:g}" if isinstance(v, float) else repr(v)


def row_label(index: pd.Index, i: int) -> str:
    """The label of row ``i`` for messages (``3``, ``'a'``; never ``np.int64(3)``)."""
    v = index[i]
    return repr(v.item() if isinstance(v, np.generic) else v)
