"""Running SBC's simulations on Dask: collecting futures in order with a progress line, and
the check that a script calling :func:`~bayesglmm.calibration.sbc.sbc` is guarded by
``if __name__ == "__main__":`` (Dask's ``spawn`` re-imports it in every worker)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bayesglmm.calibration.sbc_fit import failure_reason


class Progress:
    """A plain progress line on stderr: done/total, failures, elapsed and time left.

    On a terminal the line is rewritten in place; otherwise (a log file, a notebook's
    captured stream) a line is written at every tenth of the run.
    """

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled and total > 0
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def update(self, done: int, failed: int) -> None:
        if not self.enabled:
            return
        tenth = 10 * done // self.total
        if not self.tty and tenth == self.shown:
            return
        self.shown = tenth
        el = time.perf_counter() - self.start
        left = el / done * (self.total - done) if done else float("nan")
        msg = (
            f"SBC: {done}/{self.total} simulations done"
            + (f" ({failed} failed)" if failed else "")
            + f", {el:.0f} s"
            + (f", about {left:.0f} s left" if done < self.total else "")
        )
        end = "\n" if (not self.tty or done == self.total) else ""
        print(("\r" if self.tty else "") + msg, end=end, file=sys.stderr, flush=True)


def collect(futures: list[Any], progress: Progress | None = None) -> dict[int, Any]:
    """Each simulation's result, or why it has none, as soon as it is done.

    ``client.gather`` raises on the first task whose worker died (``KilledWorker``) and so
    loses every finished simulation; here each future is read on its own.
    """
    from dask.distributed import as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    results: dict[int, Any] = {}
    failed = 0
    for fut in as_completed(futures):
        i = index[fut.key]
        try:
            results[i] = fut.result()
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
            name = type(exc).__name__
            if name == "KilledWorker":
                results[i] = f"the worker died while running it ({name}: {exc})"
            else:
                results[i] = f"it did not run to the end on the cluster ({failure_reason(exc)})"
        failed += not isinstance(results[i], dict)
        if progress is not None:
            progress.update(len(results), failed)
    return results


def unguarded_script_call() -> str | None:
    """The script that calls us at its top level outside ``if __name__ == "__main__":``.

    Dask starts worker processes with ``spawn``, which imports the main script again in each
    worker; an unguarded ``sbc()`` there starts a cluster inside every worker and fails with
    "Nanny failed to start".  Returns the script's path when that would happen, else None
    (a guarded call, a notebook or an interactive session, or a call from a function).
    """
    import ast
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        g = frame.f_globals
        if g.get("__name__") == "__main__" and frame.f_code.co_name == "<module>":
            path = g.get("__file__")
            if not path or not Path(path).is_file():
                return None  # interactive: nothing is re-imported
            try:
                tree = ast.parse(Path(path).read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError):
                return None
            line = frame.f_lineno
            for node in ast.walk(tree):
                if isinstance(node, ast.If) and is_main_guard(node.test):
                    end = node.end_lineno or node.lineno
                    if node.lineno <= line <= end:
                        return None
            return str(path)
        frame = frame.f_back
    return None


def is_main_guard(test: Any) -> bool:
    """``__name__ == "__main__"`` (either order)."""
    import ast

    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return isinstance(test.ops[0], ast.Eq) and bool(names) and bool(consts)
