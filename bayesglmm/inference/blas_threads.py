"""One BLAS thread for the small-matrix engines, without re-scanning libraries per fit.

``threadpoolctl.threadpool_limits`` inspects every loaded shared library on each call
(about 3 ms here, more than a whole small Laplace fit's optimiser overhead).  The
controller is built once, on first use, after NumPy's and SciPy's BLAS are loaded (they
are imported with this package); a limit then costs about 20 microseconds.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]


@functools.cache
def _controller() -> ThreadpoolController:
    import scipy.linalg  # noqa: F401  (make sure SciPy's own BLAS is loaded and seen)

    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """Context manager limiting the BLAS libraries of NumPy and SciPy to one thread.

    L-BFGS-B's tiny BLAS calls are slowed ~50x by OpenBLAS thread hand-offs, and the
    engines' own work is vector arithmetic, bincounts and Numba loops anyway.
    """
    return _controller().limit(limits=1, user_api="blas")
