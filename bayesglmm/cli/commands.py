"""The commands ``list``, ``fit`` and ``demo``, and :func:`main`, the entry point."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bayesglmm.cli.args import DEMO_SPEC, build_parser, check_flags, methods_arg, spec_from_args
from bayesglmm.cli.console import Failed, UsageError, print_error
from bayesglmm.cli.run import run_spec
from bayesglmm.errors import BayesGLMMError
from bayesglmm.spec import ModelSpec


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


def _cmd_fit(args: argparse.Namespace) -> int:
    check_flags(args)
    spec = spec_from_args(args)
    methods = methods_arg(args.methods) if args.methods else list(spec.methods)
    return run_spec(spec, methods, args)


def _cmd_demo(args: argparse.Namespace) -> int:
    check_flags(args)
    spec = ModelSpec.from_dict(DEMO_SPEC, source="the demo")
    return run_spec(spec, methods_arg(args.methods), args)


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
    except UsageError as exc:
        print_error(str(exc))
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if argv is None:
        import matplotlib

        matplotlib.use("Agg")
    commands = {"list": _cmd_list, "fit": _cmd_fit, "demo": _cmd_demo}
    try:
        return commands[args.cmd](args)
    except Failed as exc:
        print_error(str(exc))
        return 1
    except BrokenPipeError:
        # the reader went away (`bayesglmm list | head`): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (BayesGLMMError, OSError) as exc:
        print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
