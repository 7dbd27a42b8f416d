"""Penalized quasi-likelihood (Breslow & Clayton 1993), as ``MASS::glmmPQL``.

glmmPQL starts from the GLM fit without random effects and iterates

1. working response ``z = eta + (y - mu) / mu_eta - offset`` and weights
   ``w = n mu_eta^2 / V(mu)``;
2. a weighted linear mixed model for ``z`` with the same random effects, fitted by
   maximum likelihood (glmmPQL calls ``nlme::lme(method = "ML")`` with
   ``varFixed(~ 1 / w)``), whose residual variance is the dispersion ``phi``;
3. the new ``eta`` (fixed plus random part plus offset),

until ``sum((eta - eta_old)^2) < tol * sum(eta^2)`` (glmmPQL's rule, ``tol = 1e-6``).
glmmPQL stops after ``niter = 10`` iterations without a warning, converged or not; here the
limit is 50 and an unconverged fit warns.  On toenail the iteration contracts by a factor of
about -0.49 per step (the random-intercept SD overshoots and undershoots in turn): the
10th iterate, which glmmPQL returns (SD 2.317, the course notes' value), still moves by
1.2e-4 relative to ``sum(eta^2)``, and the rule holds at the 17th (SD 2.321).
The weighted LMM (:func:`~bayesglmm.engines.ml.pirls.weighted_lmm_fit`) is profiled over
``beta`` and ``phi`` and uses the same per-group / sparse structures as the Laplace engine.
Standard errors are the final LMM's, ``phi (X' V^-1 X)^-1``.  ``dispersion="fixed"``
fixes ``phi = 1`` (the textbook PQL of Breslow & Clayton).
"""

from __future__ import annotations

import time
import warnings
from typing import Literal

import numpy as np

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.estimate import SINGULAR_MSG, MLEstimate
from bayesglmm.engines.ml.pirls import ThetaLayout, glm_start, weighted_lmm_fit
from bayesglmm.engines.scaling import standardized_ml
from bayesglmm.errors import ConvergenceWarning, InferenceError

__all__ = ["fit_pql"]


def _working(design: Design, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """glmmPQL's working response (without the offset) and working weights."""
    fam = design.family
    n = 1.0 if design.trials is None else np.asarray(design.trials, dtype=float)
    y = np.asarray(design.y, dtype=float)
    mu = fam.linkinv(eta)
    me = fam.mu_eta(eta)
    if fam.is_binomial:
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        yy = y / n
        var = mu * (1.0 - mu)
    else:
        yy = y
        var = fam.variance(mu)
    me = np.where(np.abs(me) < 1e-300, 1e-300, me)
    z = eta - design.offset + (yy - mu) / me
    w = n * me * me / var
    if design.weights is not None:  # prior weights scale the working weights (glmmPQL)
        w = w * design.weights
    return z, w


@standardized_ml
def fit_pql(
    design: Design,
    *,
    dispersion: Literal["estimate", "fixed"] = "estimate",
    maxiter: int = 50,
    tol: float = 1e-6,
) -> MLEstimate:
    """Penalized quasi-likelihood fit, as ``MASS::glmmPQL``, on standardized fixed-effect
    columns, reported on the user's scale.

    Parameters
    ----------
    design : Design
    dispersion : {"estimate", "fixed"}
        Estimate the dispersion ``phi`` (glmmPQL) or fix it at 1.
    maxiter : int
        Outer iterations (glmmPQL's ``niter``; its default 10 leaves toenail unconverged,
        see the module notes; ``maxiter=10`` reproduces glmmPQL's result there).
    tol : float
        Stop when ``sum((eta - eta_old)^2) < tol * sum(eta^2)`` (glmmPQL's rule).

    Returns
    -------
    MLEstimate
        ``method="pql"``, ``loglik`` NaN (no likelihood), ``sigma = sqrt(phi)``,
        ``dispersion = phi``; ``theta`` is relative to ``sigma`` (as lme).
    """
    if dispersion not in ("estimate", "fixed"):
        raise InferenceError(f"dispersion must be 'estimate' or 'fixed', not {dispersion!r}")
    design.family.check_engine("pql")  # the family states the engines it does not fit
    if not design.blocks:  # PQL without random effects is IRLS (bayesglmm.engines.glm)
        from bayesglmm.engines.glm import fit_glm_ml

        return fit_glm_ml(design, method="pql", dispersion=dispersion)
    t0 = time.perf_counter()
    sigma_fixed = 1.0 if dispersion == "fixed" else None
    beta0 = glm_start(design)
    eta = design.offset + design.X @ beta0
    theta = None
    converged = broke = False
    fit = None
    it = 0
    for it in range(1, maxiter + 1):  # noqa: B007
        z, w = _working(design, eta)
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(w))):
            raise InferenceError("PQL diverged: non-finite working response or weights")
        try:
            new_fit = weighted_lmm_fit(
                design, w, y=z + design.offset, sigma=sigma_fixed, theta0=theta
            )
        except np.linalg.LinAlgError:
            if fit is None:
                raise
            # the iteration broke down (RIKZ with an observation-level effect: a singular
            # working LMM after iteration 10); keep the last finite iterate, unconverged
            it -= 1
            broke = True
            break
        fit = new_fit
        theta = fit.theta
        eta_old, eta = eta, fit.eta
        if np.sum((eta - eta_old) ** 2) < tol * np.sum(eta**2):
            converged = True
            break
    assert fit is not None
    if not np.all(np.isfinite(fit.beta)):
        raise InferenceError("PQL diverged (non-finite estimates)")
    messages = []
    if not converged:
        messages.append(
            f"PQL did not converge in {it} iterations"
            + (f" (iteration {it + 1} broke down: a singular working model)" if broke else "")
        )
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=2)
    phi = fit.sigma**2
    messages.append(f"PQL dispersion phi = {phi:.4g} ({dispersion})")
    layout = ThetaLayout.from_blocks(design.blocks)
    singular = layout.is_singular(fit.theta)
    if singular:
        messages.append(SINGULAR_MSG)
    return MLEstimate(
        method="pql",
        nagq=0,
        beta=fit.beta,
        vcov_beta=fit.vcov_beta,
        theta=fit.theta,
        covariances=fit.covariances,
        sigma=float(fit.sigma),
        loglik=float("nan"),
        modes=fit.modes,
        cond_var=fit.cond_var,
        converged=converged and fit.converged,
        grad_norm=fit.grad_norm,
        n_iter=it,
        singular=singular,
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        dispersion=float(phi),
        n_obs=design.n,
        # the family's own dispersion parameter(s) from phi (gamma: shape = 1 / phi)
        family_dispersion=design.family.spec.dispersion_from_phi(float(phi)),
    )
