"""A prior distribution by name (:class:`Prior`) and the checks of its parameters.

:func:`as_prior` turns what a user writes (a :class:`Prior`, a dict
``{"dist": "Normal", "mu": 0, "sigma": 1}``, or a number for the LKJ ``eta`` of ``cor``)
into a :class:`Prior`, naming the prior key in any error.  NumPy/SciPy only; no PyMC here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesglmm.errors import DesignError

__all__ = ["POSITIVE", "Prior", "as_prior", "check_prior_params"]

_DISTS: dict[str, tuple[str, ...]] = {
    "Normal": ("mu", "sigma"),
    "StudentT": ("nu", "mu", "sigma"),
    "Cauchy": ("alpha", "beta"),
    "HalfNormal": ("sigma",),
    "HalfStudentT": ("nu", "sigma"),
    "HalfCauchy": ("beta",),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "LKJ": ("eta",),
}
POSITIVE = {"HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential", "Gamma"}


@dataclass(frozen=True)
class Prior:
    """A prior distribution by name with its parameters.

    Parameters
    ----------
    dist : str
        One of Normal, StudentT, Cauchy, HalfNormal, HalfStudentT, HalfCauchy, Exponential,
        Gamma (PyMC parameter names), or LKJ (for correlations).
    **params
        Distribution parameters, e.g. ``mu=0, sigma=1``.

    Examples
    --------
    >>> Prior("Normal", mu=0, sigma=1)
    Prior(Normal(mu=0, sigma=1))
    """

    dist: str
    params: dict[str, float] = field(default_factory=dict)

    def __init__(self, dist: str, **params: float) -> None:
        if dist not in _DISTS:
            raise DesignError(
                f"unknown prior distribution `{dist}`; choose one of {', '.join(_DISTS)}"
            )
        unknown = set(params) - set(_DISTS[dist])
        missing = set(_DISTS[dist]) - set(params)
        if unknown or missing:
            raise DesignError(
                f"prior {dist} takes parameters {', '.join(_DISTS[dist])}; "
                f"got {', '.join(sorted(params)) or 'none'}"
            )
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", check_prior_params(dist, params))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"Prior({self.dist}({args}))"

    def __str__(self) -> str:
        return repr(self)[6:-1]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for saving)."""
        return {"dist": self.dist, **self.params}

    def scaled(self, factor: float) -> Prior:
        """The prior of ``factor * b`` when ``b`` has this prior (location-scale families, and
        scale families on the positive half-line).

        Used to put a slope prior on the slope per SD of its column
        (:mod:`bayesglmm.engines.scaling`).

        Raises
        ------
        DesignError
            For a distribution that is not a location-scale family on the real line.
        """
        factor = float(factor)
        if not (np.isfinite(factor) and factor > 0):
            raise DesignError(f"a prior can only be scaled by a positive number, got {factor}")
        p = self.params
        if self.dist == "Normal":
            return Prior("Normal", mu=p["mu"] * factor, sigma=p["sigma"] * factor)
        if self.dist == "StudentT":
            return Prior("StudentT", nu=p["nu"], mu=p["mu"] * factor, sigma=p["sigma"] * factor)
        if self.dist == "Cauchy":
            return Prior("Cauchy", alpha=p["alpha"] * factor, beta=p["beta"] * factor)
        # scale families on the positive half-line (SD priors of standardized terms)
        if self.dist in ("HalfNormal", "HalfStudentT"):
            return Prior(self.dist, **{**p, "sigma": p["sigma"] * factor})
        if self.dist == "HalfCauchy":
            return Prior("HalfCauchy", beta=p["beta"] * factor)
        if self.dist == "Exponential":
            return Prior("Exponential", lam=p["lam"] / factor)
        if self.dist == "Gamma":
            return Prior("Gamma", alpha=p["alpha"], beta=p["beta"] / factor)
        raise DesignError(f"prior {self.dist} is not a location-scale family on the real line")

    @property
    def positive(self) -> bool:
        """True for distributions on the positive half-line."""
        return self.dist in POSITIVE

    def logpdf(self, x: np.ndarray | float) -> np.ndarray:
        """Log density at ``x`` (SciPy), for the likelihood-based fast paths."""
        from scipy import stats  # loaded on first use: keeps model building light

        p, x = self.params, np.asarray(x, dtype=float)
        d = self.dist
        if d == "Normal":
            return stats.norm.logpdf(x, p["mu"], p["sigma"])
        if d == "StudentT":
            return stats.t.logpdf(x, p["nu"], p["mu"], p["sigma"])
        if d == "Cauchy":
            return stats.cauchy.logpdf(x, p["alpha"], p["beta"])
        if d == "HalfNormal":
            return stats.halfnorm.logpdf(x, scale=p["sigma"])
        if d == "HalfStudentT":
            return np.where(
                x >= 0, math.log(2.0) + stats.t.logpdf(x, p["nu"], 0, p["sigma"]), -np.inf
            )
        if d == "HalfCauchy":
            return stats.halfcauchy.logpdf(x, scale=p["beta"])
        if d == "Exponential":
            return stats.expon.logpdf(x, scale=1.0 / p["lam"])
        if d == "Gamma":
            return stats.gamma.logpdf(x, p["alpha"], scale=1.0 / p["beta"])
        raise DesignError(f"no density for {d} on a scalar")

    def rvs(self, size: Any, rng: np.random.Generator) -> np.ndarray:
        """Random draws (for simulation-based calibration)."""
        p, d = self.params, self.dist
        if d == "Normal":
            return rng.normal(p["mu"], p["sigma"], size)
        if d == "StudentT":
            return p["mu"] + p["sigma"] * rng.standard_t(p["nu"], size)
        if d == "Cauchy":
            return p["alpha"] + p["beta"] * rng.standard_cauchy(size)
        if d == "HalfNormal":
            return np.abs(rng.normal(0, p["sigma"], size))
        if d == "HalfStudentT":
            return np.abs(p["sigma"] * rng.standard_t(p["nu"], size))
        if d == "HalfCauchy":
            return np.abs(p["beta"] * rng.standard_cauchy(size))
        if d == "Exponential":
            return rng.exponential(1.0 / p["lam"], size)
        if d == "Gamma":
            return rng.gamma(p["alpha"], 1.0 / p["beta"], size)
        raise DesignError(f"cannot draw {d} as a scalar")


