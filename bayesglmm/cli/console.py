"""What the command prints besides its tables: one-line errors, warnings gathered and printed
once each, and PyMC's INFO logs muted."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

PROG = "bayesglmm"


class UsageError(Exception):
    """A bad command-line argument (argparse's error, made one line)."""


class Failed(Exception):
    """Some methods or outputs failed (exit code 1)."""


def print_error(msg: str) -> None:
    first = str(msg).strip().splitlines()[0] if str(msg).strip() else "failed"
    print(f"{PROG}: error: {first}", file=sys.stderr, flush=True)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextlib.contextmanager
def warnings_to_stderr(indent: str = f"{PROG}: ") -> Iterator[None]:
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
def quiet_logs(quiet: bool) -> Iterator[None]:
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
