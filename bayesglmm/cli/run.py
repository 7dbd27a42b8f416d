"""``bayesglmm fit`` and ``demo``'s work: fit a spec by each method with a progress line,
print the comparison and the reference checks, write the report files."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bayesglmm.cli.console import Failed, one_line, quiet_logs, warnings_to_stderr
from bayesglmm.engines.registry import get_engine
from bayesglmm.errors import SpecError
from bayesglmm.spec import ModelSpec, method_label


def _label(text: str, method: str, kw: dict[str, Any]) -> str:
    if method == "nuts":
        c, t, d = kw.get("chains", 4), kw.get("tune", 1000), kw.get("draws", 1000)
        return f"{text} (NUTS, {c} chains x {t} tune + {d} draws)"
    return method_label(text)


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
        with warnings_to_stderr(indent="      "):
            try:
                # libraries that print go to stderr: stdout is for the table
                with contextlib.redirect_stdout(sys.stderr), quiet_logs(not bars):
                    fit = model.fit(method=method, **kw)
                outcome = f"{time.perf_counter() - t0:.2f} s"
            except Exception as exc:  # noqa: BLE001 - one engine failing must not stop the rest
                outcome = f"failed: {one_line(exc)}"
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
            print(f"  {name} failed: {one_line(exc)}", file=sys.stderr)
            failed.append(f"{name} ({type(exc).__name__})")

    with warnings_to_stderr(indent="  "):
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


def run_spec(spec: ModelSpec, methods: list[str], args: argparse.Namespace) -> int:
    import pandas as pd

    import bayesglmm as bg

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise SpecError(f"--out `{args.out}` exists and is not a directory")
    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    plan = _method_kwargs(spec, methods, args, tty)
    with warnings_to_stderr():
        model = spec.model()
    print(f"{spec.name}: {model!r}", file=sys.stderr)
    level = getattr(model.design, "success_level", None)
    if level is not None:
        print(f"  modelling P({model.design.response_name} = {level!r})", file=sys.stderr)
    fits, failed = run_methods(model, plan, tty=tty)
    if not fits:
        raise Failed(f"all {len(plan)} methods failed: {', '.join(failed)}")
    labels = _labels(fits)
    with warnings_to_stderr():
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
        raise Failed(f"{len(failed)} failed: {', '.join(failed)}")
    return 0


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in d.items() if isinstance(v, str | int | float | bool | type(None) | list)
    }
