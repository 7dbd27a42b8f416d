"""One BLAS thread for the small-matrix engines, without re-scanning libraries per fit.

``threadpoolctl.threadpool_limits`` inspects every loaded shared library on each call
(about 3 ms here, more than a whole small Laplace fit's optimiser overhead).  The
controller is built once, on first use, after NumPy's and SciPy's BLAS are loaded (they
are imported with this package); a limit then costs about 20 microseconds.

The limit is process-wide, so sections in parallel threads share one: the first to enter
sets it and the last to leave restores the count from before.  (Each section used to take
and restore its own: with two overlapping fits, the second saved the first's 1 and put it
back last, leaving BLAS at one thread for the rest of the process; measured in session 5.)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]


@functools.cache
def _controller() -> ThreadpoolController:
    import scipy.linalg  # noqa: F401  (make sure SciPy's own BLAS is loaded and seen)

    return ThreadpoolController()


_LOCK = threading.Lock()
_active = 0
_limiter: Any = None


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    global _active, _limiter
    with _LOCK:
        if _active == 0:
            _limiter = _controller().limit(limits=1, user_api="blas")
        _active += 1
    try:
        yield
    finally:
        with _LOCK:
            _active -= 1
            if _active == 0:
                _limiter.restore_original_limits()
                _limiter = None


def one_blas_thread() -> AbstractContextManager:
    """Context manager limiting the BLAS libraries of NumPy and SciPy to one thread.

    L-BFGS-B's tiny BLAS calls are slowed ~50x by OpenBLAS thread hand-offs, and the
    engines' own work is vector arithmetic, bincounts and Numba loops anyway.  Safe to use
    from parallel threads (see the module docstring).
    """
    return _one_blas_thread()
