"""A validated model spec: :class:`ModelSpec` (the file format is described in
:mod:`bayesglmm.spec`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from bayesglmm import datasets
from bayesglmm.engines.registry import check_option
from bayesglmm.errors import ArgumentError, BayesGLMMError, SpecError
from bayesglmm.families import get_family
from bayesglmm.formula.bars import parse_formula
from bayesglmm.model import GLMM
from bayesglmm.priors import PRIOR_CLASSES, as_prior, check_prior_class
from bayesglmm.spec.methods import method_problem, parse_method
from bayesglmm.spec.reference import Reference, Tolerance, parse_reference, parse_tolerance
from bayesglmm.spec.schema import (
    AGQ_ENTRY,
    DATA,
    NUTS,
    REFERENCE,
    TOP,
    Checker,
    did_you_mean,
    freeze,
    thaw,
)
from bayesglmm.spec.simulation import check_simulation, simulate_logistic

__all__ = ["ModelSpec"]


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
        c = Checker(source)
        d = dict(d)
        c.table(d, TOP, "the top level")
        family = d["family"]
        try:
            fam = get_family(family, d.get("link"))
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
            problem = method_problem(m, parsed.random, family, d.get("link"))
            if problem:
                raise c.fail(f"method `{m}` cannot fit this model: {problem}")

        dataset = csv = None
        simulation = None
        if "data" in d:
            data = d["data"]
            c.table(data, DATA, "[data]")
            if ("dataset" in data) == ("csv" in data):
                raise c.fail("[data] needs exactly one of `dataset` or `csv`")
            if "dataset" in data:
                dataset = data["dataset"]
                names = list(datasets.list()["name"])
                if dataset not in names:
                    raise c.fail(
                        f"unknown dataset `{dataset}` in [data]{did_you_mean(dataset, names)} "
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
            check_simulation(c, sim, family)
            simulation = freeze(sim)
        if "data" not in d and "simulation" not in d:
            raise c.fail("missing required table [data] (or [simulation])")

        priors = d.get("priors", {})
        dispersion = tuple(p.name for p in fam.dispersion)
        classes = (*PRIOR_CLASSES, *dispersion)
        for key, value in priors.items():
            cls_ = key.split(":", 1)[0]
            if cls_ not in classes:
                raise c.fail(
                    f"unknown prior key `{key}` in [priors]{did_you_mean(cls_, classes)} "
                    f"(classes: {', '.join(classes)}, optionally `<class>:<name>`)"
                )
            try:  # the rules of bayesglmm.priors.resolve_priors, checked before any data
                check_prior_class(key, as_prior(value, key), dispersion)
            except BayesGLMMError as exc:
                raise c.fail(f"[priors] {str(exc).splitlines()[0]}") from exc

        nuts = d.get("nuts", {})
        c.table(nuts, NUTS, "[nuts]")
        for key, value in nuts.items():  # the ranges of GLMM.fit (bayesglmm.validate)
            try:
                check_option("nuts", key, value, where="[nuts] ")
            except ArgumentError as exc:
                raise c.fail(str(exc)) from exc

        tolerance = parse_tolerance(c, d.get("tolerance", {}), "[tolerance]", Tolerance())
        reference = None
        if "reference" in d:
            reference = parse_reference(c, d["reference"], "[reference]", REFERENCE, tolerance)
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
            tol = parse_tolerance(c, entry.pop("tolerance", {}), f"{where} tolerance", tolerance)
            agq.append(parse_reference(c, entry, where, AGQ_ENTRY, tol))

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
            priors=freeze(priors),
            nuts=freeze(nuts),
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
            priors=thaw(self.priors),
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
                kw = {**thaw(self.nuts), **kw}
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
            d["simulation"] = thaw(self.simulation)
        d.update(formula=self.formula, family=self.family)
        if self.link is not None:
            d["link"] = self.link
        for key in ("trials", "weights", "offset"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d["centered"] = self.centered
        d["priors"] = thaw(self.priors)
        d["methods"] = list(self.methods)
        d["nuts"] = thaw(self.nuts)
        if self.reference is not None:
            d["reference"] = self.reference.to_dict()
        if self.agq_table:
            d["agq_table"] = [r.to_dict() for r in self.agq_table]
        d["path"] = self.path
        return d
