"""Argument checks for :meth:`bayesglmm.GLMM.fit` and the command line, before any work.

One table of options per built-in method (:data:`NUTS_OPTIONS`, :data:`ML_OPTIONS`, ...):
name, kind, valid range and default.  Each engine registers its table with the engine
registry (:mod:`bayesglmm.engines.registry`), whose ``check_fit_options`` checks the
keyword arguments of one ``fit`` call against it and raises
:class:`~bayesglmm.errors.ArgumentError` naming the argument, the value and the valid range;
an unknown keyword gets a "did you mean" (or the methods that take it).  The CLI
(:mod:`bayesglmm.cli`) and the TOML specs (:mod:`bayesglmm.spec`) use the same tables, so
all three say the same thing about the same bad value.
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayesglmm.errors import ArgumentError, BayesGLMMError, InferenceError
from bayesglmm.families import get_spec

__all__ = [
    "ADVI_OPTIONS",
    "LAPLACE_OPTIONS",
    "MAX_NAGQ",
    "MAX_SEED",
    "ML_OPTIONS",
    "NUTS_OPTIONS",
    "Option",
    "PQL_OPTIONS",
    "PRIOR_PREDICTIVE_OPTIONS",
    "check_nuts_options",
    "check_options",
    "check_response",
    "engine_boundary",
    "unknown_option_message",
]

MAX_SEED = 2**63 - 1
"""Largest integer ``random_seed`` (nutpie takes a 64-bit seed; PyMC and NumPy take it too)."""

MAX_NAGQ = 100
"""Most Gauss-Hermite nodes per group.  Beyond ~100 the smallest weights underflow toward
1e-300 and the deviance stops changing (toenail: identical to 8 digits at 100, 150 and 200
nodes); from ~400 NumPy's rule itself is NaN.  lme4 also caps ``nAGQ`` (at 25)."""

_SAMPLERS = ("auto", "kernel", "pymc", "nutpie", "numpyro")
_PYMC_INITS = (
    "auto",
    "adapt_diag",
    "jitter+adapt_diag",
    "jitter+adapt_diag_grad",
    "adapt_full",
    "jitter+adapt_full",
    "advi",
    "advi+adapt_diag",
    "advi_map",
    "map",
)


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


def _int(name: str, low: int, default: Any, *, high: int | None = None, none_ok: bool = False):
    return Option(name, "int", low=low, high=high, default=default, none_ok=none_ok)


def _pos(name: str, default: Any, *, none_ok: bool = False) -> Option:
    return Option(name, "real", low=0.0, open_low=True, default=default, none_ok=none_ok)


_SEED = Option("random_seed", "seed", default=None)
_LOGLIK = Option("log_likelihood", "bool", default=True)
_PROGRESS = Option("progressbar", "bool", none_ok=True, default=None)
_PARTIAL = Option("allow_partial", "bool", default=False)  # Ctrl-C: keep the draws so far

NUTS_OPTIONS: tuple[Option, ...] = (
    _int("draws", 1, 1000),
    _int("tune", 0, 1000),
    _int("chains", 1, 4),
    _int("cores", 1, None, none_ok=True),
    _SEED,
    Option("sampler", "choice", choices=_SAMPLERS, default="auto"),
    Option(
        "target_accept",
        "real",
        low=0.0,
        high=1.0,
        open_low=True,
        open_high=True,
        none_ok=True,
        default=None,
    ),
    _PROGRESS,
    Option("init", "choice", choices=_PYMC_INITS, default="auto"),
    _int("max_treedepth", 1, 10, high=30),
    # the default sampler's mass-matrix adaptation (nutpie); see kernel_nuts._ADAPTATION
    Option("adaptation", "choice", choices=("draw_diag", "diag", "low_rank"), default=None),
    _PARTIAL,
    _LOGLIK,
)
ML_OPTIONS: tuple[Option, ...] = (
    _int("nagq", 1, 1, high=MAX_NAGQ),
    Option("start", "start", none_ok=True, default=None),
    _pos("tol", 1e-10),
    _int("maxiter", 1, 500),
    _LOGLIK,
)
PQL_OPTIONS: tuple[Option, ...] = (
    Option("dispersion", "choice", choices=("estimate", "fixed"), default="estimate"),
    _int("maxiter", 1, 50),
    _pos("tol", 1e-6),
    _LOGLIK,
)
LAPLACE_OPTIONS: tuple[Option, ...] = (
    _int("draws", 1, 1000),
    _SEED,
    _int("nagq", 1, None, high=MAX_NAGQ, none_ok=True),
    Option("strategy", "choice", choices=("auto", "grid", "gaussian"), default="auto"),
    _pos("grid_step", None, none_ok=True),
    _pos("grid_threshold", None, none_ok=True),
    _LOGLIK,
)
ADVI_OPTIONS: tuple[Option, ...] = (
    _int("n", 1, 30_000),
    _pos("learning_rate", 0.01),
    _int("draws", 1, 1000),
    _SEED,
    _pos("tolerance", 1e-3),
    _int("every", 1, 200),
    Option("start", "advi_start", none_ok=True, default="ml"),
    _PROGRESS,
    _PARTIAL,
    _LOGLIK,
)


PRIOR_PREDICTIVE_OPTIONS: tuple[Option, ...] = (_int("draws", 1, 500), _SEED)
"""The keyword arguments of :meth:`bayesglmm.GLMM.sample_prior_predictive`."""


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


def _position(i: int, row_labels: Any) -> str:
    if row_labels is None:
        return f"position {i}"
    label = row_labels[i]
    label = label.item() if isinstance(label, np.generic) else label
    return f"position {i} (data row {label!r})"


