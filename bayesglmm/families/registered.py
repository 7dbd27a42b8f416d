"""The table of registered families: name -> :class:`~bayesglmm.families.base.FamilySpec`
(``FAMILIES``), alias -> name (``ALIASES``), and the functions that fill and read it.

:mod:`bayesglmm.families.registry` registers the built-in families; a test may register a toy
family and unregister it.
"""

from __future__ import annotations

from bayesglmm.errors import DesignError
from bayesglmm.families.base import FamilySpec
from bayesglmm.families.links import get_link

__all__ = ["ALIASES", "FAMILIES", "register", "resolve_name", "unregister"]


FAMILIES: dict[str, FamilySpec] = {}
ALIASES: dict[str, str] = {}


def register(spec: FamilySpec, aliases: tuple[str, ...] = ()) -> FamilySpec:
    """Add ``spec`` (and its aliases) to the registry; returns it."""
    for lk in spec.links:
        get_link(lk)
    if spec.canonical_link not in spec.links:
        raise ValueError(f"{spec.name}: canonical link {spec.canonical_link} not in its links")
    FAMILIES[spec.name] = spec
    for a in aliases:
        ALIASES[a] = spec.name
    return spec


def unregister(name: str) -> None:
    """Remove a family and its aliases (tests registering a toy family)."""
    FAMILIES.pop(name, None)
    for a in [a for a, n in ALIASES.items() if n == name]:
        del ALIASES[a]


def resolve_name(name: str) -> str:
    """The registered name of ``name`` (aliases resolved, case-insensitive), or the error."""
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in FAMILIES:
        raise DesignError(f"unknown family `{name}`; choose one of {', '.join(sorted(FAMILIES))}")
    return key
