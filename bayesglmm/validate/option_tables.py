"""The options of the built-in methods, one table each (:data:`NUTS_OPTIONS`,
:data:`ML_OPTIONS`, ...): name, kind, valid range and default.

The engine registry (:mod:`bayesglmm.engines.registry`) checks ``GLMM.fit``'s keyword
arguments against them; the command line (:mod:`bayesglmm.cli`) and the TOML specs
(:mod:`bayesglmm.spec`) use the same tables, so all three say the same thing about the same
bad value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayesglmm.errors import ArgumentError
from bayesglmm.validate.options import MAX_NAGQ, Option

__all__ = [
    "ADVI_OPTIONS",
    "LAPLACE_OPTIONS",
    "ML_OPTIONS",
    "NUTS_OPTIONS",
    "PQL_OPTIONS",
    "PRIOR_PREDICTIVE_OPTIONS",
    "check_nuts_options",
]

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
