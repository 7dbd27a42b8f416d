"""Plain-data result of the likelihood engines (Laplace, AGQ, PQL)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class MLEstimate:
    """Point estimates of a GLMM by maximum (quasi-)likelihood.

    Attributes
    ----------
    method : str
        ``"ml"`` or ``"pql"``.
    nagq : int
        Quadrature points (1 = Laplace).
    beta : ndarray (k,)
    vcov_beta : ndarray (k, k)
    theta : ndarray
        lme4's covariance parameters: per block the column-major lower-triangular Cholesky
        factor elements (diagonal only for uncorrelated blocks).
    covariances : tuple of ndarray (p, p)
        Random-effect covariance per block.
    sigma : float or None
        Gaussian residual SD, or the PQL dispersion's square root.
    loglik : float
        Log-likelihood as glmer reports it (NaN for PQL).
    modes : tuple of ndarray (levels, p)
        Conditional modes of the random effects.
    cond_var : tuple of ndarray (levels, p, p)
        Conditional covariances of the random effects.
    converged : bool
    grad_norm : float
    n_iter : int
    singular : bool
    messages : tuple of str
    elapsed : float
    """

    method: str
    nagq: int
    beta: np.ndarray
    vcov_beta: np.ndarray
    theta: np.ndarray
    covariances: tuple
    sigma: float | None
    loglik: float
    modes: tuple
    cond_var: tuple
    converged: bool = True
    grad_norm: float = 0.0
    n_iter: int = 0
    singular: bool = False
    messages: tuple = field(default_factory=tuple)
    elapsed: float = 0.0
    loglik_normalized: float = float("nan")
