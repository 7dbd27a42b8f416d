"""Prior descriptions and data-scaled defaults (NumPy/SciPy only; no PyMC here).

Defaults follow rstanarm's weakly informative, autoscaled priors, adapted to an
uncentred intercept (``s_y`` is 1 for binomial/Poisson/beta families and ``sd(y)`` for the
gaussian and Student-t):

====================  ==========================================  ==============================
class                 default                                      why
====================  ==========================================  ==============================
``intercept``         Normal(link(mean y), 2.5 s_y)                as rstanarm: on the intercept
                                                                   at centred predictors (the
                                                                   model samples that one, then
                                                                   reports the usual intercept)
``fixed`` (slopes)    Normal(0, 2.5 s_y / sd(x_j))                 rstanarm's autoscaled slopes: a
                                                                   1-SD change in x moves eta by
                                                                   at most ~5 a priori
``sd`` (group SDs)    HalfStudentT(nu=3, sigma=2.5 s_y)            brms' choice: heavy tail lets a
                                                                   large SD (toenail: 4) through,
                                                                   mass near 0 allows no effect
``sd`` (slope SDs)    HalfStudentT(nu=3, sigma=2.5 s_y / u_j)      autoscaled as the fixed slopes:
                                                                   the SD of a random slope on
                                                                   ``z_j`` is per unit of ``z_j``,
                                                                   so the same prior in other units
                                                                   would be another prior
``cor``               LKJ(eta=2)                                   mild shrinkage of correlations
                                                                   towards 0; keeps NUTS stable
``sigma`` (gaussian)  HalfStudentT(nu=3, sigma=2.5 sd(y))          as brms (any link: log too)
``sigma`` (t)         HalfStudentT(nu=3, sigma=2.5 sd(y))          as brms' ``student``
``nu`` (t)            Gamma(alpha=2, beta=0.1)                     as brms (prior mean 20)
``phi`` (beta)        Gamma(alpha=0.01, beta=0.01)                 as brms' ``Beta`` precision
``shape`` (negative   Gamma(alpha=0.01, beta=0.01)                 as brms's ``shape``: lme4's
binomial)                                                          ``theta``, ``Var = mu +
                                                                   mu^2 / shape``; vague, mean 1,
                                                                   most mass near 0 and a long
                                                                   right tail
``shape`` (gamma)     Gamma(alpha=0.01, beta=0.01)                 brms's default on the Gamma
                                                                   shape (Var = mu^2 / shape);
                                                                   key ``"shape"`` overrides it
====================  ==========================================  ==============================

``u_j`` is the SD of a random-effect term column, or its range when it takes two values (an
indicator keeps the intercept's prior, as rstanarm scales binary predictors by their range);
a constant column (the intercept) has ``u_j = 1``.  A predictor multiplied by ``f`` thus gets
a slope-SD prior ``1 / f`` as wide, and the posterior of the slope SD is the original one
divided by ``f`` (tests/test_scale_invariance.py).

Users override priors per class (``"intercept"``, ``"fixed"``, ``"sd"``, ``"cor"``,
and the family's dispersion by its name: ``"sigma"``, ``"shape"``, ``"nu"``, ``"phi"``) or per
term (``"fixed:time"``, ``"sd:patientID"``, ``"cor:subject"``) with a
:class:`Prior` or a plain dict ``{"dist": "Normal", "mu": 0, "sigma": 1}``; a number for
``cor`` means the LKJ ``eta``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.errors import DesignError

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


@dataclass(frozen=True)
class PriorSet:
    """The priors actually used, resolved against a design.

    Attributes
    ----------
    intercept : Prior or None
        Prior of the ``(Intercept)`` column, when the design has one.
    fixed : dict
        Slope name -> Prior (all slopes share one distribution family).
    sd : dict
        Block label -> tuple of Priors, one per term.
    cor : dict
        Block label -> LKJ Prior (correlated blocks only).
    dispersions : dict
        The family's dispersion parameters (``Family.dispersion``), name -> Prior: gaussian
        ``sigma``; empty for families without one.
    """

    intercept: Prior | None
    fixed: dict[str, Prior]
    sd: dict[str, tuple[Prior, ...]]
    cor: dict[str, Prior]
    dispersions: dict[str, Prior] = field(default_factory=dict)

    @property
    def sigma(self) -> Prior | None:
        """The residual SD prior of a gaussian family (None for other families)."""
        return self.dispersions.get("sigma")

    def dispersion(self, name: str) -> Prior:
        """The prior of the family's dispersion parameter ``name`` (gaussian ``sigma``)."""
        if name in self.dispersions:
            return self.dispersions[name]
        raise KeyError(f"no prior for the dispersion `{name}`")

    def table(self) -> list[tuple[str, str, str]]:
        """Rows (class, term, prior) for :meth:`GLMMFit.prior_summary`."""
        rows: list[tuple[str, str, str]] = []
        if self.intercept is not None:
            rows.append(("intercept", "(Intercept)", str(self.intercept)))
        rows += [("fixed", k, str(v)) for k, v in self.fixed.items()]
        for label, priors in self.sd.items():
            rows += (
                [("sd", f"{label}", str(p)) for p in priors[:1]]
                if len(set(map(str, priors))) == 1
                else [("sd", f"{label}[{i}]", str(p)) for i, p in enumerate(priors)]
            )
        rows += [("cor", k, str(v)) for k, v in self.cor.items()]
        rows += [(name, "", str(p)) for name, p in self.dispersions.items()]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for saving)."""
        return {
            "intercept": self.intercept.to_dict() if self.intercept else None,
            "fixed": {k: v.to_dict() for k, v in self.fixed.items()},
            "sd": {k: [p.to_dict() for p in v] for k, v in self.sd.items()},
            "cor": {k: v.to_dict() for k, v in self.cor.items()},
            "dispersions": {k: v.to_dict() for k, v in self.dispersions.items()},
        }


def block_labels(design: Design) -> tuple[str, ...]:
    """Unique variable-name labels for the random-effect blocks (group name, deduplicated)."""
    labels: list[str] = []
    for b in design.blocks:
        base = b.group.replace(":", "_")
        label, i = base, 2
        while label in labels:
            label, i = f"{base}_{i}", i + 1
        labels.append(label)
    return tuple(labels)


def default_priors(design: Design) -> dict[str, Prior]:
    """Class-level default priors, scaled to the data (see the module docstring)."""
    fam = design.family
    s_y, loc = fam.spec.response_scale(design)  # the family's rule (families/<family>.py)
    out = {
        "intercept": Prior("Normal", mu=loc, sigma=2.5 * s_y),
        "sd": Prior("HalfStudentT", nu=3.0, sigma=2.5 * s_y),
        "cor": Prior("LKJ", eta=2.0),
    }
    for disp in fam.dispersion:  # e.g. gaussian sigma: HalfStudentT(3, 2.5 s_y)
        dist, params = disp.default_prior(s_y)
        out[disp.name] = Prior(dist, **params)
    out["_s_y"] = s_y  # type: ignore[assignment]
    return out


def term_unit(z: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The unit ``u_j`` of a random-effect term column for its default SD prior: its SD, its
    range when it takes two values, 1 when it is constant or not finite.  With prior
    ``weights`` the rows of weight 0 do not count and the SD is weighted (a weight-``k``
    row counts as ``k`` rows, so weighted and duplicated data get the same unit)."""
    z = np.asarray(z, dtype=float)
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        keep = w > 0
        z, w = z[keep], w[keep]
    if not z.size or not np.all(np.isfinite(z)) or np.ptp(z) == 0:
        return 1.0
    vals = np.unique(z)
    if vals.size == 2:
        unit = float(vals[-1] - vals[0])
    elif w is None:
        unit = float(np.std(z))
    else:
        m = float(np.sum(w * z) / np.sum(w))
        unit = float(np.sqrt(np.sum(w * (z - m) ** 2) / np.sum(w)))
    return unit if unit > 0 and np.isfinite(unit) else 1.0


