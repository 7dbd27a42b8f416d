"""Bayesian fast path: random effects integrated out by Laplace, priors on (beta, log sd).

This is *not* the joint-mode Laplace over (beta, b, sd), whose density has no proper mode
as sd -> 0 (on toenail it collapses to sd ~ 0 or runs away to 19).  Instead, as lme4 and
INLA do, the random effects are integrated out first:

    log p(beta, log sd | y) ~= -deviance_Laplace(theta, beta) / 2 + log p(beta) + log p(sd)
                              + log sd   (Jacobian of the log transform)

A Gaussian at the mode of this marginal posterior (Hessian by finite differences) gives
draws of (beta, sd); for each draw the random effects are drawn from their conditional
Gaussian ``N(u*, H^-1)`` given (beta, sd).  Draws carry the same names and coords as NUTS
(``Intercept``, ``beta``, ``sd_<group>``, ``r_<group>``).  Random-effect blocks must be
uncorrelated (scalar terms or ``||``); correlated blocks raise a clear error.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from scipy import optimize

from bayesglmm.design_types import Design
from bayesglmm.draws import draws_to_tree
from bayesglmm.errors import ConvergenceWarning, InferenceError
from bayesglmm.inference.laplace import LaplaceObjective, _num_grad, _num_hessian, fit_ml
from bayesglmm.priors import PriorSet


def _log_prior(design: Design, priors: PriorSet, beta: np.ndarray, sds: np.ndarray) -> float:
    lp = 0.0
    slope_idx = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
    for i, p in zip(slope_idx, priors.fixed.values(), strict=True):
        lp += float(p.logpdf(beta[i]))
    if priors.intercept is not None:
        means = design.X[:, slope_idx].mean(axis=0) if slope_idx else np.zeros(0)
        b0c = beta[design.x_names.index("(Intercept)")] + means @ beta[slope_idx]
        lp += float(priors.intercept.logpdf(b0c))  # linear map: unit Jacobian
    k = 0
    for label in priors.sd:
        for p in priors.sd[label]:
            lp += float(p.logpdf(sds[k]))
            k += 1
    return lp


def _block_covs(design: Design, sds: np.ndarray) -> list[list[np.ndarray]]:
    """Diagonal covariance per block and draw from the (S, n_theta) SD draws."""
    out = []
    for row in sds:
        pos, covs = 0, []
        for b in design.blocks:
            covs.append(np.diag(row[pos : pos + b.n_terms] ** 2))
            pos += b.n_terms
        out.append(covs)
    return out


def fit_bayes_laplace(
    design: Design,
    priors: PriorSet,
    *,
    draws: int = 1000,
    random_seed: int | None = None,
    nagq: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Integrated-Laplace posterior approximation; returns (DataTree, info).

    Parameters
    ----------
    design, priors
    draws : int
        Posterior draws.
    random_seed : int, optional
    nagq : int, optional
        Quadrature points for integrating the random effects out.  Default: 15-point
        adaptive Gauss-Hermite when the model has one scalar random-effect term (Laplace
        alone is badly off for binary data with few observations per group, e.g. toenail),
        else 1 (Laplace).
    """
    if any(b.correlated for b in design.blocks):
        raise InferenceError(
            "method='laplace' supports uncorrelated random effects only (scalar terms or "
            "`||`); this model has a correlated block: use method='nuts' or 'advi'"
        )
    if design.family.has_dispersion:
        raise InferenceError("method='laplace' is for non-gaussian families; use 'nuts'")
    t0 = time.perf_counter()
    obj = LaplaceObjective(design)
    nt, k = obj.n_theta, obj.k
    if nagq is None:
        nagq = 15 if obj.scalar else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = fit_ml(design, nagq=nagq)
    start = np.concatenate([np.log(np.maximum(ml.theta, 0.05)), ml.beta])

    def neg_log_post(phi: np.ndarray) -> float:
        log_sd, beta = phi[:nt], phi[nt:]
        sds = np.exp(log_sd)
        dev = obj.deviance(np.concatenate([sds, beta]), nagq)
        lp = _log_prior(design, priors, beta, sds) + float(log_sd.sum())
        val = 0.5 * dev - lp
        return val if np.isfinite(val) else 1e300

    lower = np.full(nt + k, -np.inf)
    res = optimize.minimize(
        neg_log_post, start, jac=lambda x: _num_grad(neg_log_post, x, lower), method="L-BFGS-B"
    )
    mode = res.x
    H = _num_hessian(neg_log_post, mode)
    try:
        cov = np.linalg.inv(H)
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as exc:
        raise InferenceError("the integrated-Laplace posterior has no proper mode") from exc
    if not res.success:
        warnings.warn(
            "Bayesian Laplace: mode search did not fully converge", ConvergenceWarning, stacklevel=3
        )
    rng = np.random.default_rng(random_seed)
    phis = rng.multivariate_normal(mode, cov, size=draws)
    sds = np.exp(phis[:, :nt])
    betas = phis[:, nt:]
    # random effects: conditional Gaussian given each draw of (sd, beta)
    r_draws = [np.empty((draws, b.n_levels, b.n_terms)) for b in design.blocks]
    for s in range(draws):
        theta = sds[s]
        m = obj.mode(theta, betas[s])
        if obj.scalar:
            u = m["u"] + rng.standard_normal(obj.L) / np.sqrt(m["h"])
        else:
            # u ~ N(u*, H^-1): solve with the sparse LU of H on a N(0, H) draw
            Hm = m["H"]
            eps = rng.standard_normal(obj.q)
            L = np.linalg.cholesky(Hm.toarray()) if obj.q <= 3000 else None
            if L is None:
                raise InferenceError("too many random effects for the dense conditional draw")
            u = m["u"] + np.linalg.solve(L.T, eps)
        off = 0
        for i, (b, Lk) in enumerate(zip(design.blocks, obj.chol_factors(theta), strict=True)):
            uu = u[off : off + b.n_levels * b.n_terms].reshape(b.n_levels, b.n_terms)
            r_draws[i][s] = uu @ Lk.T
            off += b.n_levels * b.n_terms
    obj.u = np.zeros(obj.q)
    covs = _block_covs(design, sds)
    tree = draws_to_tree(design, betas, covs, [[r[s] for r in r_draws] for s in range(draws)])
    info = {
        "converged": bool(res.success),
        "nagq": nagq,
        "mode": mode.tolist(),
        "elapsed_mode": time.perf_counter() - t0,
    }
    return tree, info
