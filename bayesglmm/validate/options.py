"""One keyword argument of a fitting method and what it accepts (:class:`Option`), and the
check of a call's keyword arguments against a table of them.

Each engine registers its table with the engine registry (:mod:`bayesglmm.engines.registry`),
whose ``check_fit_options`` checks the keyword arguments of one ``fit`` call against it and
raises :class:`~bayesglmm.errors.ArgumentError` naming the argument, the value and the valid
range; an unknown keyword gets a "did you mean" (or the methods that take it,
:func:`unknown_option_message`).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesglmm.errors import ArgumentError

__all__ = ["MAX_NAGQ", "MAX_SEED", "Option", "check_options", "unknown_option_message"]

MAX_SEED = 2**63 - 1
"""Largest integer ``random_seed`` (nutpie takes a 64-bit seed; PyMC and NumPy take it too)."""

MAX_NAGQ = 100
"""Most Gauss-Hermite nodes per group.  Beyond ~100 the smallest weights underflow toward
1e-300 and the deviance stops changing (toenail: identical to 8 digits at 100, 150 and 200
nodes); from ~400 NumPy's rule itself is NaN.  lme4 also caps ``nAGQ`` (at 25)."""


@dataclass(frozen=True)
class Option:
    """One keyword argument of a fitting method and what it accepts.

    Attributes
    ----------
    name : str
        The keyword.
    kind : {"int", "real", "bool", "choice", "seed", "start", "advi_start"}
        ``int`` and ``real`` exclude bools; ``real`` must be finite; ``seed`` is None, an
        integer in ``[0, MAX_SEED]`` or a :class:`numpy.random.Generator`; ``start`` is
        None or a mapping; ``advi_start`` is also ``"ml"``.
    low, high : float, optional
        Range bounds (inclusive unless ``open_low``/``open_high``).
    choices : tuple
        Valid values of a ``choice``.
    none_ok : bool
        Whether None is accepted (it means the default).
    default : Any
        The default, for documentation and the CLI.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] = ()
    none_ok: bool = False
    default: Any = None

    def describe(self) -> str:
        """The valid values in words, e.g. ``"an integer >= 1"``."""
        if self.kind == "seed":
            return f"None, an integer in [0, 2**63 - 1 = {MAX_SEED}] or a numpy.random.Generator"
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "start":
            text = "a dict of start values"
        elif self.kind == "advi_start":
            text = "'ml' or a dict of start values"
        else:
            noun = "an integer" if self.kind == "int" else "a number"
            if self.low is not None and self.high is not None:
                lo = "(" if self.open_low else "["
                hi = ")" if self.open_high else "]"
                text = f"{noun} in {lo}{_num(self.low)}, {_num(self.high)}{hi}"
            elif self.low is not None:
                text = f"{noun} {'>' if self.open_low else '>='} {_num(self.low)}"
            else:
                text = noun
        return f"None or {text}" if self.none_ok and self.kind not in ("seed",) else text

    def check(self, value: Any, where: str) -> Any:
        """Return the value (a Generator seed becomes an int) or raise :class:`ArgumentError`."""

        given = value

        def bad(extra: str = "") -> ArgumentError:
            shown = repr(given) if not isinstance(given, np.random.Generator) else "a Generator"
            kind = type(given).__name__
            return ArgumentError(
                f"{where}`{self.name}` must be {self.describe()}; got {shown} ({kind}){extra}"
            )

        if value is None:
            if self.none_ok or self.kind == "seed":
                return None
            raise bad()
        if self.kind == "seed":
            if isinstance(value, np.random.Generator):
                return int(value.integers(MAX_SEED, dtype=np.int64, endpoint=True))
            if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
                raise bad()
            if not 0 <= int(value) <= MAX_SEED:
                raise bad()
            return int(value)
        if self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                raise bad()
            return bool(value)
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                close = (
                    difflib.get_close_matches(value, [str(c) for c in self.choices], n=1)
                    if isinstance(value, str)
                    else []
                )
                raise bad(f"; did you mean {close[0]!r}?" if close else "")
            return value
        if self.kind == "start":
            if not isinstance(value, Mapping):
                raise bad()
            return value
        if self.kind == "advi_start":
            if not (value == "ml" if isinstance(value, str) else isinstance(value, Mapping)):
                raise bad()
            return value
        # int / real
        if isinstance(value, bool | np.bool_):
            raise bad()
        if self.kind == "int":
            if not isinstance(value, numbers.Integral):
                raise bad()
            value = int(value)
        else:
            if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
                raise bad()
            value = float(value)
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            raise bad()
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            raise bad()
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_options(where: str, table: tuple[Option, ...], options: Mapping[str, Any]) -> dict:
    """Check the keyword arguments of a call (other than ``fit``) against ``table``.

    Parameters
    ----------
    where : str
        The call, for messages, e.g. ``"sample_prior_predictive(): "``.
    table : tuple of Option
        What the call accepts.
    options : mapping
        The keyword arguments given.

    Returns
    -------
    dict
        The normalized values (see :meth:`Option.check`).

    Raises
    ------
    ArgumentError
        Naming the first unknown keyword (with close matches) or bad value (with the range).
    """
    by_name = {o.name: o for o in table}
    out = {}
    for name, value in options.items():
        if name not in by_name:
            close = difflib.get_close_matches(str(name), list(by_name), n=2, cutoff=0.6)
            close = close or [o for o in by_name if len(str(name)) > 2 and str(name) in o][:2]
            hint = f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""
            raise ArgumentError(
                f"{where}unknown option `{name}`{hint} (valid: {', '.join(by_name)})"
            )
        out[name] = by_name[name].check(value, where)
    return out


def unknown_option_message(
    tables: Mapping[str, tuple[Option, ...]], method: str, name: str, where: str
) -> str:
    """The message for an option ``name`` that ``method`` does not take: close matches
    among its options, else the methods (of ``tables``) that take it, and its options."""
    names = [o.name for o in tables[method]]
    close = difflib.get_close_matches(str(name), names, n=2, cutoff=0.6)
    others = [m for m, opts in tables.items() if any(o.name == name for o in opts)]
    if close:
        hint = f"; did you mean {' or '.join(f'`{c}`' for c in close)}?"
    elif others:
        hint = f"; it is an option of method {', '.join(repr(m) for m in others)}"
    else:
        hint = ""
    return f"{where}unknown option `{name}` for method={method!r}{hint} (valid: {', '.join(names)})"
