"""The engine registry: every fitting method, registered once.

An engine is a callable ``fit(design, priors, options, context) -> EngineResult`` with a
name, whether it is Bayesian (draws) or maximum likelihood (an :class:`MLEstimate`), and
the table of options it accepts (:class:`bayesglmm.validate.Option`).  :meth:`GLMM.fit`,
the TOML specs, the command line and SBC read the method list and the option tables from
here (the shared types are in :mod:`bayesglmm.engines.types`, re-exported here); adding an engine touches its own module and one :func:`register` call (see
``docs/architecture.md``, "How to add an engine").

Every engine returns one :class:`EngineResult`: its ``estimate`` (ML) or its ``draws``
(a DataTree), plus a :class:`FitInfo` of diagnostics (iterations, convergence, messages,
timings, the record of an interrupted run, the sampler used), kept apart from the user's
options.  :attr:`bayesglmm.GLMMFit.options` shows both merged, read-only, under the keys
fits have always had.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bayesglmm.design.types import Design
from bayesglmm.engines.types import (
    Engine,
    EngineContext,
    EngineFit,
    EngineResult,
    FitInfo,
)
from bayesglmm.errors import ArgumentError
from bayesglmm.priors import PriorSet
from bayesglmm.validate import (
    ADVI_OPTIONS,
    LAPLACE_OPTIONS,
    ML_OPTIONS,
    NUTS_OPTIONS,
    PQL_OPTIONS,
    Option,
    check_nuts_options,
    unknown_option_message,
)

__all__ = [
    "Engine",
    "EngineContext",
    "EngineFit",
    "EngineResult",
    "FitInfo",
    "bayesian_methods",
    "check_fit_options",
    "check_option",
    "get_engine",
    "method_names",
    "register",
    "unregister",
]


_ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add an engine (its name must be new, its aliases must not clash).

    Raises
    ------
    ValueError
        For a name or alias already taken.
    """
    taken = set(_ENGINES) | {a for e in _ENGINES.values() for a in e.aliases}
    for name in (engine.name, *engine.aliases):
        if name in taken:
            raise ValueError(f"method name {name!r} is already registered")
    if engine.bayesian and engine.option("log_likelihood") is None:
        raise ValueError(f"Bayesian engine {engine.name!r} must accept `log_likelihood`")
    _ENGINES[engine.name] = engine
    return engine


def unregister(name: str) -> None:
    """Remove an engine (for tests that register a toy one)."""
    _ENGINES.pop(name, None)


def engines() -> Mapping[str, Engine]:
    """Every registered engine by name, in registration order (read-only)."""
    return MappingProxyType(_ENGINES)


def method_names() -> tuple[str, ...]:
    """The ``method=`` strings of every registered engine."""
    return tuple(_ENGINES)


def bayesian_methods() -> tuple[str, ...]:
    """The methods that return draws."""
    return tuple(n for n, e in _ENGINES.items() if e.bayesian)


