"""Declarative model specs: a TOML file describes one course example end to end.

A spec names its data, formula, family, priors, the methods to compare and, where one
exists, a reference fit (lme4's ``glmer``) with tolerances.  The package never reads the
repository's ``models/`` directory by itself: users and tests pass a path to
:func:`load_spec`.

File format
-----------
Top level (``*`` required)::

    name*         str   must equal the file stem (``models/<name>.toml``)
    title         str   one line
    description   str   a short teaching note
    formula*      str   lme4 syntax
    family*       str   bernoulli | binomial | poisson | gaussian
    link          str   default: the canonical link
    trials        str   trials column (binomial proportions)
    weights       str   prior-weights column (lme4's ``weights=``; see ``docs/weights.md``)
    offset        str   offset column, added to any ``offset()`` terms (lme4's ``offset=``)
    centered      bool  centred random-effect parameterization for NUTS/ADVI (default false)
    methods*      list  of method strings, see :func:`parse_method`

Tables:

``[data]``
    exactly one of ``dataset`` (a :func:`bayesglmm.datasets.load` name) or ``csv`` (a path,
    relative to the spec file).  A spec without ``[data]`` needs ``[simulation]``.
``[simulation]``
    ``kind = "logistic"``, ``beta0``, ``beta1``, ``ri_sd``, ``rs_sd``, ``n_clusters``,
    ``seed``; optional ``n_per_cluster`` (20), ``x_min`` (-8), ``x_max`` (4).  Columns
    ``y``, ``x``, ``cluster``; the cluster effects are drawn first from
    ``numpy.random.default_rng(seed)``, exactly as
    :func:`bayesglmm.simulate_marginal_vs_conditional` draws them.
``[priors]``
    keys as :func:`bayesglmm.priors.resolve_priors` (``intercept``, ``fixed``, ``sd``,
    ``cor``, ``sigma``, ``fixed:<column>``, ``sd:<group>``, ``cor:<group>``), values
    ``{dist = "Normal", mu = 0, sigma = 1}`` (a number for ``cor`` is the LKJ eta).
``[nuts]``
    ``draws``, ``tune``, ``chains``, ``target_accept``, ``cores``, ``sampler``.
``[reference]``
    a maximum-likelihood fit to reproduce: ``source*`` (provenance, text), ``method*``
    (``"ml"``), ``nagq`` (1), ``fixef*``, ``sd``, ``cor``, ``loglik``,
    ``loglik_higher_is_ok``, ``nobs``, ``ngroups``, ``note``.  The values are copied into
    the file; nothing is read from elsewhere at run time.
``[[agq_table]]``
    further references of the same model at other ``nagq`` (same keys as ``[reference]``,
    ``source`` and ``method`` inherited from it, an optional inline ``tolerance``).
``[tolerance]``
    absolute tolerances for ``[reference]`` (and the defaults for ``[[agq_table]]``):
    ``fixef`` (1e-3), ``sd`` (1e-2), ``cor`` (as ``sd``), ``loglik`` (0.02).

Reference keys
    ``fixef`` keys are the fixed-effect column names (``"(Intercept)"``,
    ``"treatmentterbinafine:time"``).  ``sd`` keys are ``"<group>:<term>"``, or just
    ``"<group>"`` when that group has a single term (``patientID``), or ``"Residual"`` for
    the gaussian residual SD.  ``cor`` keys are ``"<group>:<term1>:<term2>"`` in the order
    of the formula (``"subject:(Intercept):followup"``).  Keys are matched against the
    names the fit reports, never split on ``:``, so terms that are themselves
    interactions (``a:b``) are fine.  ``ngroups`` keys are group names.  With
    ``loglik_higher_is_ok = true`` a log-likelihood above the reference counts as success
    (glmer warned that it had not converged, so a better optimum is expected).

Examples
--------
>>> from bayesglmm.spec import load_spec
>>> spec = load_spec("models/toenail_logistic_ri.toml")  # doctest: +SKIP
>>> fit = spec.model().fit(method="ml", nagq=spec.reference.nagq)  # doctest: +SKIP
>>> spec.reference.check(fit)  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm import datasets
from bayesglmm.engines import registry
from bayesglmm.engines.registry import check_option
from bayesglmm.errors import ArgumentError, BayesGLMMError, SpecError
from bayesglmm.families import FAMILIES, get_family, get_spec
from bayesglmm.formula.bars import parse_formula
from bayesglmm.model import GLMM
from bayesglmm.priors import as_prior

__all__ = [
    "ModelSpec",
    "Reference",
    "Tolerance",
    "list_specs",
    "load_spec",
    "method_label",
    "parse_method",
]

# key -> (required, accepted types, description of the type for messages)
_Schema = dict[str, tuple[bool, tuple[type, ...], str]]
_STR = ((str,), "a string")
_INT = ((int,), "an integer")
_NUM = ((int, float), "a number")
_BOOL = ((bool,), "true or false")
_TABLE = ((dict,), "a table")
_LIST = ((list,), "a list")


def _k(required: bool, kind: tuple[tuple[type, ...], str]) -> tuple[bool, tuple[type, ...], str]:
    return (required, kind[0], kind[1])


_TOP: _Schema = {
    "name": _k(True, _STR),
    "title": _k(False, _STR),
    "description": _k(False, _STR),
    "formula": _k(True, _STR),
    "family": _k(True, _STR),
    "link": _k(False, _STR),
    "trials": _k(False, _STR),
    "weights": _k(False, _STR),
    "offset": _k(False, _STR),
    "centered": _k(False, _BOOL),
    "methods": _k(True, _LIST),
    "data": _k(False, _TABLE),
    "simulation": _k(False, _TABLE),
    "priors": _k(False, _TABLE),
    "nuts": _k(False, _TABLE),
    "reference": _k(False, _TABLE),
    "agq_table": _k(False, _LIST),
    "tolerance": _k(False, _TABLE),
}
_DATA: _Schema = {"dataset": _k(False, _STR), "csv": _k(False, _STR)}
_SIMULATION: _Schema = {
    "kind": _k(True, _STR),
    "beta0": _k(True, _NUM),
    "beta1": _k(True, _NUM),
    "ri_sd": _k(True, _NUM),
    "rs_sd": _k(True, _NUM),
    "n_clusters": _k(True, _INT),
    "n_per_cluster": _k(False, _INT),
    "x_min": _k(False, _NUM),
    "x_max": _k(False, _NUM),
    "seed": _k(True, _INT),
}
_NUTS: _Schema = {
    "draws": _k(False, _INT),
    "tune": _k(False, _INT),
    "chains": _k(False, _INT),
    "cores": _k(False, _INT),
    "target_accept": _k(False, _NUM),
    "sampler": _k(False, _STR),
}
_TOLERANCE: _Schema = {
    "fixef": _k(False, _NUM),
    "sd": _k(False, _NUM),
    "cor": _k(False, _NUM),
    "loglik": _k(False, _NUM),
}
_REFERENCE: _Schema = {
    "source": _k(True, _STR),
    "method": _k(True, _STR),
    "nagq": _k(False, _INT),
    "fixef": _k(True, _TABLE),
    "sd": _k(False, _TABLE),
    "cor": _k(False, _TABLE),
    "loglik": _k(False, _NUM),
    "loglik_higher_is_ok": _k(False, _BOOL),
    "nobs": _k(False, _INT),
    "ngroups": _k(False, _TABLE),
    "note": _k(False, _STR),
}
_AGQ_ENTRY: _Schema = {
    **_REFERENCE,
    "source": _k(False, _STR),
    "method": _k(False, _STR),
    "nagq": _k(True, _INT),
    "tolerance": _k(False, _TABLE),
}
_PRIOR_CLASSES = ("intercept", "fixed", "sd", "cor", "sigma")
_SIM_KINDS = ("logistic",)


# ---------------------------------------------------------------------- methods
def _did_you_mean(word: str, choices: Sequence[str], n: int = 2, joiner: str = ", ") -> str:
    """``"; did you mean `a`, `b`?"`` for the close matches of ``word`` (``""`` for none)."""
    close = difflib.get_close_matches(word, list(choices), n=n)
    return f"; did you mean {joiner.join(f'`{c}`' for c in close)}?" if close else ""


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
    hint = _did_you_mean(item, [*names, *(f"{p}:25" for p in counted)], joiner=" or ")
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


def _n_effects(expr: str) -> int | None:
    """Effects per group of a random term's left-hand side; None when not obvious."""
    if "-" in expr.replace("-1", "") or "(" in expr or "*" in expr or ":" in expr:
        return None
    pieces = [p.strip() for p in expr.split("+")]
    no_intercept = any(p in ("0", "-1") for p in pieces)
    rest = [p for p in pieces if p not in ("0", "-1", "1")]
    has_intercept = not no_intercept
    return len(rest) + (1 if has_intercept else 0)


