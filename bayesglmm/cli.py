"""The ``bayesglmm`` command: ``list``, ``fit`` and ``demo``.

Exit codes: 0 on success, 2 on bad input (one-line message on stderr), 1 when a method fails.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import bayesglmm as bg
from bayesglmm.errors import BayesGLMMError

DEMO_METHODS = "ml,agq:25,pql,laplace,advi,nuts"


def _parse_methods(text: str) -> list[tuple[str, dict]]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if item.startswith("agq:"):
            out.append(("ml", {"nagq": int(item.split(":")[1])}))
        elif item == "pql_phi1":
            out.append(("pql", {"dispersion": "fixed"}))
        elif item in ("nuts", "laplace", "advi", "fullrank_advi", "ml", "pql"):
            out.append((item, {}))
        else:
            raise BayesGLMMError(f"unknown method `{item}` in --methods")
    return out


def run_methods(model, methods, args, out: Path | None) -> list:  # noqa: ANN001
    """Fit ``model`` by each method with a progress line per method; returns the fits."""
    fits, failed = [], []
    for i, (method, kw) in enumerate(methods, 1):
        label = method + (f" (nAGQ={kw['nagq']})" if kw.get("nagq", 1) > 1 else "")
        print(f"[{i}/{len(methods)}] {label} ...", file=sys.stderr, flush=True)
        if method == "nuts":
            kw = {
                "draws": args.draws,
                "tune": args.tune,
                "chains": args.chains,
                "random_seed": args.seed,
                **kw,
            }
        elif method in ("laplace", "advi", "fullrank_advi"):
            kw = {"random_seed": args.seed, **kw}
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                fit = model.fit(method=method, **kw)
        except BayesGLMMError as exc:
            print(
                f"[{i}/{len(methods)}] {label} failed: {str(exc).splitlines()[0]}", file=sys.stderr
            )
            failed.append(label)
            continue
        print(
            f"[{i}/{len(methods)}] {label} done in {time.perf_counter() - t0:.2f} s",
            file=sys.stderr,
        )
        fits.append(fit)
    if out is not None and fits:
        import matplotlib

        matplotlib.use("Agg")
        out.mkdir(parents=True, exist_ok=True)
        bg.plot_compare(fits).savefig(out / "compare_forest.png", dpi=90)
        for f in fits:
            f.plot_ppc().savefig(out / f"ppc_{f.label}.png", dpi=90)
            f.plot_ranef().savefig(out / f"caterpillar_{f.label}.png", dpi=90)
            f.save(out / f"fit_{f.label}")
    if failed:
        raise RuntimeError(f"method(s) failed: {', '.join(failed)}")
    return fits


def _print_table(fits, out: Path | None) -> None:  # noqa: ANN001
    import pandas as pd

    table = bg.compare(fits)
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print(table.round(4).to_string())
    if out is not None:
        table.to_csv(out / "comparison.csv")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="bayesglmm", description="Bayesian and ML GLMMs")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the course datasets and model specs")
    p_fit = sub.add_parser("fit", help="fit a model by several methods and compare")
    p_fit.add_argument("spec", nargs="?", help="a models/*.toml spec (see `bayesglmm list`)")
    p_fit.add_argument("--formula")
    p_fit.add_argument("--data", help="CSV file")
    p_fit.add_argument("--family", default="gaussian")
    p_fit.add_argument("--link")
    p_fit.add_argument("--methods", default="ml,nuts")
    p_fit.add_argument("--out", type=Path)
    p_demo = sub.add_parser("demo", help="the toenail comparison, end to end")
    for p in (p_fit, p_demo):
        p.add_argument("--draws", type=int, default=1000)
        p.add_argument("--tune", type=int, default=1000)
        p.add_argument("--chains", type=int, default=2)
        p.add_argument("--seed", type=int, default=1)
    p_demo.add_argument("--methods", default=DEMO_METHODS)
    p_demo.add_argument("--out", type=Path)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    try:
        if args.cmd == "list":
            print(bg.datasets.list().to_string(index=False))
            models = Path("models")
            if models.is_dir():
                print("\nspecs:")
                for f in sorted(models.glob("*.toml")):
                    print(f"  {f}")
            return 0
        if args.cmd == "demo":
            df = bg.datasets.load("toenail")
            model = bg.GLMM("outcome ~ treatment * time + (1 | patientID)", df, "bernoulli")
            print(f"{model}\nsuccess level: {model.design.success_level!r}\n", file=sys.stderr)
            fits = run_methods(model, _parse_methods(args.methods), args, args.out)
            _print_table(fits, args.out)
            return 0
        if args.spec:
            try:
                from bayesglmm.spec import load_spec
            except ImportError as exc:
                raise BayesGLMMError("spec files need bayesglmm.spec") from exc
            spec = load_spec(args.spec)
            model = spec.model()
        else:
            if not (args.formula and args.data):
                raise BayesGLMMError("give a spec file, or --formula and --data")
            import pandas as pd

            path = Path(args.data)
            if not path.exists():
                raise BayesGLMMError(f"data file `{path}` does not exist")
            model = bg.GLMM(args.formula, pd.read_csv(path), args.family, link=args.link)
        fits = run_methods(model, _parse_methods(args.methods), args, args.out)
        _print_table(fits, args.out)
        return 0
    except (BayesGLMMError, OSError, ValueError) as exc:
        print(f"bayesglmm: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"bayesglmm: error: {exc}", file=sys.stderr)
        return 1
