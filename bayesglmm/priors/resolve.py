"""Resolve a user's prior overrides against the defaults of a design (:func:`resolve_priors`)
and the rule of each prior class (:func:`check_prior_class`, used by the spec files too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.errors import DesignError
from bayesglmm.priors.defaults import default_priors, default_sd_prior
from bayesglmm.priors.distribution import Prior, as_prior
from bayesglmm.priors.prior_set import PriorSet, block_labels

__all__ = ["PRIOR_CLASSES", "check_prior_class", "resolve_priors"]


PRIOR_CLASSES = ("intercept", "fixed", "sd", "cor")
"""The prior classes of every model; a family adds its dispersion parameters by name."""


def check_prior_class(key: str, prior: Prior, dispersion: Sequence[str] = ()) -> None:
    """Raise :class:`DesignError` if ``prior`` cannot be the prior of ``key``'s class.

    The class is the part of ``key`` before any ``:`` (``sd:subject`` -> ``sd``): SDs and
    the ``dispersion`` parameters need a prior on the positive half-line, ``cor`` an LKJ,
    ``intercept`` and ``fixed`` a prior on the real line.  Needs no data (the spec files
    check their ``[priors]`` with it when loaded).
    """
    cls = key.split(":")[0]
    if (cls == "sd" or cls in dispersion) and not prior.positive:
        raise DesignError(f"prior for `{key}` must be on the positive half-line, got {prior.dist}")
    if cls == "cor" and prior.dist != "LKJ":
        raise DesignError(f"prior for `{key}` must be LKJ(eta=...), got {prior.dist}")
    if cls in ("intercept", "fixed") and (prior.positive or prior.dist == "LKJ"):
        raise DesignError(f"prior for `{key}` must be on the real line, got {prior.dist}")


def resolve_priors(design: Design, user: Mapping[str, Any] | None = None) -> PriorSet:
    """Resolve user overrides against the defaults for this design.

    Parameters
    ----------
    design : Design
    user : mapping, optional
        Keys ``intercept``, ``fixed``, ``sd``, ``cor``, and the family's dispersion
        parameters by name (gaussian ``sigma``; ``Family.dispersion``) (class level) or
        ``fixed:<column>``, ``sd:<group>``, ``cor:<group>`` (per term).

    Raises
    ------
    DesignError
        For an unknown key (named, with the valid keys listed) or an invalid prior.
    """
    user = dict(user or {})
    defaults = default_priors(design)
    s_y = float(defaults.pop("_s_y"))  # type: ignore[arg-type]
    labels = block_labels(design)
    slopes = [n for n in design.x_names if n != "(Intercept)"]
    disp_names = [d.name for d in design.family.dispersion]
    valid = {*PRIOR_CLASSES, *disp_names}
    valid |= {f"fixed:{n}" for n in slopes}
    valid |= {f"sd:{g}" for g in (*labels, *design.groups)}
    valid |= {f"cor:{g}" for g in (*labels, *design.groups)}
    for key in user:
        if key not in valid:
            raise DesignError(f"unknown prior key `{key}`; valid keys: {', '.join(sorted(valid))}")
    pri = {k: as_prior(v, k) for k, v in user.items()}
    for key, p in pri.items():
        check_prior_class(key, p, disp_names)

    intercept = None
    if "(Intercept)" in design.x_names:
        intercept = pri.get("intercept", defaults["intercept"])
    fixed: dict[str, Prior] = {}
    X = design.X
    for name in slopes:
        if f"fixed:{name}" in pri:
            fixed[name] = pri[f"fixed:{name}"]
        elif "fixed" in pri:
            fixed[name] = pri["fixed"]
        else:
            # exact values: rounding made Normal(0, 0) of a column with SD > 5e4; printing
            # rounds (``Prior.__str__``)
            col = X[:, design.x_names.index(name)]
            col_sd = float(design.row_std(col))
            scale = 2.5 * s_y / col_sd if col_sd > 0 and np.isfinite(col_sd) else 2.5 * s_y
            fixed[name] = Prior("Normal", mu=0.0, sigma=scale)
    dists = {p.dist for p in fixed.values()}
    if len(dists) > 1:
        raise DesignError(
            f"all fixed slopes must share one prior distribution family; got {sorted(dists)}"
        )
    sd: dict[str, tuple[Prior, ...]] = {}
    cor: dict[str, Prior] = {}
    for label, block in zip(labels, design.blocks, strict=True):
        user_sd = pri.get(f"sd:{label}", pri.get(f"sd:{block.group}", pri.get("sd")))
        if user_sd is not None:
            sd[label] = (user_sd,) * block.n_terms
        else:
            Z = np.asarray(block.Z, dtype=float)
            sd[label] = tuple(
                default_sd_prior(defaults["sd"], Z[:, j], design.weights)
                for j in range(block.n_terms)
            )
        if block.correlated:
            cor[label] = pri.get(
                f"cor:{label}", pri.get(f"cor:{block.group}", pri.get("cor", defaults["cor"]))
            )
    dispersions = {name: pri.get(name, defaults[name]) for name in disp_names}
    return PriorSet(intercept=intercept, fixed=fixed, sd=sd, cor=cor, dispersions=dispersions)
