"""Penalized quasi-likelihood (Breslow & Clayton 1993), as ``MASS::glmmPQL``.

Each iteration forms the working response ``z = eta + (y - mu) / mu_eta`` and working
weights ``w = n * mu_eta^2 / V(mu)`` at the current linear predictor (random effects
included), then fits the weighted linear mixed model ``z = X beta + Z b + e`` with
``Var(e) = phi / w`` by maximum likelihood (glmmPQL calls ``lme(method = "ML")``).  The
dispersion ``phi`` is estimated (glmmPQL's default; 0.877 on toenail) or fixed at 1
(``dispersion="fixed"``).  The LMM is solved by penalized least squares on the sparse
``A = Z Lambda`` (no dense indicator matrix), the covariance parameters by L-BFGS-B on the
profiled deviance.
"""

from __future__ import annotations

import time
import warnings
from typing import Literal

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import linalg as splinalg

from bayesglmm.design_types import Design
from bayesglmm.errors import ConvergenceWarning, InferenceError
from bayesglmm.inference.laplace import LaplaceObjective, _glm_start
from bayesglmm.inference.ml_types import MLEstimate

__all__ = ["fit_pql", "weighted_lmm"]


def _pls(obj: LaplaceObjective, theta: np.ndarray, X: np.ndarray, z: np.ndarray, w: np.ndarray):
    """Penalized least squares for fixed theta: returns (beta, u, r2, logdet, H lu, A, schur)."""
    A = (obj.Zs @ obj._lambda(theta)).tocsr()
    Aw = A.multiply(w[:, None]).tocsr()
    H = (A.T @ Aw).tocsc() + sparse.identity(A.shape[1], format="csc")
    lu = splinalg.splu(H)
    AtWX = np.asarray(Aw.T @ X)
    AtWz = np.asarray(Aw.T @ z).ravel()
    HinvAtWX = lu.solve(AtWX)
    HinvAtWz = lu.solve(AtWz)
    XtW = X.T * w
    schur = XtW @ X - AtWX.T @ HinvAtWX
    beta = np.linalg.solve(schur, XtW @ z - AtWX.T @ HinvAtWz)
    u = HinvAtWz - HinvAtWX @ beta
    r = z - X @ beta - A @ u
    r2 = float((w * r * r).sum() + u @ u)
    logdet = float(np.log(np.abs(lu.U.diagonal())).sum())
    return beta, u, r2, logdet, schur, A


def weighted_lmm(
    obj: LaplaceObjective,
    X: np.ndarray,
    z: np.ndarray,
    w: np.ndarray,
    theta0: np.ndarray,
    phi_fixed: float | None = None,
):
    """ML fit of ``z = X beta + Z Lambda u + e``, ``Var(e) = phi / w``.

    With ``phi`` estimated, ``Lambda`` is relative to ``sqrt(phi)`` and ``phi`` is profiled
    out; with ``phi_fixed`` it is absolute.  Returns (theta, beta, u, phi, vcov_beta).
    """
    n = z.size
    slw = float(np.log(w).sum())

    def dev(theta: np.ndarray) -> float:
        _, _, r2, logdet, _, _ = _pls(obj, theta, X, z, w)
        if phi_fixed is None:
            return logdet + n * (1.0 + np.log(2 * np.pi * r2 / n)) - slw
        return logdet + r2 / phi_fixed + n * np.log(2 * np.pi * phi_fixed) - slw

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in obj.lower[: obj.n_theta]]
    res = optimize.minimize(dev, theta0, method="L-BFGS-B", bounds=bounds)
    theta = res.x
    beta, u, r2, _, schur, _ = _pls(obj, theta, X, z, w)
    phi = r2 / n if phi_fixed is None else phi_fixed
    vcov = phi * np.linalg.inv(schur)
    return theta, beta, u, phi, vcov


