"""Method strings of spec files and ``--methods``: parsed, labelled and checked against
a model's random terms, all from the engine registry and the families (nothing here
names a method)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bayesglmm.engines import registry
from bayesglmm.errors import InferenceError, SpecError
from bayesglmm.families import get_family
from bayesglmm.spec.schema import did_you_mean

__all__ = ["method_label", "method_problem", "parse_method"]


def parse_method(text: str) -> tuple[str, dict[str, Any]]:
    """Turn a method string into ``(method, kwargs)`` for :meth:`bayesglmm.GLMM.fit`.

    Parameters
    ----------
    text : str
        ``nuts``, ``laplace``, ``advi``, ``fullrank_advi``, ``ml``, ``agq:<Q>`` (adaptive
        Gauss-Hermite ML with ``Q`` nodes), ``pql`` or ``pql_phi1`` (PQL with the
        dispersion fixed at 1).

    Returns
    -------
    tuple
        E.g. ``("ml", {"nagq": 25})`` for ``agq:25``, ``("pql", {"dispersion": "fixed"})``
        for ``pql_phi1``.

    Raises
    ------
    SpecError
        For anything else (the message names the string).
    """
    item = str(text).strip()
    prefix, colon, count = item.partition(":")
    counted = registry.counted_aliases()
    if colon and prefix in counted:
        engine, option, _ = counted[prefix]
        opt = engine.option(option)
        high = int(opt.high) if opt is not None and opt.high is not None else None
        if not count.isdigit() or not 1 <= int(count) <= (high or int(count)):
            raise SpecError(
                f"bad method `{item}`: {prefix} needs a node count from 1 to {high}, "
                f"e.g. {prefix}:25"
            )
        return (engine.name, {option: int(count)})
    resolved = registry.resolve_method_string(item)
    if resolved is not None:
        return resolved
    names = registry.method_strings()
    counted_forms = [f"{p}:<Q>" for p in counted]
    hint = did_you_mean(item, [*names, *(f"{p}:25" for p in counted)], joiner=" or ")
    raise SpecError(f"unknown method `{item}`{hint} (valid: {', '.join([*names, *counted_forms])})")


def method_label(text: str) -> str:
    """A human label for a method string, e.g. ``"agq:25 (adaptive Gauss-Hermite, 25
    nodes)"``."""
    item = str(text).strip()
    parse_method(item)
    prefix, colon, count = item.partition(":")
    counted = registry.counted_aliases()
    if colon and prefix in counted:
        return f"{item} ({counted[prefix][2].format(n=int(count))})"
    return f"{item} ({registry.describe_method_string(item)})"


def method_problem(text: str, random: Sequence[Any], family: str, link: str | None = None) -> str:
    """Why a method cannot fit a model with these random terms (empty if it can, or if
    that is not clear without the data).

    Reads what the family declares (:meth:`bayesglmm.families.Family.check_engine`) and
    the engine's own ``terms_check`` (e.g. the adaptive-quadrature limits of ``ml``).
    """
    method, kw = parse_method(text)
    if not random:  # a GLM: every method fits it (bayesglmm.engines.glm)
        return ""
    try:
        get_family(family, link).check_engine(method)
    except InferenceError as exc:
        return str(exc)
    check = registry.get_engine(method).terms_check
    return "" if check is None else check(random, kw)
