"""The ``bayesglmm`` command: ``list``, ``fit`` and ``demo``.

::

    bayesglmm list [--models DIR]
    bayesglmm fit models/toenail_logistic_ri.toml [--methods nuts,ml,agq:25] [--out report/]
    bayesglmm fit --formula "y ~ x + (1 | g)" --data file.csv --family poisson [--out DIR]
    bayesglmm demo [--out DIR]

``fit`` prints one progress line per method to stderr, the comparison table
(:func:`bayesglmm.interpret.compare`) to stdout and, for a spec with reference values, how the ML fits
compare with them.  With ``--out`` it writes ``comparison.csv``, ``compare_forest.png``,
``ppc_<method>.png``, ``caterpillar_<method>.png`` (models with random effects), one saved fit per method
(``fit_<method>/``, read back with :func:`bayesglmm.load_fit`), ``spec.json`` and, when
the spec has references, ``reference_check.csv``.

Exit codes: 0 on success; 1 when any method (or output file) failed, the others still
being fitted and reported; 2 on bad input (a :class:`~bayesglmm.errors.BayesGLMMError`, an
unreadable file, a bad argument), always with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bayesglmm.engines.registry import check_option, get_engine
from bayesglmm.errors import BayesGLMMError, SpecError
from bayesglmm.spec import ModelSpec, load_spec, method_label, parse_method

PROG = "bayesglmm"
DEMO_SPEC: dict[str, Any] = {
    "name": "toenail_demo",
    "title": "Toenail infection: six ways to fit a logistic random-intercept model",
    "description": "The course's method comparison (models/toenail_logistic_ri.toml).",
    "data": {"dataset": "toenail"},
    "formula": "outcome ~ treatment * time + (1 | patientID)",
    "family": "bernoulli",
    "methods": ["ml", "agq:25", "pql", "laplace", "advi", "nuts"],
    # 4 chains x 1000 draws: the health check asks for a min bulk ESS of 400 at this size,
    # and NUTS gives this model ~135 per 1,000 draws on its worst parameter (the treatment
    # effect; benchmarks/README.md), so 2 x 1000 (ESS ~265 at seed 1) warned about the
    # demo's own run.  PQL needs 17 of glmmPQL's iterations here (its default limit is 50).
    "nuts": {"draws": 1000, "tune": 1000, "chains": 4},
}


class _UsageError(Exception):
    """A bad command-line argument (argparse's error, made one line)."""


class _Failed(Exception):
    """Some methods or outputs failed (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


# ---------------------------------------------------------------------- messages
def _err(msg: str) -> None:
    first = str(msg).strip().splitlines()[0] if str(msg).strip() else "failed"
    print(f"{PROG}: error: {first}", file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextlib.contextmanager
def _warnings_to_stderr(indent: str = f"{PROG}: ") -> Iterator[None]:
    """Record warnings in the block and print each once, on one line, afterwards.

    This keeps ``warnings.catch_warnings(record=True)`` on purpose: the CLI enters it once,
    in the main thread, around all of a command's work, and runs its fits one after
    another, so no other ``catch_warnings`` overlaps it in time (the unsafe case: two
    threads restoring each other's filters).  The package's own silencing inside fits uses
    :func:`bayesglmm.quiet.ignoring_warnings`, which nests inside this block and restores
    exactly the filters it found, and warnings that threads started inside the block emit
    (PyMC, Dask workers in-process) are recorded too, as wanted.  A thread-safe recorder
    needs Python 3.14's context-aware warnings.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for cat in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", cat)
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                text = str(w.message).strip().splitlines()
                line = f"{w.category.__name__}: {text[0] if text else ''}"
                if line not in seen:
                    seen.add(line)
                    print(f"{indent}warning: {line}", file=sys.stderr)


@contextlib.contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """Mute INFO log lines (PyMC's; they would break the one-line progress output).

    ``logging.disable`` rather than a logger level: PyMC resets its logger's level when it
    is first imported, which happens inside the first Bayesian fit.
    """
    old = logging.root.manager.disable
    if quiet:
        logging.disable(max(old, logging.INFO))
    try:
        yield
    finally:
        logging.disable(old)


def _label(text: str, method: str, kw: dict[str, Any]) -> str:
    if method == "nuts":
        c, t, d = kw.get("chains", 4), kw.get("tune", 1000), kw.get("draws", 1000)
        return f"{text} (NUTS, {c} chains x {t} tune + {d} draws)"
    return method_label(text)


# ---------------------------------------------------------------------- the parser
def _package_version() -> str:
    """The installed version (``bayesglmm.__version__``), without importing the engines."""
    from bayesglmm import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tools)."""
    parser = _Parser(
        prog=PROG,
        description="Bayesian and maximum-likelihood GLMMs with lme4-style formulas.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_package_version()}")
    sub = parser.add_subparsers(dest="cmd", metavar="{list,fit,demo}")
    sub.required = True
    p_list = sub.add_parser("list", help="list the model specs and the packaged datasets")
    p_list.add_argument(
        "--models", type=Path, help="directory of *.toml specs (default: ./models if it exists)"
    )
    p_fit = sub.add_parser(
        "fit",
        help="fit a model by several methods and compare them",
        description="Fit a spec (models/*.toml, or its name) or a formula on a CSV file.",
    )
    p_fit.add_argument("spec", nargs="?", help="a spec file, or a spec name in --models")
    p_fit.add_argument("--models", type=Path, help="where to look up a spec name (./models)")
    p_fit.add_argument("--formula", help='lme4 formula, e.g. "y ~ x + (1 | g)" (with --data)')
    p_fit.add_argument("--data", type=Path, help="CSV file (with --formula)")
    p_fit.add_argument(
        "--family",
        help="bernoulli, binomial, poisson or gaussian; required with --formula (a spec "
        "file gives its own)",
    )
    p_fit.add_argument("--link", help="link function (default: canonical)")
    p_fit.add_argument("--trials", help="trials column of a binomial proportion response")
    p_fit.add_argument(
        "--weights", help="prior-weights column (lme4's weights=; binomial proportion: trials)"
    )
    p_fit.add_argument("--offset", help="offset column, added to any offset() terms")
    p_fit.add_argument(
        "--methods",
        help="comma-separated: nuts, laplace, advi, fullrank_advi, ml, agq:<Q>, pql, "
        "pql_phi1 (default: the spec's, or ml,nuts)",
    )
    p_demo = sub.add_parser("demo", help="the toenail comparison by six methods, end to end")
    p_demo.add_argument(
        "--methods", default=",".join(DEMO_SPEC["methods"]), help="(default: %(default)s)"
    )
    for p in (p_fit, p_demo):
        p.add_argument("--out", type=Path, help="write tables, figures and fits here")
        p.add_argument("--draws", type=int, help="NUTS draws per chain (spec's, else 1000)")
        p.add_argument("--tune", type=int, help="NUTS tuning steps per chain (spec's, else 1000)")
        p.add_argument("--chains", type=int, help="NUTS chains (spec's, else 4)")
        p.add_argument(
            "--seed", type=int, default=1, help="seed of the Bayesian methods (%(default)s)"
        )
    return parser


# ---------------------------------------------------------------------- commands
def _cmd_list(args: argparse.Namespace) -> int:
    import pandas as pd

    from bayesglmm import datasets
    from bayesglmm.spec import list_specs

    models = args.models if args.models is not None else Path("models")
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        if args.models is not None or models.is_dir():
            specs = list_specs(models)
            print(f"specs in {models}/ (bayesglmm fit {models}/<name>.toml):")
            if specs.empty:
                print("  (none)")
            else:
                cols = ["name", "data", "family", "formula", "methods"]
                print(specs[cols].to_string(index=False))
        else:
            print("no ./models directory; pass --models DIR to list specs")
        print("\ndatasets (bayesglmm.datasets.load(name)):")
        print(datasets.list()[["name", "description"]].to_string(index=False))
    return 0


def _methods_arg(text: str) -> list[str]:
    items = [m.strip() for m in text.split(",")]
    if not all(items):
        raise SpecError(f"empty method name in --methods `{text}`")
    for m in items:
        parse_method(m)
    if len(set(items)) < len(items):
        raise SpecError(f"a method is listed twice in --methods `{text}`")
    return items


def _resolve_spec_path(text: str, models: Path | None) -> Path:
    p = Path(text)
    if p.exists() or p.suffix == ".toml":
        return p
    candidate = (models or Path("models")) / f"{text}.toml"
    return candidate if candidate.exists() else p


def _spec_from_args(args: argparse.Namespace) -> ModelSpec:
    if args.spec:
        if args.formula or args.data:
            raise SpecError("give either a spec file or --formula/--data, not both")
        spec = load_spec(_resolve_spec_path(args.spec, args.models))
        for opt in ("family", "link", "trials", "weights", "offset"):
            if getattr(args, opt):
                raise SpecError(f"--{opt} applies to --formula fits; edit the spec instead")
        return spec
    if not (args.formula and args.data):
        raise SpecError("give a spec file (see `bayesglmm list`), or --formula and --data")
    if not args.family:
        raise SpecError(
            "--family is required with --formula: bernoulli, binomial, poisson or gaussian "
            "(as glmer requires family=; it is never guessed from the response)"
        )
    d: dict[str, Any] = {
        "name": args.data.stem,
        "title": f"{args.formula} on {args.data.name}",
        "formula": args.formula,
        "family": args.family,
        "methods": _methods_arg(args.methods or "ml,nuts"),
        "data": {"csv": str(args.data.resolve())},
    }
    for opt in ("link", "trials", "weights", "offset"):
        if getattr(args, opt):
            d[opt] = getattr(args, opt)
    return ModelSpec.from_dict(d, source="the command line")


def _method_kwargs(
    spec: ModelSpec, methods: list[str], args: argparse.Namespace, tty: bool
) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for text, (method, kw) in zip(methods, spec.parse_methods(methods), strict=True):
        if method == "nuts":
            for opt in ("draws", "tune", "chains"):
                if getattr(args, opt) is not None:
                    kw[opt] = getattr(args, opt)
        engine = get_engine(method)
        if engine.bayesian and engine.seeded:
            kw["random_seed"] = args.seed
        if engine.has_progressbar:
            kw["progressbar"] = tty
        out.append((text, method, kw))
    return out


def run_methods(
    model: Any, plan: list[tuple[str, str, dict[str, Any]]], *, tty: bool = False
) -> tuple[list[Any], list[str]]:
    """Fit ``model`` by each planned method, with a progress line per method on stderr.

    A method that raises is reported on its line and skipped.

    Returns
    -------
    (fits, failures)
        The successful fits, and ``"<method> (<error>)"`` per failed method.
    """
    fits, failed = [], []
    n = len(plan)
    for i, (text, method, kw) in enumerate(plan, 1):
        head = f"[{i}/{n}] {_label(text, method, kw)} ..."
        bars = tty and get_engine(method).has_progressbar
        print(head, file=sys.stderr, end="\n" if bars else " ", flush=True)
        t0 = time.perf_counter()
        outcome, fit = "", None
        with _warnings_to_stderr(indent="      "):
            try:
                # libraries that print go to stderr: stdout is for the table
                with contextlib.redirect_stdout(sys.stderr), _quiet_logs(not bars):
                    fit = model.fit(method=method, **kw)
                outcome = f"{time.perf_counter() - t0:.2f} s"
            except Exception as exc:  # noqa: BLE001 - one engine failing must not stop the rest
                outcome = f"failed: {_one_line(exc)}"
                failed.append(f"{text} ({type(exc).__name__})")
            print(f"{head} {outcome}" if bars else outcome, file=sys.stderr, flush=True)
        if fit is not None:
            fits.append(fit)
    return fits, failed


def _labels(fits: list[Any]) -> list[str]:
    labels: list[str] = []
    for f in fits:
        lab, k = f.label, 2
        while lab in labels:
            lab, k = f"{f.label}_{k}", k + 1
        labels.append(lab)
    return labels


def _reference_checks(spec: ModelSpec, fits: list[Any], labels: list[str]) -> Any:
    import pandas as pd

    tables = []
    for fit, label in zip(fits, labels, strict=True):
        if fit.method != "ml":
            continue
        nagq = int(getattr(fit.ml, "nagq", 1))
        for ref in spec.references:
            if ref.nagq == nagq:
                t = ref.check(fit)
                t.insert(0, "fit", label)
                tables.append((ref, t))
                break
    if not tables:
        return None
    for ref, t in tables:
        bad = t[~t["ok"]]
        label = t["fit"].iloc[0]
        if bad.empty:
            print(f"{label}: all {len(t)} reference values within tolerance ({ref.source})")
        else:
            print(f"{label}: {len(bad)} of {len(t)} reference values OUTSIDE tolerance:")
            print(bad.drop(columns="fit").to_string(index=False))
    return pd.concat([t for _, t in tables], ignore_index=True)


def _write_outputs(
    out: Path,
    spec: ModelSpec,
    fits: list[Any],
    labels: list[str],
    table: Any,
    refcheck: Any,
    run: dict[str, Any],
) -> list[str]:
    """Write the report files; returns the names of those that failed."""
    import matplotlib.pyplot as plt

    import bayesglmm as bg

    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv")
    (out / "spec.json").write_text(json.dumps({**spec.to_dict(), "run": run}, indent=1) + "\n")
    if refcheck is not None:
        refcheck.to_csv(out / "reference_check.csv", index=False)
    failed: list[str] = []

    def attempt(name: str, make: Any) -> None:
        try:
            with contextlib.redirect_stdout(sys.stderr):
                result = make()
            if hasattr(result, "savefig"):
                result.savefig(out / name, dpi=100, bbox_inches="tight")
                plt.close(result)
        except Exception as exc:  # noqa: BLE001 - write what can be written
            print(f"  {name} failed: {_one_line(exc)}", file=sys.stderr)
            failed.append(f"{name} ({type(exc).__name__})")

    with _warnings_to_stderr(indent="  "):
        attempt("compare_forest.png", lambda: bg.plot_compare(fits))
        for fit, label in zip(fits, labels, strict=True):
            attempt(f"ppc_{label}.png", fit.plot_ppc)
            if fit.design.blocks:  # a GLM has no random effects to plot
                attempt(f"caterpillar_{label}.png", fit.plot_ranef)
            # the report files are all rewritten, so is a fit saved here by an earlier run
            attempt(
                f"fit_{label}",
                lambda fit=fit, label=label: fit.save(out / f"fit_{label}", overwrite=True),
            )
    n_files = sum(1 for _ in out.iterdir())
    print(f"wrote {out}/ ({n_files} entries)", file=sys.stderr)
    return failed


def _run_spec(spec: ModelSpec, methods: list[str], args: argparse.Namespace) -> int:
    import pandas as pd

    import bayesglmm as bg

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise SpecError(f"--out `{args.out}` exists and is not a directory")
    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    plan = _method_kwargs(spec, methods, args, tty)
    with _warnings_to_stderr():
        model = spec.model()
    print(f"{spec.name}: {model!r}", file=sys.stderr)
    level = getattr(model.design, "success_level", None)
    if level is not None:
        print(f"  modelling P({model.design.response_name} = {level!r})", file=sys.stderr)
    fits, failed = run_methods(model, plan, tty=tty)
    if not fits:
        raise _Failed(f"all {len(plan)} methods failed: {', '.join(failed)}")
    labels = _labels(fits)
    with _warnings_to_stderr():
        table = bg.compare(fits)
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table.round(4).to_string())
    refcheck = _reference_checks(spec, fits, labels) if spec.references else None
    if args.out is not None:
        run = {
            "methods": methods,
            "fit_options": {lab: _plain(f.options) for lab, f in zip(labels, fits, strict=True)},
            "failed": failed,
            "seed": args.seed,
            "bayesglmm_version": bg.__version__,
        }
        failed += _write_outputs(args.out, spec, fits, labels, table, refcheck, run)
    if failed:
        raise _Failed(f"{len(failed)} failed: {', '.join(failed)}")
    return 0


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in d.items() if isinstance(v, str | int | float | bool | type(None) | list)
    }


_FLAG_OPTIONS = (
    ("draws", "draws"),
    ("tune", "tune"),
    ("chains", "chains"),
    ("seed", "random_seed"),
)


def _check_flags(args: argparse.Namespace) -> None:
    """The ranges of ``GLMM.fit`` (:mod:`bayesglmm.validate`), checked before any work."""
    for flag, option in _FLAG_OPTIONS:
        value = getattr(args, flag, None)
        if value is not None:
            check_option("nuts", option, value, where=f"--{flag}: ")


def _cmd_fit(args: argparse.Namespace) -> int:
    _check_flags(args)
    spec = _spec_from_args(args)
    methods = _methods_arg(args.methods) if args.methods else list(spec.methods)
    return _run_spec(spec, methods, args)


def _cmd_demo(args: argparse.Namespace) -> int:
    _check_flags(args)
    spec = ModelSpec.from_dict(DEMO_SPEC, source="the demo")
    return _run_spec(spec, _methods_arg(args.methods), args)


# ---------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a method failed, 2 bad input).

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).  When called
        without ``argv`` (the installed command), figures use matplotlib's Agg backend.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        _err(str(exc))
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if argv is None:
        import matplotlib

        matplotlib.use("Agg")
    commands = {"list": _cmd_list, "fit": _cmd_fit, "demo": _cmd_demo}
    try:
        return commands[args.cmd](args)
    except _Failed as exc:
        _err(str(exc))
        return 1
    except BrokenPipeError:
        # the reader went away (`bayesglmm list | head`): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (BayesGLMMError, OSError) as exc:
        _err(str(exc))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
