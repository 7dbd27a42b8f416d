"""Scalar special functions for the families' Numba row functions.

The row functions (``nuts_row_*`` in each family's module) are plain Python that the
engines compile with Numba; a special function they call must itself be compilable, so it is
looked up as ``row_math.digamma``: the module attribute is a Numba dispatcher, compiled on
first use (PEP 562 ``__getattr__``), so importing the families does not import Numba.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["digamma_py"]


def digamma_py(x: float) -> float:
    """psi(x) for x > 0: recurrence to x >= 6, then the asymptotic series (~1e-15)."""
    acc = 0.0
    while x < 6.0:
        acc -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (
        -1.0 / 12
        + f
        * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 + f * 691.0 / 32760))))
    )
    return acc + math.log(x) - 0.5 / x + t


def __getattr__(name: str) -> Any:
    """``digamma``: :func:`digamma_py` compiled by Numba (on first access)."""
    if name == "digamma":
        import numba

        fn = numba.njit(nogil=True, cache=True, error_model="numpy")(digamma_py)
        globals()["digamma"] = fn
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