def term_scales(block: Any, weights: np.ndarray | None = None) -> np.ndarray:
    """:func:`term_unit` of every term column of a random-effect block.

    The Bayesian engines sample a correlated block's Cholesky factor for the columns divided
    by these units (scaling only: correlations and the meaning of the priors are kept, each
    SD prior scaled by its unit), so its off-diagonal elements are of one order whatever the
    units of the predictors.
    """
    Z = np.asarray(block.Z, dtype=float)
    return np.array([term_unit(Z[:, j], weights) for j in range(Z.shape[1])])


def _default_sd(base: Prior, z: np.ndarray, weights: np.ndarray | None = None) -> Prior:
    """The class default SD prior, its scale divided by the column's unit (exact, unrounded)."""
    unit = term_unit(z, weights)
    if unit == 1.0:
        return base
    return Prior("HalfStudentT", nu=base.params["nu"], sigma=base.params["sigma"] / unit)


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
                _default_sd(defaults["sd"], Z[:, j], design.weights) for j in range(block.n_terms)
            )
        if block.correlated:
            cor[label] = pri.get(
                f"cor:{label}", pri.get(f"cor:{block.group}", pri.get("cor", defaults["cor"]))
            )
    dispersions = {name: pri.get(name, defaults[name]) for name in disp_names}
    return PriorSet(intercept=intercept, fixed=fixed, sd=sd, cor=cor, dispersions=dispersions)
