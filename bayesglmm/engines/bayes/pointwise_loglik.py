"""The pointwise log-likelihood of every row under every posterior draw (for LOO), fused and
parallel, for the logit and Poisson row kernels; the caller handles the other families."""

from __future__ import annotations

import math

import numba
import numpy as np

from bayesglmm.families import ROW_KERNEL_CODES, Family, kernel_code

__all__ = ["pointwise_code", "pointwise_loglik_draws"]

_LOGIT = ROW_KERNEL_CODES["logit"]


def pointwise_code(family: Family) -> int | None:
    """The row-kernel code :func:`pointwise_loglik_draws` takes for ``family``, or None."""
    return kernel_code(family, ("logit", "poisson"))


@numba.njit(nogil=True, cache=True, parallel=True)
def pointwise_loglik_draws(
    B: np.ndarray,
    X: np.ndarray,
    offset: np.ndarray,
    y: np.ndarray,
    trials: np.ndarray,
    family: int,
    R: np.ndarray,
    rbase: np.ndarray,
    nterm: np.ndarray,
    Z: np.ndarray,
    zcol: np.ndarray,
    idx: np.ndarray,
    const: np.ndarray,
) -> np.ndarray:
    """Log-likelihood of every row under every draw, (S, n), in one fused parallel pass.

    ``B`` (S, k) fixed effects on ``X``'s columns; ``R`` (S, total) the flattened random
    effects of all blocks (block ``b`` at ``rbase[b]``, laid out (levels, terms)); ``const``
    the per-row data constants.  ``family``: :func:`pointwise_code` (the logit and Poisson
    row kernels); the caller handles the others.
    """
    S = B.shape[0]
    n, k = X.shape
    nb = rbase.shape[0]
    out = np.empty((S, n))
    for s in numba.prange(S):
        for i in range(n):
            e = offset[i]
            for j in range(k):
                e += X[i, j] * B[s, j]
            for bl in range(nb):
                m = nterm[bl]
                base = rbase[bl] + idx[i, bl] * m
                for t in range(m):
                    e += Z[i, zcol[bl] + t] * R[s, base + t]
            if family == _LOGIT:
                sp = max(e, 0.0) + math.log(1.0 + math.exp(-abs(e)))
                out[s, i] = y[i] * e - trials[i] * sp + const[i]
            else:
                out[s, i] = y[i] * e - trials[i] * math.exp(min(e, 700.0)) + const[i]
    return out
