"""What the count families (Poisson, negative binomial NB2 and NB1) share about their
response: non-negative integer counts, the ``-log y!`` constant of the log-likelihood, and
the response scale the default priors use (the log of the mean rate per unit of exposure)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from bayesglmm.families.base import FamilySpec

__all__ = ["CountResponse"]

Array = np.ndarray


class CountResponse(FamilySpec):
    """A :class:`FamilySpec` whose response is a count."""

    def row_constants(self, y: Array, trials: Array) -> Array:
        return -special.gammaln(np.asarray(y, dtype=float) + 1.0)

    def check_response(self, values: Array, trials: Array | None) -> tuple[Array, str]:
        return (values < 0) | (values != np.round(values)), "must hold non-negative integer counts"

    def response_scale(self, design: Any) -> tuple[float, float]:
        rate = float(design.row_mean(design.y) / design.row_mean(np.exp(design.offset)))
        return 1.0, math.log(max(rate, 0.01))
