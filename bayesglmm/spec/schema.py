"""The schema of a spec file: the keys of each table, their types, and the checker that
validates a table against them, naming the file in every message."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bayesglmm.errors import SpecError

__all__ = [
    "AGQ_ENTRY",
    "DATA",
    "NUTS",
    "REFERENCE",
    "SIMULATION",
    "TOLERANCE",
    "TOP",
    "Checker",
    "Schema",
    "did_you_mean",
    "freeze",
    "thaw",
]

# key -> (required, accepted types, description of the type for messages)
Schema = dict[str, tuple[bool, tuple[type, ...], str]]
_STR = ((str,), "a string")
_INT = ((int,), "an integer")
_NUM = ((int, float), "a number")
_BOOL = ((bool,), "true or false")
_TABLE = ((dict,), "a table")
_LIST = ((list,), "a list")


def _k(required: bool, kind: tuple[tuple[type, ...], str]) -> tuple[bool, tuple[type, ...], str]:
    return (required, kind[0], kind[1])


TOP: Schema = {
    "name": _k(True, _STR),
    "title": _k(False, _STR),
    "description": _k(False, _STR),
    "formula": _k(True, _STR),
    "family": _k(True, _STR),
    "link": _k(False, _STR),
    "trials": _k(False, _STR),
    "weights": _k(False, _STR),
    "offset": _k(False, _STR),
    "centered": _k(False, _BOOL),
    "methods": _k(True, _LIST),
    "data": _k(False, _TABLE),
    "simulation": _k(False, _TABLE),
    "priors": _k(False, _TABLE),
    "nuts": _k(False, _TABLE),
    "reference": _k(False, _TABLE),
    "agq_table": _k(False, _LIST),
    "tolerance": _k(False, _TABLE),
}
DATA: Schema = {"dataset": _k(False, _STR), "csv": _k(False, _STR)}
SIMULATION: Schema = {
    "kind": _k(True, _STR),
    "beta0": _k(True, _NUM),
    "beta1": _k(True, _NUM),
    "ri_sd": _k(True, _NUM),
    "rs_sd": _k(True, _NUM),
    "n_clusters": _k(True, _INT),
    "n_per_cluster": _k(False, _INT),
    "x_min": _k(False, _NUM),
    "x_max": _k(False, _NUM),
    "seed": _k(True, _INT),
}
NUTS: Schema = {
    "draws": _k(False, _INT),
    "tune": _k(False, _INT),
    "chains": _k(False, _INT),
    "cores": _k(False, _INT),
    "target_accept": _k(False, _NUM),
    "sampler": _k(False, _STR),
}
TOLERANCE: Schema = {
    "fixef": _k(False, _NUM),
    "sd": _k(False, _NUM),
    "cor": _k(False, _NUM),
    "loglik": _k(False, _NUM),
}
REFERENCE: Schema = {
    "source": _k(True, _STR),
    "method": _k(True, _STR),
    "nagq": _k(False, _INT),
    "fixef": _k(True, _TABLE),
    "sd": _k(False, _TABLE),
    "cor": _k(False, _TABLE),
    "loglik": _k(False, _NUM),
    "loglik_higher_is_ok": _k(False, _BOOL),
    "nobs": _k(False, _INT),
    "ngroups": _k(False, _TABLE),
    "note": _k(False, _STR),
}
AGQ_ENTRY: Schema = {
    **REFERENCE,
    "source": _k(False, _STR),
    "method": _k(False, _STR),
    "nagq": _k(True, _INT),
    "tolerance": _k(False, _TABLE),
}


def did_you_mean(word: str, choices: Sequence[str], n: int = 2, joiner: str = ", ") -> str:
    """``"; did you mean `a`, `b`?"`` for the close matches of ``word`` (``""`` for none)."""
    close = difflib.get_close_matches(word, list(choices), n=n)
    return f"; did you mean {joiner.join(f'`{c}`' for c in close)}?" if close else ""


def freeze(x: Any) -> Any:
    """A read-only copy of parsed TOML: mappings become ``MappingProxyType``, lists tuples."""
    if isinstance(x, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in x.items()})
    if isinstance(x, list | tuple):
        return tuple(freeze(v) for v in x)
    return x


def thaw(x: Any) -> Any:
    """The plain dict / list form of a value made read-only by :func:`freeze`."""
    if isinstance(x, Mapping):
        return {k: thaw(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [thaw(v) for v in x]
    return x


class Checker:
    """Validates one spec's tables, naming the file in every message."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, msg: str) -> SpecError:
        return SpecError(f"{self.source}: {msg}")

    def table(self, d: Mapping[str, Any], schema: Schema, where: str) -> None:
        for key in d:
            if key not in schema:
                hint = did_you_mean(key, list(schema), n=3)
                raise self.fail(
                    f"unknown key `{key}` in {where}{hint} (valid: {', '.join(schema)})"
                )
        for key, (required, types, desc) in schema.items():
            if key not in d:
                if required:
                    raise self.fail(f"missing required key `{key}` in {where}")
                continue
            value = d[key]
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                raise self.fail(
                    f"key `{key}` in {where} must be {desc}, got {type(value).__name__}"
                )

    def numbers(self, d: Mapping[str, Any], where: str) -> dict[str, float]:
        out = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise self.fail(f"value of `{k}` in {where} must be a finite number, got {v!r}")
            out[str(k)] = float(v)
        return out

    def positive(
        self, d: Mapping[str, Any], keys: tuple[str, ...], where: str, *, zero_ok: bool = False
    ) -> None:
        """Keys that must be > 0 (>= 0 with ``zero_ok``), when present."""
        for k in keys:
            if k in d and not (d[k] >= 0 if zero_ok else d[k] > 0):
                need = ">= 0" if zero_ok else "positive"
                raise self.fail(f"key `{k}` in {where} must be {need}, got {d[k]!r}")