def _method_problem(text: str, random: Any, family: str) -> str:
    """Why a method cannot fit a model with these random terms (empty if it can, or if
    that is not clear without the data)."""
    method, kw = parse_method(text)
    if not random:  # a GLM: every method fits it (bayesglmm.engines.glm)
        return ""
    if method == "ml" and kw.get("nagq", 1) > 1:
        from bayesglmm.engines.ml.agq import MAX_NAGQ_VECTOR

        nagq = kw["nagq"]
        limits = f"nagq <= {MAX_NAGQ_VECTOR[2]} for 2 terms and nagq <= {MAX_NAGQ_VECTOR[3]} for 3"
        if len(random) != 1:
            return (
                f"adaptive quadrature needs one grouping factor with at most 3 random-effect "
                f"terms, the formula has {len(random)} random-effect terms; use `ml` (Laplace)"
            )
        n = _n_effects(random[0].expr)
        term = f"({random[0].expr} | {random[0].group})"
        if n is not None and n > 3:
            return (
                f"adaptive quadrature needs at most 3 random-effect terms per group, {term} "
                f"has {n}; use `ml` (Laplace)"
            )
        if n is not None and n > 1 and nagq > MAX_NAGQ_VECTOR[n]:
            return (
                f"adaptive quadrature with {n} terms per group, {term}, uses nagq^{n} nodes per "
                f"group: {limits}; use agq:{MAX_NAGQ_VECTOR[n]} or fewer"
            )
    if method == "laplace" and family in FAMILIES and "laplace" in get_spec(family).unsupported:
        return f"the integrated Laplace path is not for the {family} family; use `nuts`"
    return ""


