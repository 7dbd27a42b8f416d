"""The family registry: every family the package knows, its aliases, and the Numba row-kernel
codes (generated here, once, for every engine that dispatches on an integer).

Adding a family: write its :class:`~bayesglmm.families.base.FamilySpec` subclass in its own
module and add one ``register(...)`` line below (``docs/architecture.md``, "Families").
"""

from __future__ import annotations

from bayesglmm.families.base import (
    ALIASES,
    FAMILIES,
    Family,
    FamilySpec,
    register,
    resolve_name,
    unregister,
)
from bayesglmm.families.beta import Beta
from bayesglmm.families.binomial import Bernoulli, Binomial
from bayesglmm.families.gamma import Gamma
from bayesglmm.families.gaussian import Gaussian
from bayesglmm.families.links import LINKS
from bayesglmm.families.negative_binomial import NegativeBinomial
from bayesglmm.families.poisson import Poisson
from bayesglmm.families.student_t import StudentT

__all__ = [
    "ALIASES",
    "FAMILIES",
    "ROW_KERNELS",
    "ROW_KERNEL_CODES",
    "family_names",
    "get_family",
    "get_spec",
    "kernel_code",
    "register",
    "unregister",
]

register(Bernoulli())
register(Binomial())
register(Poisson())
register(Gaussian(), aliases=("normal",))
register(Beta())
register(StudentT(), aliases=("t", "student"))
register(NegativeBinomial(), aliases=("negbinomial", "negative_binomial", "nb", "nbinom2"))
register(Gamma())

#: The Numba row kernels, in code order: the integer a Numba engine dispatches on is the
#: position here.  A family names its kernel per link in ``FamilySpec.row_kernels``.
ROW_KERNELS: tuple[str, ...] = ("logit", "poisson", "gaussian", "gamma_log", "nb_log")
ROW_KERNEL_CODES: dict[str, int] = {name: code for code, name in enumerate(ROW_KERNELS)}


def kernel_code(family: Family, supported: tuple[str, ...] = ROW_KERNELS) -> int | None:
    """The integer row-kernel code of ``family`` if an engine implementing the kernels
    ``supported`` can run it, else None (the engine's NumPy path)."""
    kern = family.row_kernel
    return ROW_KERNEL_CODES[kern] if kern is not None and kern in supported else None


def family_names() -> tuple[str, ...]:
    """Registered family names, sorted."""
    return tuple(sorted(FAMILIES))


def get_spec(name: str) -> FamilySpec:
    """The :class:`FamilySpec` registered as ``name`` (or an alias of it)."""
    return FAMILIES[resolve_name(name)]


def get_family(family: str | Family, link: str | None = None) -> Family:
    """Resolve a family name (and optional link) to a :class:`Family`.

    Parameters
    ----------
    family : str or Family
        A registered name or alias (``bernoulli``, ``binomial``, ``poisson``,
        ``gaussian``), case-insensitive.
    link : str, optional
        Link name; defaults to the family's canonical link.

    Raises
    ------
    DesignError
        For an unknown family or a link the family does not have, naming it.
    """
    if isinstance(family, Family):
        if link is not None and link != family.link:
            return Family(family.name, link)
        return family
    name = resolve_name(str(family))
    return Family(name, link or FAMILIES[name].canonical_link)


assert set(LINKS) >= {lk for s in FAMILIES.values() for lk in s.links}
