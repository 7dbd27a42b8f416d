"""Response families: one :class:`FamilySpec` per family, one :class:`Link` per link, and the
registry (``family=`` names, aliases, Numba row-kernel codes).  NumPy only.

``Family(name, link)`` is the value a :class:`~bayesglmm.design.types.Design` holds; every
engine, PPC, residual and ICC reads the family's behaviour through it
(``docs/architecture.md``, "Families").
"""

from __future__ import annotations

from typing import Literal

from bayesglmm.families.base import FamilySpec
from bayesglmm.families.binomial import cloglog_ratios, log_choose, probit_ratios, softplus
from bayesglmm.families.dispersion import Dispersion
from bayesglmm.families.family import Family
from bayesglmm.families.links import LINKS, Link, get_link
from bayesglmm.families.registry import (
    FAMILIES,
    ROW_FUNCTIONS,
    ROW_KERNEL_CODES,
    ROW_KERNELS,
    family_names,
    get_family,
    get_spec,
    kernel_code,
    register,
    unregister,
)

FamilyName = Literal["bernoulli", "binomial", "poisson", "gaussian"]
LinkName = Literal["logit", "probit", "cloglog", "log", "identity"]

__all__ = [
    "FAMILIES",
    "LINKS",
    "ROW_FUNCTIONS",
    "ROW_KERNELS",
    "ROW_KERNEL_CODES",
    "Dispersion",
    "Family",
    "FamilyName",
    "FamilySpec",
    "Link",
    "LinkName",
    "cloglog_ratios",
    "family_names",
    "get_family",
    "get_link",
    "get_spec",
    "kernel_code",
    "log_choose",
    "probit_ratios",
    "register",
    "softplus",
    "unregister",
]
