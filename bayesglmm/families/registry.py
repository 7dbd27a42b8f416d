"""The family registry: every family the package knows, its aliases, and the Numba row-kernel
codes (generated here, once, for every engine that dispatches on an integer).

Adding a family: write its :class:`~bayesglmm.families.base.FamilySpec` subclass in its own
module and add one ``register(...)`` line below (``docs/architecture.md``, "Families").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bayesglmm.families import (
    beta,
    binomial,
    gamma,
    gaussian,
    negative_binomial,
    poisson,
    student_t,
)
from bayesglmm.families.base import FamilySpec, row_prep_none
from bayesglmm.families.beta import Beta
from bayesglmm.families.binomial import Bernoulli, Binomial
from bayesglmm.families.family import Family
from bayesglmm.families.gamma import Gamma
from bayesglmm.families.gaussian import Gaussian
from bayesglmm.families.links import LINKS
from bayesglmm.families.negative_binomial import NegativeBinomial
from bayesglmm.families.negative_binomial1 import NegativeBinomial1
from bayesglmm.families.poisson import Poisson
from bayesglmm.families.registered import (
    ALIASES,
    FAMILIES,
    register,
    resolve_name,
    unregister,
)
from bayesglmm.families.student_t import StudentT

__all__ = [
    "ALIASES",
    "FAMILIES",
    "ROW_FUNCTIONS",
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
register(NegativeBinomial1(), aliases=("nbinom1", "negbinomial1", "negative_binomial1", "nb1"))

#: The NUTS row kernels, in code order: name -> ``(prep, row)``, scalar functions in the
#: families' modules (:func:`~bayesglmm.families.base.row_prep_none` describes them), compiled
#: by ``engines/bayes/row_dispatch.py``; the integer an engine dispatches on is the position
#: here.  A family names its kernel per link in ``FamilySpec.row_kernels``.  Adding a row
#: kernel: its two functions in the family's module and one line here.
ROW_FUNCTIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "logit": (row_prep_none, binomial.nuts_row_logit),
    "poisson": (row_prep_none, poisson.nuts_row_log),
    "gaussian": (gaussian.nuts_prep, gaussian.nuts_row_identity),
    "gamma_log": (gamma.nuts_prep, gamma.nuts_row_log),
    "gamma_inverse": (gamma.nuts_prep, gamma.nuts_row_inverse),
    "nb_log": (negative_binomial.nuts_prep, negative_binomial.nuts_row),
    "gaussian_log": (gaussian.nuts_prep, gaussian.nuts_row_log),
    "beta_logit": (beta.nuts_prep, beta.nuts_row),
    "t_identity": (student_t.nuts_prep, student_t.nuts_row),
}
ROW_KERNELS: tuple[str, ...] = tuple(ROW_FUNCTIONS)
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