def get_engine(method: Any) -> Engine:
    """The engine called ``method``.

    Raises
    ------
    ArgumentError
        For an unknown method, with the close match and the list of methods.
    """
    if isinstance(method, str) and method in _ENGINES:
        return _ENGINES[method]
    names = method_names()
    close = difflib.get_close_matches(str(method), names, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    raise ArgumentError(f"unknown method `{method}`{hint} (choose one of {', '.join(names)})")


def option_tables() -> dict[str, tuple[Option, ...]]:
    """``{method: options}`` of every engine."""
    return {n: e.options for n, e in _ENGINES.items()}


def check_option(method: str, name: str, value: Any, where: str = "") -> Any:
    """Check one option of ``method``; returns the (normalized) value.

    Raises
    ------
    ArgumentError
        If ``name`` is not an option of ``method`` (naming the methods that take it) or
        ``value`` is out of range.
    """
    opt = get_engine(method).option(name)
    if opt is None:
        raise ArgumentError(unknown_option_message(option_tables(), method, name, where))
    return opt.check(value, where)


def check_fit_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check every keyword argument of ``GLMM.fit(method=method, **options)``.

    Returns
    -------
    dict
        The options with normalized values: NumPy integers become ``int``, a
        :class:`numpy.random.Generator` seed becomes an integer drawn from it.

    Raises
    ------
    ArgumentError
        For an unknown method or option (with close matches) or a value out of range.
    """
    engine = get_engine(method)
    where = f"fit(method={method!r}): "
    out = {name: check_option(method, name, value, where) for name, value in options.items()}
    if engine.check is not None:
        engine.check(out, where)
    return out


def method_strings() -> tuple[str, ...]:
    """Every plain method string of specs and ``--methods``: names, then aliases."""
    return (*_ENGINES, *(a for e in _ENGINES.values() for a in e.aliases))


def counted_aliases() -> dict[str, tuple[Engine, str, str]]:
    """``{prefix: (engine, option, description)}`` of the ``<prefix>:<n>`` method strings."""
    return {
        e.counted_alias[0]: (e, e.counted_alias[1], e.counted_alias[2])
        for e in _ENGINES.values()
        if e.counted_alias is not None
    }


def describe_method_string(item: str) -> str:
    """A one-line description of a plain method string (name or alias)."""
    for e in _ENGINES.values():
        if item in e.aliases:
            return e.aliases[item][1]
    engine = _ENGINES.get(item)
    return item if engine is None else engine.description or engine.label or engine.name


def resolve_method_string(item: str) -> tuple[str, dict[str, Any]] | None:
    """``(method, preset options)`` for a plain method name or alias; None if unknown
    (``<prefix>:<n>`` strings are for the caller, see :func:`counted_aliases`)."""
    if item in _ENGINES:
        return (item, {})
    for e in _ENGINES.values():
        if item in e.aliases:
            return (e.name, dict(e.aliases[item][0]))
    return None


# ---------------------------------------------------------------------- built-in engines
def _fit_nuts(
    design: Design, priors: PriorSet, options: dict[str, Any], context: EngineContext
) -> EngineResult:
    from bayesglmm.engines.bayes.pymc_nuts import (
        check_cores,
        default_target_accept,
        interactive,
        partial_info,
        resolve_sampler,
        sample_nuts,
    )

    opts = dict(options)
    check_cores(opts.get("cores"))
    layout = context.kernel_layout()
    sampler = resolve_sampler(opts.pop("sampler", "auto"), layout is not None)
    if "max_treedepth" in opts and sampler == "kernel":  # nutpie's name for it
        opts["maxdepth"] = opts.pop("max_treedepth")
    if "adaptation" in opts and sampler != "kernel":
        raise ArgumentError(
            "fit(method='nuts'): `adaptation` sets the default sampler's mass matrix, "
            f"but this model is sampled by {sampler!r} (probit/cloglog links use PyMC's "
            "NUTS)"
        )
    info = FitInfo(sampler=sampler)
    if opts.get("target_accept") is None:
        opts["target_accept"] = info.resolved["target_accept"] = default_target_accept(design)
    if sampler != "kernel":
        tree = sample_nuts(context.pymc_model(), sampler=sampler, **opts)
    else:
        from bayesglmm.engines.bayes.nuts import sample_kernel_nuts

        if opts.get("progressbar") is None:
            opts["progressbar"] = interactive()
        tree = sample_kernel_nuts(design, layout, **opts)
    part = partial_info(tree)
    if part:
        info.partial = part
        info.resolved.update(draws=part["draws_kept"], chains=part["chains_kept"])
    return EngineResult(draws=tree, info=info)


def _fit_ml(
    design: Design, priors: PriorSet, options: dict[str, Any], context: EngineContext
) -> EngineResult:
    fam = design.family
    if design.blocks and fam.dispersion and not fam.is_linear:
        # a free dispersion (negative binomial, Gamma, Beta, Student-t, gaussian with a
        # non-identity link): Laplace (nagq = 1) or AGQ over [theta, beta, dispersion]
        from bayesglmm.engines.ml.laplace_dispersion import fit_ml_dispersion

        nagq = int(options.get("nagq", 1))
        return EngineResult(estimate=fit_ml_dispersion(design, nagq))
    from bayesglmm.engines.ml.laplace import fit_ml

    return EngineResult(estimate=fit_ml(design, **options))


def _n_effects(expr: str) -> int | None:
    """Effects per group of a random term's left-hand side; None when not obvious."""
    if "-" in expr.replace("-1", "") or "(" in expr or "*" in expr or ":" in expr:
        return None
    pieces = [p.strip() for p in expr.split("+")]
    rest = [p for p in pieces if p not in ("0", "-1", "1")]
    has_intercept = not any(p in ("0", "-1") for p in pieces)
    return len(rest) + (1 if has_intercept else 0)


def _ml_terms_problem(random: Sequence[Any], options: Mapping[str, Any]) -> str:
    """Why adaptive quadrature (``nagq > 1``) cannot fit these random terms, or ``""``
    (the limits :meth:`LaplaceObjective.check_nagq` applies to the design)."""
    nagq = int(options.get("nagq", 1))
    if nagq <= 1:
        return ""
    from bayesglmm.engines.ml.agq import MAX_NAGQ_VECTOR

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
    return ""


def _fit_pql(
    design: Design, priors: PriorSet, options: dict[str, Any], context: EngineContext
) -> EngineResult:
    from bayesglmm.engines.ml.pql import fit_pql

    return EngineResult(estimate=fit_pql(design, **options))


def _fit_laplace(
    design: Design, priors: PriorSet, options: dict[str, Any], context: EngineContext
) -> EngineResult:
    from bayesglmm.engines.bayes.integrated_laplace import fit_bayes_laplace

    tree, info = fit_bayes_laplace(design, priors, **options)
    return EngineResult(draws=tree, info=FitInfo.from_dict(info))


def _advi(method: str) -> EngineFit:
    def fit(
        design: Design, priors: PriorSet, options: dict[str, Any], context: EngineContext
    ) -> EngineResult:
        from bayesglmm.engines.bayes.advi import fit_advi

        tree, info = fit_advi(design, priors, context.pymc_model(), method=method, **options)
        return EngineResult(draws=tree, info=FitInfo.from_dict(info))

    return fit


register(
    Engine(
        "nuts",
        bayesian=True,
        options=NUTS_OPTIONS,
        fit=_fit_nuts,
        label="NUTS (MCMC)",
        description="NUTS, PyMC's Hamiltonian Monte Carlo",
        defaults={"draws": 1000, "tune": 1000, "chains": 4},
        check=check_nuts_options,
    )
)
register(
    Engine(
        "laplace",
        bayesian=True,
        options=LAPLACE_OPTIONS,
        fit=_fit_laplace,
        label="Bayesian integrated Laplace",
        description="integrated Laplace, Bayesian",
    )
)
register(
    Engine(
        "advi",
        bayesian=True,
        options=ADVI_OPTIONS,
        fit=_advi("advi"),
        label="ADVI (mean-field)",
        description="mean-field ADVI",
    )
)
register(
    Engine(
        "fullrank_advi",
        bayesian=True,
        options=ADVI_OPTIONS,
        fit=_advi("fullrank_advi"),
        label="ADVI (full-rank)",
        description="full-rank ADVI",
    )
)
register(
    Engine(
        "ml",
        bayesian=False,
        options=ML_OPTIONS,
        fit=_fit_ml,
        label="Maximum likelihood (Laplace)",
        description="Laplace",
        counted_alias=("agq", "nagq", "adaptive Gauss-Hermite, {n} nodes"),
        terms_check=_ml_terms_problem,
    )
)
register(
    Engine(
        "pql",
        bayesian=False,
        options=PQL_OPTIONS,
        fit=_fit_pql,
        label="PQL",
        description="PQL, dispersion estimated",
        aliases={"pql_phi1": ({"dispersion": "fixed"}, "PQL, dispersion fixed at 1")},
    )
)