def check_response(
    y: Any,
    n: int,
    family: str,
    *,
    trials: np.ndarray | None = None,
    row_labels: Any = None,
    where: str = "with_response(): ",
) -> np.ndarray:
    """A new response vector for a model's rows, checked as the data's response is.

    Parameters
    ----------
    y : array-like
        One value per row the model uses (``design.n``), in the model's row order.
    n : int
        The number of rows.
    family : str
        ``gaussian`` (finite), ``poisson`` (non-negative integers), ``bernoulli`` (0/1) or
        ``binomial`` (integer successes from 0 to the row's trials).
    trials : ndarray, optional
        The trials per row (binomial).
    row_labels : sequence, optional
        The data's row label of each position, for messages.
    where : str
        The call, for messages.

    Returns
    -------
    ndarray of float, shape (n,)

    Raises
    ------
    ArgumentError
        For a wrong shape or a value that is not a number.
    DataError
        For a value the family cannot have (NaN, inf, a negative or fractional count, a
        bernoulli value other than 0/1, more successes than trials), naming the first one,
        its position and its data row.
    """
    from bayesglmm.errors import DataError

    if isinstance(y, str | bytes) or not hasattr(y, "__len__") and not hasattr(y, "shape"):
        raise ArgumentError(
            f"{where}the response must be an array of {n} numbers; got {type(y).__name__}"
        )
    import pandas as pd

    arr = np.asarray(y) if hasattr(y, "dtype") else np.asarray(y, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        hint = " (flatten it, e.g. y.ravel())" if arr.size == n and n > 1 else ""
        raise ArgumentError(
            f"{where}the response must be one-dimensional with {n} values, one per row of "
            f"the model; got shape {arr.shape}{hint}"
        )
    if arr.dtype.kind in "biuf":
        values = arr.astype(float)
    else:  # objects, strings, nullable pandas values
        values = np.empty(n)
        for i, v in enumerate(arr):
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                values[i] = np.nan
            elif not isinstance(v, numbers.Real | np.bool_):
                raise ArgumentError(
                    f"{where}the response must hold numbers; found {v!r} "
                    f"({type(v).__name__}) at {_position(i, row_labels)}"
                )
            else:
                values[i] = float(v)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}the response must be finite; found {values[i]:g} at "
            f"{_position(i, row_labels)} ({int(bad.sum())} non-finite value(s)); a new "
            "response cannot drop rows: give a value for every row"
        )
    spec = get_spec(family)  # the family's response check (families/<family>.py)
    bad, what = spec.check_response(values, trials)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}the response {what}; found {values[i]:g} at {_position(i, row_labels)} "
            f"({int(bad.sum())} bad value(s))"
        )
    if spec.is_binomial and trials is not None:
        over = values > trials
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise DataError(
                f"{where}the response has more successes than trials: {values[i]:g} > "
                f"{trials[i]:g} at {_position(i, row_labels)} ({int(over.sum())} row(s))"
            )
    return values


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


def check_nuts_options(out: Mapping[str, Any], where: str) -> None:
    """NUTS options that only work with some samplers (each option already checked alone).

    Raises
    ------
    ArgumentError
        ``init`` without a PyMC sampler, ``adaptation`` or ``max_treedepth`` with a sampler
        that does not use it.
    """
    sampler = out.get("sampler") or "auto"
    if out.get("init") is not None and sampler not in ("pymc", "nutpie", "numpyro"):
        raise ArgumentError(
            f"{where}`init` is PyMC's NUTS initialization: pass sampler='pymc' with it "
            f"(sampler={sampler!r} does not use it)"
        )
    if "adaptation" in out and sampler not in ("auto", "kernel"):
        raise ArgumentError(
            f"{where}`adaptation` sets the default sampler's mass matrix: it works with "
            f"sampler 'auto' or 'kernel', not {sampler!r}"
        )
    if "max_treedepth" in out and sampler not in ("auto", "kernel", "pymc"):
        raise ArgumentError(
            f"{where}`max_treedepth` works with sampler 'auto', 'kernel' or 'pymc', not {sampler!r}"
        )


_PACKAGE = Path(__file__).resolve().parent


def engine_boundary[F: Callable[..., Any]](fit: F) -> F:
    """Decorate ``GLMM.fit``: an exception from inside an engine or a dependency that is not
    a :class:`BayesGLMMError` (a singular sparse factor in SciPy, a shape error in NumPy)
    becomes an :class:`InferenceError` naming the method, the error and where in bayesglmm it
    came from, with the original chained as its cause.  Interrupts pass through.
    """

    @functools.wraps(fit)
    def wrapper(self: Any, method: str = "nuts", **kwargs: Any) -> Any:
        try:
            return fit(self, method, **kwargs)
        except BayesGLMMError:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: re-raised as ours, chained
            where = ""
            for frame in reversed(traceback.extract_tb(exc.__traceback__)):
                path = Path(frame.filename).resolve()
                if path.is_relative_to(_PACKAGE) and path.name != "validate.py":
                    where = f" (in bayesglmm/{path.relative_to(_PACKAGE)}:{frame.lineno})"
                    break
            text = str(exc).strip().splitlines()
            raise InferenceError(
                f"method={method!r} failed{where}: {type(exc).__name__}: "
                f"{text[0] if text else ''}; the data or model may be degenerate (separation, "
                "a singular design, extreme scales); if not, please report it"
            ) from exc

    return wrapper  # type: ignore[return-value]
