"""Reference values of a spec (``[reference]``, ``[[agq_table]]``, ``[tolerance]``): a
maximum-likelihood fit to reproduce, parsed from the file and checked against a fit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesglmm.errors import BayesGLMMError
from bayesglmm.spec.schema import TOLERANCE, Checker, Schema

if TYPE_CHECKING:
    from bayesglmm.fit.results import GLMMFit

__all__ = ["Reference", "Tolerance", "parse_reference", "parse_tolerance"]


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

    def check(self, fit: GLMMFit) -> pd.DataFrame:
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
def parse_tolerance(c: Checker, d: Mapping[str, Any], where: str, default: Tolerance) -> Tolerance:
    """A ``[tolerance]`` table (missing keys from ``default``)."""
    if not isinstance(d, Mapping):
        raise c.fail(f"{where} must be a table")
    c.table(d, TOLERANCE, where)
    c.positive(d, tuple(TOLERANCE), where)
    return Tolerance(
        fixef=float(d.get("fixef", default.fixef)),
        sd=float(d.get("sd", default.sd)),
        cor=float(d["cor"]) if "cor" in d else default.cor,
        loglik=float(d.get("loglik", default.loglik)),
    )


def parse_reference(
    c: Checker, d: Mapping[str, Any], where: str, schema: Schema, tol: Tolerance
) -> Reference:
    """A ``[reference]`` or ``[[agq_table]]`` entry, checked against ``schema``."""
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
