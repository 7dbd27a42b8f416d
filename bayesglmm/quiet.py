"""Silencing warnings inside fits that may run in parallel threads.

``warnings.catch_warnings`` saves the process-wide filter list on entry and puts it back on
exit.  Two threads that use it at the same time can put back each other's state: after
threaded fits that each ignored warnings inside a ``catch_warnings`` block, every warning of
the session stayed silenced (issue 13).  :func:`ignoring_warnings` keeps one shared record
of the filters all running fits asked for, under a lock, and rebuilds the process's filters
from it on every entry and exit; when the last section ends the filters are exactly those
from before the first began.  (Python 3.14's context-aware warnings make this unnecessary.)
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["erroring_warnings", "ignoring_warnings"]

_LOCK = threading.Lock()
_active: list[tuple[str, str, type[Warning]]] = []  # (action, message, category)
_saved: list[warnings.catch_warnings] = []  # the catch_warnings holding the filters before


def _rebuild() -> None:
    """Filters = those from before any section + one filter per active request."""
    if _saved:
        _saved.pop().__exit__(None, None, None)
    if _active:
        ctx = warnings.catch_warnings()
        ctx.__enter__()
        _saved.append(ctx)
        for action, message, category in _active:
            warnings.filterwarnings(action, message=message, category=category)  # type: ignore[arg-type]


@contextmanager
def ignoring_warnings(message: str = "", category: type[Warning] = Warning) -> Iterator[None]:
    """Ignore warnings (``message``: a regex matched at the start, as ``filterwarnings``)
    while the block runs, safely when other threads do the same."""
    with _filtering("ignore", message, category):
        yield


@contextmanager
def erroring_warnings(category: type[Warning], message: str = "") -> Iterator[None]:
    """Raise warnings of ``category`` as exceptions while the block runs (thread-safe like
    :func:`ignoring_warnings`).

    The filter is process-wide while any such block runs, so use it only for a category
    that should be an error wherever it is raised during that time (e.g. formulaic's
    ``DataMismatchWarning``, which only encoding new data can raise).
    """
    with _filtering("error", message, category):
        yield


@contextmanager
def _filtering(action: str, message: str, category: type[Warning]) -> Iterator[None]:
    spec = (action, message, category)
    with _LOCK:
        _active.append(spec)
        _rebuild()
    try:
        yield
    finally:
        with _LOCK:
            _active.remove(spec)
            _rebuild()
