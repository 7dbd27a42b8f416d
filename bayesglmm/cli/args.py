"""The command line's arguments: the parser, ``--methods``, a spec from a file or from
``--formula``/``--data``, and the NUTS flags checked before any work."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from bayesglmm.cli.console import PROG, UsageError
from bayesglmm.engines.registry import check_option
from bayesglmm.errors import SpecError
from bayesglmm.spec import ModelSpec, load_spec, parse_method

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


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


def methods_arg(text: str) -> list[str]:
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


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
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
        "methods": methods_arg(args.methods or "ml,nuts"),
        "data": {"csv": str(args.data.resolve())},
    }
    for opt in ("link", "trials", "weights", "offset"):
        if getattr(args, opt):
            d[opt] = getattr(args, opt)
    return ModelSpec.from_dict(d, source="the command line")


_FLAG_OPTIONS = (
    ("draws", "draws"),
    ("tune", "tune"),
    ("chains", "chains"),
    ("seed", "random_seed"),
)


def check_flags(args: argparse.Namespace) -> None:
    """The ranges of ``GLMM.fit`` (:mod:`bayesglmm.validate`), checked before any work."""
    for flag, option in _FLAG_OPTIONS:
        value = getattr(args, flag, None)
        if value is not None:
            check_option("nuts", option, value, where=f"--{flag}: ")