_LOCATION = {("Normal", "mu"), ("StudentT", "mu"), ("Cauchy", "alpha")}
"""Parameters that may be any finite number; every other one must be > 0."""


def check_prior_params(dist: str, params: Mapping[str, Any]) -> dict[str, float]:
    """Validate user-given prior parameters: finite numbers, scales and shapes > 0.

    Returns
    -------
    dict
        The parameters as floats, in the distribution's order.

    Raises
    ------
    DesignError
        Naming the distribution, the parameter and its valid range, e.g.
        ``prior Normal: `sigma` must be a finite number > 0; got -1``.
    """
    out: dict[str, float] = {}
    for name in _DISTS[dist]:
        v = params[name]
        location = (dist, name) in _LOCATION
        need = "a finite number" if location else "a finite number > 0"
        number = isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
        if not number or not math.isfinite(float(v)) or (not location and float(v) <= 0):
            raise DesignError(f"prior {dist}: `{name}` must be {need}; got {v!r}")
        out[name] = float(v)
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _for_key(exc: DesignError, key: str, dist: str) -> DesignError:
    """The same error, naming the prior key: ``prior for `fixed` (Normal): ...``."""
    text = str(exc)
    head = f"prior {dist}: "
    if text.startswith(head):
        return DesignError(f"prior for `{key}` ({dist}): {text[len(head) :]}")
    return DesignError(f"prior for `{key}`: {text}")


def as_prior(value: Prior | Mapping[str, Any] | float, key: str) -> Prior:
    """Turn a user value (Prior, dict or LKJ eta number) into a :class:`Prior`."""
    if isinstance(value, Prior):
        return value
    if isinstance(value, numbers.Real) and key.split(":")[0] == "cor":
        try:
            return Prior("LKJ", eta=float(value))
        except DesignError as exc:
            raise _for_key(exc, key, "LKJ") from exc
    if isinstance(value, Mapping):
        d = dict(value)
        dist = d.pop("dist", None) or d.pop("distribution", None)
        if dist is None:
            raise DesignError(f"prior for `{key}` needs a 'dist' entry, e.g. {{'dist': 'Normal'}}")
        try:
            return Prior(str(dist), **d)
        except DesignError as exc:
            raise _for_key(exc, key, str(dist)) from exc
    raise DesignError(f"prior for `{key}` must be a Prior, a dict or (for cor) a number")
