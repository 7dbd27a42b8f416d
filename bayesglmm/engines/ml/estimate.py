"""Plain-data result of the likelihood engines (Laplace, AGQ, PQL)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SINGULAR_MSG = "boundary (singular) fit: see help('isSingular')"


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
        From the finite-difference Hessian of the deviance over ``(theta, beta)`` (ML, as
        lme4) or from the final weighted LMM (PQL, as ``nlme::lme``).
    theta : ndarray
        lme4's covariance parameters: per block the column-major lower-triangular Cholesky
        factor elements (diagonal only for uncorrelated blocks).  Relative to ``sigma``
        for the gaussian family and PQL (as lme4 / lme), absolute otherwise.
    covariances : tuple of ndarray (p, p)
        Random-effect covariance per block (absolute scale).
    sigma : float or None
        Gaussian residual SD, or the square root of the PQL dispersion.
    loglik : float
        Log-likelihood as glmer reports it (for ``nagq > 1`` relative to the saturated
        model; NaN for PQL).
    modes : tuple of ndarray (levels, p)
        Conditional modes of the random effects.
    cond_var : tuple of ndarray (levels, p, p)
        Conditional covariances of the random effects.
    converged : bool
    grad_norm : float
        Largest absolute projected gradient of the deviance at the end.
    n_iter : int
    singular : bool
        Some Cholesky diagonal element is below 1e-4 (lme4's ``isSingular``).
    messages : tuple of str
    elapsed : float
        Seconds.
    loglik_normalized : float
        The properly normalized log-likelihood (equals ``loglik`` for Laplace).
    dispersion : float or None
        PQL dispersion ``sigma^2`` (``None`` elsewhere).
    hessian : ndarray or None
        Hessian of the deviance over ``[theta, beta]`` (ML).
    n_obs : int
        Observations used (for BIC).
    family_dispersion : tuple of float
        The family's dispersion parameters (``Family.dispersion``, natural scale) when the
        engine estimated them jointly; empty for the LMM path, which reports ``sigma``.
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
    dispersion: float | None = None
    hessian: np.ndarray | None = None
    n_obs: int = 0
    family_dispersion: tuple = ()

    @property
    def se_beta(self) -> np.ndarray:
        """Standard errors of the fixed effects."""
        return np.sqrt(np.diag(self.vcov_beta))

    @property
    def n_params(self) -> int:
        """Parameters counted by AIC: ``k + len(theta)`` (+1 for a gaussian sigma, + the
        number of a family's dispersion parameters when estimated jointly)."""
        extra = 1 if (self.sigma is not None and self.method == "ml") else 0
        if self.family_dispersion:  # Beta phi; Student-t sigma and nu
            extra = len(self.family_dispersion)
        return int(self.beta.size + self.theta.size + extra)

    @property
    def deviance(self) -> float:
        """``-2 * loglik``."""
        return -2.0 * self.loglik

    @property
    def aic(self) -> float:
        """``-2 loglik + 2 * n_params``."""
        return self.deviance + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """``-2 loglik + log(n_obs) * n_params``."""
        return self.deviance + np.log(max(self.n_obs, 1)) * self.n_params