def fit_pql(
    design: Design,
    *,
    dispersion: Literal["estimate", "fixed"] = "estimate",
    maxiter: int = 50,
    tol: float = 1e-6,
) -> MLEstimate:
    """Penalized quasi-likelihood fit (``MASS::glmmPQL``).

    Parameters
    ----------
    design : Design
    dispersion : {"estimate", "fixed"}
        Estimate the dispersion ``phi`` as glmmPQL does, or fix it at 1.
    maxiter, tol : int, float
        Outer iterations and relative tolerance on the linear predictor.

    Returns
    -------
    MLEstimate
        ``loglik`` is NaN (a quasi-likelihood has none); ``sigma`` is ``sqrt(phi)``.
    """
    if dispersion not in ("estimate", "fixed"):
        raise InferenceError(f"dispersion must be 'estimate' or 'fixed', not {dispersion!r}")
    if design.family.name == "gaussian":
        raise InferenceError("PQL is for non-gaussian families; use method='ml' for an LMM")
    t0 = time.perf_counter()
    obj = LaplaceObjective(design)
    if obj.scalar:  # the PLS path needs the sparse Z
        b = design.blocks[0]
        obj.Zs = sparse.csr_matrix(
            (b.Z[:, 0], (np.arange(design.n), b.index)), shape=(design.n, b.n_levels)
        )
    fam = design.family
    n_tr = design.trials if design.trials is not None else 1.0
    beta = _glm_start(design)
    eta = design.X @ beta + design.offset
    theta = np.concatenate(
        [
            [1.0 if i == j else 0.0 for j in range(p) for i in range(j, p)] if corr else [1.0] * p
            for _, p, corr in obj.layout
        ]
    )
    phi_fixed = 1.0 if dispersion == "fixed" else None
    converged = False
    for it in range(maxiter):
        mu = np.clip(fam.linkinv(eta), 1e-10, None)
        if fam.is_binomial:
            mu = np.clip(mu, 1e-10, 1 - 1e-10)
        me = np.maximum(fam.mu_eta(eta), 1e-10)
        var = fam.variance(mu) if not fam.is_binomial else mu * (1 - mu)
        yy = design.y / n_tr if fam.is_binomial else design.y
        z = eta - design.offset + (yy - mu) / me
        w = n_tr * me * me / var
        theta, beta, u, phi, vcov = weighted_lmm(obj, design.X, z, w, theta, phi_fixed)
        A = (obj.Zs @ obj._lambda(theta)).tocsr()
        eta_new = design.X @ beta + A @ u + design.offset
        change = np.max(np.abs(eta_new - eta)) / (1 + np.max(np.abs(eta)))
        eta = eta_new
        if change < tol:
            converged = True
            break
    if not np.isfinite(beta).all():
        raise InferenceError("PQL diverged (non-finite estimates)")
    if not converged:
        warnings.warn(
            f"PQL did not converge in {maxiter} iterations", ConvergenceWarning, stacklevel=3
        )
    scale = np.sqrt(phi)  # Lambda is relative to sqrt(phi) when phi is estimated
    Ls = [L * (scale if phi_fixed is None else 1.0) for L in obj.chol_factors(theta)]
    covs = tuple(L @ L.T for L in Ls)
    modes, cvs, off = [], [], 0
    for b, L in zip(design.blocks, Ls, strict=True):
        uu = u[off : off + b.n_levels * b.n_terms].reshape(b.n_levels, b.n_terms)
        modes.append(
            uu
            @ (L / (scale if phi_fixed is None else 1.0)).T
            * (scale if phi_fixed is None else 1.0)
        )
        cvs.append(np.zeros((b.n_levels, b.n_terms, b.n_terms)))
        off += b.n_levels * b.n_terms
    return MLEstimate(
        method="pql",
        nagq=0,
        beta=beta,
        vcov_beta=vcov,
        theta=np.asarray(theta),
        covariances=covs,
        sigma=float(np.sqrt(phi)),
        loglik=float("nan"),
        modes=tuple(modes),
        cond_var=tuple(cvs),
        converged=converged,
        grad_norm=0.0,
        n_iter=it + 1,
        singular=any(np.min(np.abs(np.diag(L))) < 1e-6 for L in Ls),
        messages=(f"PQL dispersion phi = {phi:.4g} ({dispersion})",),
        elapsed=time.perf_counter() - t0,
    )
