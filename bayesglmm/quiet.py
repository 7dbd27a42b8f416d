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

__all__ = ["ignoring_warnings"]

_LOCK = threading.Lock()
_active: list[tuple[str, type[Warning]]] = []
_saved: list[warnings.catch_warnings] = []  # the catch_warnings holding the filters before


def _rebuild() -> None:
    """Filters = those from before any section + ``ignore`` for each active request."""
    if _saved:
        _saved.pop().__exit__(None, None, None)
    if _active:
        ctx = warnings.catch_warnings()
        ctx.__enter__()
        _saved.append(ctx)
        for message, category in _active:
            warnings.filterwarnings("ignore", message=message, category=category)


@contextmanager
def ignoring_warnings(message: str = "", category: type[Warning] = Warning) -> Iterator[None]:
    """Ignore warnings (``message``: a regex matched at the start, as ``filterwarnings``)
    while the block runs, safely when other threads do the same."""
    spec = (message, category)
    with _LOCK:
        _active.append(spec)
        _rebuild()
    try:
        yield
    finally:
        with _LOCK:
            _active.remove(spec)
            _rebuild()
