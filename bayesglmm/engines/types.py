"""The types every engine shares: :class:`Engine`, :class:`EngineResult`, :class:`FitInfo`.

An engine is ``fit(design, priors, options, context) -> EngineResult``; it is registered
once in :mod:`bayesglmm.engines.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.estimate import MLEstimate
from bayesglmm.priors import PriorSet
from bayesglmm.validate import Option

__all__ = ["Engine", "EngineContext", "EngineFit", "EngineResult", "FitInfo"]


# ---------------------------------------------------------------------- results
@dataclass
class FitInfo:
    """What an engine reports about its run, apart from the user's options.

    Attributes
    ----------
    sampler : str, optional
        The NUTS sampler actually used (``"kernel"``, ``"pymc"``, ...).
    iterations : int, optional
        Optimizer or ADVI iterations run.
    converged : bool, optional
        Whether the optimizer / ADVI loss met its criterion.
    messages : list of str
        Notes for the user (printed with the fit; ``options["notes"]``).
    timings : dict
        Seconds per phase, e.g. ``{"elapsed_mode": 0.12}``.
    partial : dict, optional
        After a Ctrl-C kept by ``allow_partial=True``: what was asked for and what was kept.
    resolved : dict
        Options the engine chose for the user (NUTS ``target_accept`` by default, the draws
        and chains an interrupted run kept): shown under the option's own name.
    extra : dict
        Other engine-specific diagnostics (``strategy``, ``mode``, ``cov``, ...).
    """

    sampler: str | None = None
    iterations: int | None = None
    converged: bool | None = None
    messages: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    partial: dict[str, Any] | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _FIELDS: ClassVar[tuple[str, ...]] = ("sampler", "iterations", "converged", "partial")

    @classmethod
    def from_dict(cls, info: Mapping[str, Any]) -> FitInfo:
        """A FitInfo from an engine's flat dictionary of diagnostics (``elapsed_*`` keys are
        timings, ``notes`` the messages)."""
        out = cls()
        for key, value in info.items():
            if key in cls._FIELDS:
                setattr(out, key, value)
            elif key == "notes":
                out.messages = [str(m) for m in value]
            elif key.startswith("elapsed_"):
                out.timings[key] = float(value)
            else:
                out.extra[key] = value
        return out

    def as_options(self) -> dict[str, Any]:
        """The flat keys ``fit.options`` has always shown (``sampler``, ``converged``,
        ``notes``, ``partial``, ``elapsed_*``, ...); unset fields are left out."""
        out: dict[str, Any] = dict(self.extra)
        out.update(self.timings)
        for key in self._FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.messages:
            out["notes"] = list(self.messages)
        out.update(self.resolved)
        return out


@dataclass
class EngineResult:
    """What every engine returns: ``estimate`` (ML) or ``draws`` (Bayesian), and ``info``.

    Raises
    ------
    TypeError
        Unless exactly one of ``estimate`` and ``draws`` is given.
    """

    estimate: MLEstimate | None = None
    draws: Any = None  # xarray.DataTree with a ``posterior`` group
    info: FitInfo = field(default_factory=FitInfo)

    def __post_init__(self) -> None:
        if (self.estimate is None) == (self.draws is None):
            raise TypeError("EngineResult needs exactly one of `estimate` and `draws`")


@dataclass(frozen=True)
class EngineContext:
    """What an engine may need beyond the design and priors, built lazily by the model.

    Attributes
    ----------
    centered : bool
        Centred parameterization of the random effects.
    pymc_model : callable
        Returns the model's PyMC model (built once and cached by the model).
    kernel_layout : callable
        Returns the fused NUTS kernel's layout, or None when the model is outside it.
    """

    centered: bool = False
    pymc_model: Callable[[], Any] = lambda: None
    kernel_layout: Callable[[], Any] = lambda: None


class EngineFit(Protocol):
    """``fit(design, priors, options, context) -> EngineResult``."""

    def __call__(
        self, design: Design, priors: PriorSet, options: dict[str, Any], context: EngineContext
    ) -> EngineResult: ...


@dataclass(frozen=True)
class Engine:
    """One fitting method.

    Attributes
    ----------
    name : str
        The ``method=`` string.
    bayesian : bool
        True when the engine returns draws (then ``log_likelihood`` is among its options).
    options : tuple of Option
        Every keyword it accepts, with ranges (``GLMM.fit``, specs and CLI check them).
    fit : callable
        ``fit(design, priors, options, context) -> EngineResult``.
    label : str
        How a printed fit names it (``"... fit by <label>"``).
    description : str
        A one-line description for spec listings.
    defaults : mapping
        Option values filled in before the engine runs and recorded in ``fit.options``
        (NUTS: draws, tune, chains).
    aliases : mapping
        Method strings of specs and ``--methods`` that stand for this engine with preset
        options and a description, e.g.
        ``{"pql_phi1": ({"dispersion": "fixed"}, "PQL, dispersion fixed at 1")}``.
    counted_alias : tuple, optional
        ``(prefix, option, description)``: ``"<prefix>:<n>"`` means this engine with
        ``option=n``, e.g. ``("agq", "nagq", ...)`` for ``agq:25``.
    check : callable, optional
        Cross-option checks after each option was checked alone: ``check(options, where)``.
    terms_check : callable, optional
        ``terms_check(random_terms, options) -> str``: why the engine cannot fit a model
        with these random-effect terms (the parsed formula's, before any data), or ``""``
        (the spec files check their methods with it).
    """

    name: str
    bayesian: bool
    options: tuple[Option, ...]
    fit: EngineFit
    label: str = ""
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    aliases: Mapping[str, tuple[Mapping[str, Any], str]] = field(default_factory=dict)
    counted_alias: tuple[str, str, str] | None = None
    check: Callable[[dict[str, Any], str], None] | None = None
    terms_check: Callable[[Sequence[Any], Mapping[str, Any]], str] | None = None

    def option(self, name: str) -> Option | None:
        """The option called ``name``, or None."""
        return next((o for o in self.options if o.name == name), None)

    @property
    def seeded(self) -> bool:
        """Whether the engine takes a ``random_seed``."""
        return self.option("random_seed") is not None

    @property
    def has_progressbar(self) -> bool:
        """Whether the engine takes a ``progressbar``."""
        return self.option("progressbar") is not None
