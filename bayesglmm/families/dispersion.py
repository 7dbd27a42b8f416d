"""One dispersion parameter of a family (:class:`Dispersion`): its name, default prior rule
and transform to the unconstrained scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Dispersion"]

Array = np.ndarray


@dataclass(frozen=True)
class Dispersion:
    """One dispersion parameter of a family.

    Parameters
    ----------
    name : str
        Its name as users see it, and its posterior variable name (gaussian ``"sigma"``).
    prior : tuple of (str, dict)
        Default prior rule: distribution name and parameters, where a parameter value given
        as ``("s_y", c)`` means ``c`` times the family's response scale ``s_y``
        (:meth:`FamilySpec.response_scale`), as in ``priors.py``'s defaults.
    transform : {"log"}
        Map to the unconstrained scale the engines optimise and sample on.
    label : str, optional
        How a printed fit names it when that differs from ``name`` (the negative binomial's
        ``shape`` is printed as lme4's ``theta``).
    """

    name: str
    prior: tuple[str, dict[str, Any]]
    transform: str = "log"
    label: str | None = None

    def to_unconstrained(self, value: Array | float) -> Array:
        """The parameter on the unconstrained scale."""
        return np.log(np.asarray(value, dtype=float))

    def from_unconstrained(self, u: Array | float) -> Array:
        """Inverse of :meth:`to_unconstrained`."""
        return np.exp(np.asarray(u, dtype=float))

    def default_prior(self, s_y: float) -> tuple[str, dict[str, float]]:
        """``(distribution, parameters)`` of the default prior for response scale ``s_y``."""
        dist, params = self.prior
        out = {k: (v[1] * s_y if isinstance(v, tuple) else float(v)) for k, v in params.items()}
        return dist, out
