"""The NUTS log density's likelihood pass: one loop over the rows, by the family's row kernel.

The row kernels are the families' own scalar functions (``nuts_prep`` / ``nuts_row_*`` in
each family's module), listed once in the family registry
(:data:`~bayesglmm.families.registry.ROW_FUNCTIONS`, whose position is the kernel's integer
code).  They are compiled here with ``inline="always"``, and :func:`family_rows` dispatches on
the code with ``numba.literal_unroll`` over that tuple: Numba compiles one specialised copy
of the row loop per kernel, so the dispatch is one integer comparison per evaluation and
the row function is inlined in its loop (no per-row call, the same machine code as a loop
written out per family; measured in the commit that introduced it).  Adding a row kernel
therefore touches the family's module and the registry only.

Caveat (Numba's cache): ``cache=True`` keys the compiled code on this file (and the log
density's on ``log_density.py``), not on the families' modules it inlines; after editing or
adding a row function, clear the cache (``bayesglmm/engines/bayes/__pycache__/*.nbi``) so the
kernels recompile.  :func:`check_compiled_rows` catches a stale cache at the first kernel of
a process: the compiled rows must equal the registry's Python functions, else a clear error
(a kernel compiled before a new row kernel was inserted dispatches codes to the wrong
family: a quietly wrong log density).  The row functions themselves are
not cached (they exist only inlined).  ``error_model="numpy"``: a division by zero (a
dispersion that underflows to 0 at NUTS's first steps) gives inf/NaN, which the sampler
rejects, not a Python ``ZeroDivisionError`` (which panics nutpie's worker thread).
"""

from __future__ import annotations

import functools
import math
import warnings

import numba
import numpy as np
from numba import literal_unroll
from numba.core.errors import NumbaExperimentalFeatureWarning

from bayesglmm.errors import InferenceError
from bayesglmm.families import ROW_FUNCTIONS

__all__ = ["check_compiled_rows", "family_rows", "quiet_compile"]


def _inline(f):  # noqa: ANN001, ANN202
    return numba.njit(nogil=True, inline="always", error_model="numpy")(f)


#: ``(prep, row)`` per row kernel, compiled, in the registry's code order
_ROWS = tuple((_inline(prep), _inline(row)) for prep, row in ROW_FUNCTIONS.values())


# fastmath "nsz" (no signed zeros) only: it lets LLVM drop the ``+= 0.0`` of a kernel's
# unused dispersion derivatives (IEEE keeps ``x + 0.0`` for the sign of -0.0), and changes
# no value otherwise
@numba.njit(nogil=True, cache=True, fastmath={"nsz"}, error_model="numpy")
def family_rows(
    code: int,
    d0: float,
    d1: float,
    y: np.ndarray,
    trials: np.ndarray,
    eta: np.ndarray,
    geta: np.ndarray,
) -> tuple[float, float, float]:
    """Sum of the rows' log-likelihoods (without data constants) by row kernel ``code``;
    fills ``geta`` with ``d ll / d eta`` and returns ``(ll, d ll / d d0, d ll / d d1)``,
    ``d0``, ``d1`` the unconstrained (log) dispersions (0.0 when the family has fewer)."""
    lp = 0.0
    g0 = 0.0
    g1 = 0.0
    n = y.shape[0]
    k = 0
    for kern in literal_unroll(_ROWS):
        if k == code:
            c = kern[0](d0, d1)
            for i in range(n):
                ll, ge, a, b = kern[1](y[i], trials[i], eta[i], c)
                lp += ll
                geta[i] = ge
                g0 += a
                g1 += b
        k += 1
    return lp, g0, g1


def quiet_compile(fn, *args):  # noqa: ANN001, ANN002, ANN201
    """``fn(*args)`` with Numba's notice that a tuple of functions is an experimental
    feature silenced (it is typed only when the kernels compile or load from the cache)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaExperimentalFeatureWarning)
        return fn(*args)


@functools.cache
def check_compiled_rows() -> None:
    """Raise :class:`~bayesglmm.errors.InferenceError` unless every compiled row kernel equals
    its Python function in the registry (on two rows valid for every family: ``y`` in
    (0, 1), ``eta > 0``); run once per process, before the first kernel is used."""
    y = np.array([0.5, 0.25])
    trials = np.array([1.0, 2.0])
    eta = np.array([0.3, 0.7])
    d0, d1 = 0.2, 0.4
    for code, (name, (prep, row)) in enumerate(ROW_FUNCTIONS.items()):
        c = prep(d0, d1)
        want = [0.0, 0.0, 0.0]
        want_geta = []
        for i in range(y.size):
            ll, ge, a, b = row(float(y[i]), float(trials[i]), float(eta[i]), c)
            want[0] += ll
            want[1] += a
            want[2] += b
            want_geta.append(ge)
        geta = np.empty(y.size)
        got = quiet_compile(family_rows, code, d0, d1, y, trials, eta, geta)
        ok = all(
            math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12) for g, w in zip(got, want, strict=True)
        ) and np.allclose(geta, want_geta, rtol=1e-9, atol=1e-12)
        if not ok:
            raise InferenceError(
                f"the compiled NUTS row kernel {code} ({name!r}) differs from its function in the "
                "family registry: Numba's cache predates an edit of the row kernels. Delete "
                "bayesglmm/engines/bayes/__pycache__/*.nbi and *.nbc and run again"
            )