# ---------------------------------------------------------------------- helpers
def _freeze(x: Any) -> Any:
    if isinstance(x, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in x.items()})
    if isinstance(x, list | tuple):
        return tuple(_freeze(v) for v in x)
    return x


def _thaw(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _thaw(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [_thaw(v) for v in x]
    return x


class _Checker:
    """Validates one spec's tables, naming the file in every message."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, msg: str) -> SpecError:
        return SpecError(f"{self.source}: {msg}")

    def table(self, d: Mapping[str, Any], schema: _Schema, where: str) -> None:
        for key in d:
            if key not in schema:
                hint = _did_you_mean(key, list(schema), n=3)
                raise self.fail(
                    f"unknown key `{key}` in {where}{hint} (valid: {', '.join(schema)})"
                )
        for key, (required, types, desc) in schema.items():
            if key not in d:
                if required:
                    raise self.fail(f"missing required key `{key}` in {where}")
                continue
            value = d[key]
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                raise self.fail(
                    f"key `{key}` in {where} must be {desc}, got {type(value).__name__}"
                )

    def numbers(self, d: Mapping[str, Any], where: str) -> dict[str, float]:
        out = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise self.fail(f"value of `{k}` in {where} must be a finite number, got {v!r}")
            out[str(k)] = float(v)
        return out

    def positive(
        self, d: Mapping[str, Any], keys: tuple[str, ...], where: str, *, zero_ok: bool = False
    ) -> None:
        """Keys that must be > 0 (>= 0 with ``zero_ok``), when present."""
        for k in keys:
            if k in d and not (d[k] >= 0 if zero_ok else d[k] > 0):
                need = ">= 0" if zero_ok else "positive"
                raise self.fail(f"key `{k}` in {where} must be {need}, got {d[k]!r}")


# ---------------------------------------------------------------------- references
@dataclass(frozen=True)
class Tolerance:
    """Absolute tolerances of a reference check.

    Attributes
    ----------
    fixef, sd, cor, loglik : float
        Largest accepted absolute differences (``cor`` defaults to ``sd``).
    """

    fixef: float = 1e-3
    sd: float = 1e-2
    cor: float | None = None
    loglik: float = 0.02

    @property
    def cor_tol(self) -> float:
        """The correlation tolerance (``sd`` when not given)."""
        return self.sd if self.cor is None else self.cor

    def to_dict(self) -> dict[str, float]:
        """Plain-dict form."""
        d = {"fixef": self.fixef, "sd": self.sd, "loglik": self.loglik}
        if self.cor is not None:
            d["cor"] = self.cor
        return d


@dataclass(frozen=True)
class Reference:
    """Reference values of one maximum-likelihood fit (e.g. lme4's ``glmer``).

    Attributes
    ----------
    source : str
        Provenance (text).
    method : str
        ``"ml"``.
    nagq : int
        Quadrature nodes (1 = Laplace).
    fixef, sd, cor : mapping
        Reference values, keyed as described in the module docstring.
    loglik : float or None
        Reference log-likelihood.
    loglik_higher_is_ok : bool
        A higher log-likelihood than the reference also passes.
    nobs : int or None
        Rows used.
    ngroups : mapping
        Group -> number of levels.
    tolerance : Tolerance
    note : str
    """

    source: str
    method: str
    nagq: int
    fixef: Mapping[str, float]
    sd: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    cor: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    loglik: float | None = None
    loglik_higher_is_ok: bool = False
    nobs: int | None = None
    ngroups: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    tolerance: Tolerance = field(default_factory=Tolerance)
    note: str = ""

    @property
    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`bayesglmm.GLMM.fit` that reproduce this fit."""
        return {"method": self.method, "nagq": self.nagq}

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (as in the TOML file, plus the tolerance)."""
        d: dict[str, Any] = {
            "source": self.source,
            "method": self.method,
            "nagq": self.nagq,
            "fixef": dict(self.fixef),
            "sd": dict(self.sd),
            "cor": dict(self.cor),
            "loglik": self.loglik,
            "loglik_higher_is_ok": self.loglik_higher_is_ok,
            "nobs": self.nobs,
            "ngroups": dict(self.ngroups),
            "tolerance": self.tolerance.to_dict(),
        }
        if self.note:
            d["note"] = self.note
        return d

    def check(self, fit: Any) -> pd.DataFrame:
        """Compare a fit with the reference values.

        Parameters
        ----------
        fit : GLMMFit
            Usually ``model.fit(**reference.fit_kwargs)``.

        Returns
        -------
        pandas.DataFrame
            One row per reference value: ``kind`` (fixef, sd, cor, loglik, nobs, ngroups),
            ``name``, ``reference``, ``estimate``, ``difference`` (estimate - reference),
            ``tolerance``, ``ok``.  A reference name the fit does not have gives
            ``estimate`` NaN and ``ok`` False.
        """
        tol = self.tolerance
        rows: list[tuple[str, str, float, float, float, float, bool]] = []

        def add(kind: str, name: str, ref: float, est: float, t: float, ok: bool) -> None:
            rows.append((kind, name, ref, est, est - ref, t, bool(ok)))

        fixef = fit.fixef()
        for name, ref in self.fixef.items():
            est = float(fixef.get(name, np.nan))
            add("fixef", name, ref, est, tol.fixef, abs(est - ref) <= tol.fixef)
        sds, cors = _varcorr_keys(fit.varcorr())
        for name, ref in self.sd.items():
            est = sds.get(name, np.nan)
            add("sd", name, ref, est, tol.sd, abs(est - ref) <= tol.sd)
        for name, ref in self.cor.items():
            est = cors.get(name, np.nan)
            add("cor", name, ref, est, tol.cor_tol, abs(est - ref) <= tol.cor_tol)
        if self.loglik is not None:
            try:
                est = float(fit.loglik)
            except BayesGLMMError:
                est = np.nan
            ok = (
                est >= self.loglik - tol.loglik
                if self.loglik_higher_is_ok
                else abs(est - self.loglik) <= tol.loglik
            )
            add("loglik", "logLik", self.loglik, est, tol.loglik, ok)
        if self.nobs is not None:
            est = float(fit.design.n)
            add("nobs", "nobs", float(self.nobs), est, 0.0, est == self.nobs)
        levels = {b.group: b.n_levels for b in fit.design.blocks}
        for name, ref in self.ngroups.items():
            est = float(levels.get(name, np.nan))
            add("ngroups", name, float(ref), est, 0.0, est == ref)
        return pd.DataFrame(
            rows,
            columns=["kind", "name", "reference", "estimate", "difference", "tolerance", "ok"],
        )


def _varcorr_keys(vc: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """``sd`` and ``cor`` lookups keyed as in the spec format, from ``fit.varcorr()``."""
    sds: dict[str, float] = {}
    cors: dict[str, float] = {}
    variance_rows = vc[vc["term2"].isna()]
    per_group = variance_rows["group"].value_counts()
    for row in vc.itertuples(index=False):
        if row.group == "Residual":
            sds["Residual"] = float(row.sd_cor)
        elif pd.isna(row.term2):
            sds[f"{row.group}:{row.term1}"] = float(row.sd_cor)
            if per_group[row.group] == 1:
                sds[str(row.group)] = float(row.sd_cor)
        else:
            cors[f"{row.group}:{row.term1}:{row.term2}"] = float(row.sd_cor)
    return sds, cors


# ---------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec (see the module docstring for the file format).

    Build one with :func:`load_spec` (from a file) or :meth:`from_dict`.
    """

    name: str
    formula: str
    family: str
    methods: tuple[str, ...]
    title: str = ""
    description: str = ""
    link: str | None = None
    trials: str | None = None
    weights: str | None = None
    offset: str | None = None
    centered: bool = False
    dataset: str | None = None
    csv: str | None = None
    simulation: Mapping[str, Any] | None = None
    priors: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    nuts: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    reference: Reference | None = None
    agq_table: tuple[Reference, ...] = ()
    path: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, source: str = "<spec>", base_dir: str | Path | None = None
    ) -> ModelSpec:
        """Validate a spec given as a dict (the parsed TOML).

        Parameters
        ----------
        d : mapping
            The spec.
        source : str
            Named in error messages (the file path for :func:`load_spec`).
        base_dir : path, optional
            Directory that a relative ``[data] csv`` path is relative to (default: the
            working directory).

        Raises
        ------
        SpecError
            Naming the bad key or value and ``source``.
        """
        c = _Checker(source)
        d = dict(d)
        c.table(d, _TOP, "the top level")
        family = d["family"]
        try:
            get_family(family, d.get("link"))
        except BayesGLMMError as exc:
            raise c.fail(str(exc).splitlines()[0]) from exc
        if not d["methods"]:
            raise c.fail('`methods` is empty; list at least one, e.g. ["ml", "nuts"]')
        seen: dict[tuple[str, str], str] = {}
        for m in d["methods"]:
            if not isinstance(m, str):
                raise c.fail(f"`methods` must hold strings, got {m!r}")
            try:
                method, kw = parse_method(m)
            except SpecError as exc:
                raise c.fail(str(exc)) from exc
            key = (method, json.dumps(kw, sort_keys=True))
            if key in seen:
                raise c.fail(f"method `{m}` is listed twice (as `{seen[key]}`)")
            seen[key] = m

        try:
            parsed = parse_formula(d["formula"])
        except BayesGLMMError as exc:
            raise c.fail(f"bad formula: {str(exc).splitlines()[0]}") from exc
        for m in d["methods"]:
            problem = _method_problem(m, parsed.random, family)
            if problem:
                raise c.fail(f"method `{m}` cannot fit this model: {problem}")

        dataset = csv = None
        simulation = None
        if "data" in d:
            data = d["data"]
            c.table(data, _DATA, "[data]")
            if ("dataset" in data) == ("csv" in data):
                raise c.fail("[data] needs exactly one of `dataset` or `csv`")
            if "dataset" in data:
                dataset = data["dataset"]
                names = list(datasets.list()["name"])
                if dataset not in names:
                    raise c.fail(
                        f"unknown dataset `{dataset}` in [data]{_did_you_mean(dataset, names)} "
                        f"(available: {', '.join(names)})"
                    )
            else:
                p = Path(data["csv"])
                if not p.is_absolute() and base_dir is not None:
                    p = Path(base_dir) / p
                if not p.is_file():
                    raise c.fail(f"data file `{p}` does not exist")
                csv = str(p)
        if "simulation" in d:
            if "data" in d:
                raise c.fail("give either [data] or [simulation], not both")
            sim = d["simulation"]
            c.table(sim, _SIMULATION, "[simulation]")
            if sim["kind"] not in _SIM_KINDS:
                raise c.fail(
                    f"unknown simulation kind `{sim['kind']}` (available: {', '.join(_SIM_KINDS)})"
                )
            if sim["kind"] == "logistic" and family != "bernoulli":
                raise c.fail(f'a logistic simulation needs family = "bernoulli", not `{family}`')
            c.positive(sim, ("n_clusters", "n_per_cluster"), "[simulation]")
            c.positive(sim, ("ri_sd", "rs_sd"), "[simulation]", zero_ok=True)
            if sim.get("x_min", -8.0) >= sim.get("x_max", 4.0):
                raise c.fail("[simulation] needs x_min < x_max")
            simulation = _freeze(sim)
        if "data" not in d and "simulation" not in d:
            raise c.fail("missing required table [data] (or [simulation])")

        priors = d.get("priors", {})
        for key, value in priors.items():
            cls_ = key.split(":", 1)[0]
            if cls_ not in _PRIOR_CLASSES:
                raise c.fail(
                    f"unknown prior key `{key}` in [priors]{_did_you_mean(cls_, _PRIOR_CLASSES)} "
                    f"(classes: {', '.join(_PRIOR_CLASSES)}, optionally `<class>:<name>`)"
                )
            try:
                prior = as_prior(value, key)
            except BayesGLMMError as exc:
                raise c.fail(f"[priors] {str(exc).splitlines()[0]}") from exc
            # the class rules of bayesglmm.priors.resolve_priors, checked before any data
            if cls_ in ("sd", "sigma") and not prior.positive:
                raise c.fail(f"prior `{key}` must be on the positive half-line, got {prior.dist}")
            if cls_ == "cor" and prior.dist != "LKJ":
                raise c.fail(f"prior `{key}` must be LKJ (eta = ...), got {prior.dist}")
            if cls_ in ("intercept", "fixed") and (prior.positive or prior.dist == "LKJ"):
                raise c.fail(f"prior `{key}` must be on the real line, got {prior.dist}")

        nuts = d.get("nuts", {})
        c.table(nuts, _NUTS, "[nuts]")
        for key, value in nuts.items():  # the ranges of GLMM.fit (bayesglmm.validate)
            try:
                check_option("nuts", key, value, where="[nuts] ")
            except ArgumentError as exc:
                raise c.fail(str(exc)) from exc

        tolerance = _tolerance(c, d.get("tolerance", {}), "[tolerance]", Tolerance())
        reference = None
        if "reference" in d:
            reference = _reference(c, d["reference"], "[reference]", _REFERENCE, tolerance)
        if "tolerance" in d and reference is None:
            raise c.fail("[tolerance] given without a [reference]")
        agq = []
        for i, entry in enumerate(d.get("agq_table", [])):
            where = f"[[agq_table]] entry {i + 1}"
            if not isinstance(entry, dict):
                raise c.fail(f"{where} must be a table")
            if reference is None:
                raise c.fail("[[agq_table]] given without a [reference]")
            entry = {"source": reference.source, "method": reference.method, **entry}
            tol = _tolerance(c, entry.pop("tolerance", {}), f"{where} tolerance", tolerance)
            agq.append(_reference(c, entry, where, _AGQ_ENTRY, tol))

        name = d["name"]
        if source.endswith(".toml") and Path(source).stem != name:
            raise c.fail(f"name `{name}` does not match the file name `{Path(source).name}`")
        return cls(
            name=name,
            formula=d["formula"],
            family=family,
            methods=tuple(d["methods"]),
            title=d.get("title", ""),
            description=d.get("description", ""),
            link=d.get("link"),
            trials=d.get("trials"),
            weights=d.get("weights"),
            offset=d.get("offset"),
            centered=bool(d.get("centered", False)),
            dataset=dataset,
            csv=csv,
            simulation=simulation,
            priors=_freeze(priors),
            nuts=_freeze(nuts),
            reference=reference,
            agq_table=tuple(agq),
            path=source if source.endswith(".toml") else None,
        )

    # ------------------------------------------------------------------ use
    @property
    def references(self) -> tuple[Reference, ...]:
        """The primary reference (if any) followed by the ``[[agq_table]]`` entries."""
        return ((self.reference,) if self.reference else ()) + self.agq_table

    @property
    def source_label(self) -> str:
        """Where the data comes from: the dataset name, the CSV path or ``simulation``."""
        return self.dataset or self.csv or "simulation"

    def data(self) -> pd.DataFrame:
        """The data: the packaged dataset, the CSV file, or the seeded simulation."""
        if self.dataset is not None:
            return datasets.load(self.dataset)
        if self.csv is not None:
            try:
                return pd.read_csv(self.csv)
            except (OSError, ValueError) as exc:
                raise SpecError(f"cannot read data file `{self.csv}`: {exc}") from exc
        assert self.simulation is not None
        return simulate_logistic(**{k: v for k, v in self.simulation.items() if k != "kind"})

    def model(self, data: pd.DataFrame | None = None) -> GLMM:
        """The :class:`bayesglmm.GLMM` (on :meth:`data`, unless ``data`` is given)."""
        return GLMM(
            self.formula,
            self.data() if data is None else data,
            self.family,
            link=self.link,
            trials=self.trials,
            priors=_thaw(self.priors),
            centered=self.centered,
            weights=self.weights,
            offset=self.offset,
        )

    def parse_methods(self, methods: list[str] | tuple[str, ...] | None = None) -> list:
        """``(method, kwargs)`` per method string (the spec's, unless ``methods`` is given).

        NUTS gets the ``[nuts]`` settings, e.g. ``("nuts", {"draws": 1000, ...})``.
        """
        out = []
        for m in self.methods if methods is None else methods:
            method, kw = parse_method(m)
            if method == "nuts":
                kw = {**_thaw(self.nuts), **kw}
            out.append((method, kw))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (the TOML structure, with inherited reference fields
        filled in), for saving with fits."""
        d: dict[str, Any] = {"name": self.name, "title": self.title}
        d["description"] = self.description
        if self.dataset is not None:
            d["data"] = {"dataset": self.dataset}
        elif self.csv is not None:
            d["data"] = {"csv": self.csv}
        else:
            d["simulation"] = _thaw(self.simulation)
        d.update(formula=self.formula, family=self.family)
        if self.link is not None:
            d["link"] = self.link
        for key in ("trials", "weights", "offset"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d["centered"] = self.centered
        d["priors"] = _thaw(self.priors)
        d["methods"] = list(self.methods)
        d["nuts"] = _thaw(self.nuts)
        if self.reference is not None:
            d["reference"] = self.reference.to_dict()
        if self.agq_table:
            d["agq_table"] = [r.to_dict() for r in self.agq_table]
        d["path"] = self.path
        return d


def _tolerance(c: _Checker, d: Mapping[str, Any], where: str, default: Tolerance) -> Tolerance:
    if not isinstance(d, Mapping):
        raise c.fail(f"{where} must be a table")
    c.table(d, _TOLERANCE, where)
    c.positive(d, tuple(_TOLERANCE), where)
    return Tolerance(
        fixef=float(d.get("fixef", default.fixef)),
        sd=float(d.get("sd", default.sd)),
        cor=float(d["cor"]) if "cor" in d else default.cor,
        loglik=float(d.get("loglik", default.loglik)),
    )


def _reference(
    c: _Checker, d: Mapping[str, Any], where: str, schema: _Schema, tol: Tolerance
) -> Reference:
    c.table(d, schema, where)
    if d["method"] != "ml":
        raise c.fail(f'`method` in {where} must be "ml", got `{d["method"]}`')
    nagq = d.get("nagq", 1)
    if nagq < 1:
        raise c.fail(f"`nagq` in {where} must be >= 1, got {nagq}")
    ngroups = d.get("ngroups", {})
    for k, v in ngroups.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise c.fail(f"value of `{k}` in {where} ngroups must be an integer, got {v!r}")
    return Reference(
        source=d["source"],
        method=d["method"],
        nagq=int(nagq),
        fixef=MappingProxyType(c.numbers(d["fixef"], f"{where} fixef")),
        sd=MappingProxyType(c.numbers(d.get("sd", {}), f"{where} sd")),
        cor=MappingProxyType(c.numbers(d.get("cor", {}), f"{where} cor")),
        loglik=float(d["loglik"]) if "loglik" in d else None,
        loglik_higher_is_ok=bool(d.get("loglik_higher_is_ok", False)),
        nobs=d.get("nobs"),
        ngroups=MappingProxyType(dict(ngroups)),
        tolerance=tol,
        note=d.get("note", ""),
    )


def simulate_logistic(
    beta0: float,
    beta1: float,
    ri_sd: float,
    rs_sd: float,
    n_clusters: int,
    seed: int,
    n_per_cluster: int = 20,
    x_min: float = -8.0,
    x_max: float = 4.0,
) -> pd.DataFrame:
    """Clustered binary data with a random intercept and slope (the course simulation).

    The cluster effects are drawn first, as :func:`bayesglmm.simulate_marginal_vs_conditional`
    draws them with the same seed (so the fitted clusters are the plotted curves); then
    ``x ~ Uniform(x_min, x_max)`` and ``y ~ Bernoulli(expit(beta0 + b0 + (beta1 + b1) x))``.

    Returns
    -------
    pandas.DataFrame
        Columns ``y`` (0/1), ``x``, ``cluster`` (``"c01"``, ...).
    """
    rng = np.random.default_rng(seed)
    b0 = rng.normal(0.0, ri_sd, n_clusters)
    b1 = rng.normal(0.0, rs_sd, n_clusters) if rs_sd > 0 else np.zeros(n_clusters)
    cluster = np.repeat(np.arange(n_clusters), n_per_cluster)
    x = rng.uniform(x_min, x_max, cluster.size)
    eta = beta0 + b0[cluster] + (beta1 + b1[cluster]) * x
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    width = len(str(n_clusters))
    return pd.DataFrame(
        {"y": y, "x": x, "cluster": [f"c{i + 1:0{width}d}" for i in cluster]},
    )


# ---------------------------------------------------------------------- files
def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a ``models/*.toml`` spec.

    Parameters
    ----------
    path : path
        The TOML file.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML, or fails validation (the message names
        the file and the bad key or value).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file `{p}`: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"{p}: not valid UTF-8 text: byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"line {line} (offset {exc.start}); save the file as UTF-8"
        ) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: invalid TOML: {exc}") from exc
    return ModelSpec.from_dict(raw, source=str(p), base_dir=p.parent)


def list_specs(directory: str | Path) -> pd.DataFrame:
    """Load every ``*.toml`` spec in ``directory``.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``title``, ``data``, ``formula``, ``family``, ``methods``,
        ``reference`` (the reference's nAGQ, or empty), ``path``; sorted by name.

    Raises
    ------
    SpecError
        If the directory does not exist or a spec in it is invalid.
    """
    d = Path(directory)
    if not d.is_dir():
        raise SpecError(f"spec directory `{d}` does not exist")
    rows = []
    for f in sorted(d.glob("*.toml")):
        s = load_spec(f)
        rows.append(
            (
                s.name,
                s.title,
                s.source_label,
                s.formula,
                s.family if s.link is None else f"{s.family}/{s.link}",
                ", ".join(s.methods),
                "" if s.reference is None else f"ml nAGQ={s.reference.nagq}",
                str(f),
            )
        )
    return pd.DataFrame(
        rows,
        columns=["name", "title", "data", "formula", "family", "methods", "reference", "path"],
    )
