"""A model without random effects fitted by the Bayesian Laplace (normal) approximation.

``method="laplace"`` on a design without random-effect terms (see
:mod:`bayesglmm.engines.glm`): the posterior of ``(beta[, log sigma])`` is approximated by
the Gaussian at its mode, with the exact Hessian there (the log-likelihood's by central
differences of its analytic gradient, the priors' by three-point differences).  With no
random effects there is no integration step: this is the plain Laplace (normal)
approximation of the posterior, exact for a gaussian model with flat priors on ``beta`` at
given ``sigma``.  Gaussian models are included (``sigma`` gets its prior and the ``log``
Jacobian).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.glm_ml import GLM_NOTE, fit_glm_ml
from bayesglmm.engines.ml.pirls import FamilyKernel
from bayesglmm.errors import InferenceError
from bayesglmm.priors import PriorSet

__all__ = ["fit_glm_laplace", "gaussian_at_mode", "glm_laplace_density"]


def gaussian_at_mode(
    mode: np.ndarray, H: np.ndarray, draws: int, random_seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(cov, draws)`` of the Gaussian approximation at a posterior ``mode`` whose
    negative log-posterior has Hessian ``H``: ``cov = H^-1`` (symmetrized), ``draws`` seeded
    rows.  Raises :class:`InferenceError` when ``H`` is not positive definite."""
    try:
        cov = np.linalg.inv(H)
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as exc:
        raise InferenceError(
            "the GLM posterior has no proper mode (Hessian not positive definite); "
            "use proper priors or method='nuts'"
        ) from exc
    cov = 0.5 * (cov + cov.T)
    rng = np.random.default_rng(random_seed)
    return cov, rng.multivariate_normal(mode, cov, size=int(draws), method="cholesky")


def glm_laplace_density(design: Design, priors: PriorSet) -> Any:
    """``(neg_log_post, grad_loglik_part)`` of ``x = [beta, (log sigma)]`` for a GLM.

    The negative log posterior density (up to a constant) on the sampling scale of the
    parameters: ``beta`` as in ``design`` (the intercept prior applies to the intercept at
    centred predictors, a linear map with unit Jacobian), ``log sigma`` with its Jacobian.
    Returns a pair of callables: ``f(x)`` and ``g(x)``, the gradient of the negative
    log-likelihood part only (analytic).
    """
    from bayesglmm.engines.bayes.cov_param import log_density

    X = np.asarray(design.X, dtype=float)
    y = np.asarray(design.y, dtype=float)
    off = np.asarray(design.offset, dtype=float)
    k = design.k
    gauss = design.family.is_linear
    fam = FamilyKernel(design.family, y, design.trials, weights=design.weights)
    wt = np.ones_like(y) if design.weights is None else np.asarray(design.weights, float)
    n_obs = float(np.count_nonzero(wt > 0))
    slopes = [i for i, nm in enumerate(design.x_names) if nm != "(Intercept)"]
    means = design.row_mean(X[:, slopes]) if slopes else np.zeros(0)
    i0 = design.x_names.index("(Intercept)") if "(Intercept)" in design.x_names else None
    fixed_lp = [log_density(p) for p in priors.fixed.values()]
    icpt_lp = log_density(priors.intercept) if priors.intercept is not None else None
    sigma_lp = log_density(priors.sigma) if (gauss and priors.sigma is not None) else None

    def log_prior(x: np.ndarray) -> float:
        beta = x[:k]
        lp = 0.0
        for i, logpdf in zip(slopes, fixed_lp, strict=True):
            lp += float(logpdf(beta[i]))
        if icpt_lp is not None and i0 is not None:
            lp += float(icpt_lp(beta[i0] + means @ beta[slopes]))
        if gauss and sigma_lp is not None:
            ls = float(x[k])
            lp += float(sigma_lp(np.exp(ls))) + ls  # the log Jacobian
        return lp

    def nll(x: np.ndarray) -> float:
        eta = X @ x[:k] + off
        if gauss:
            s = float(np.exp(x[k]))
            r = y - eta
            return float(0.5 * np.sum(wt * r * r) / s**2 + n_obs * np.log(s))
        v = -float(np.sum(fam.ll(eta)))
        return v if np.isfinite(v) else np.inf

    def nll_grad(x: np.ndarray) -> np.ndarray:
        eta = X @ x[:k] + off
        if gauss:
            s2 = float(np.exp(2.0 * x[k]))
            r = y - eta
            return np.concatenate([-(X.T @ (wt * r)) / s2, [n_obs - np.sum(wt * r * r) / s2]])
        d1, _ = fam.score(eta)
        return -(X.T @ d1)

    def f(x: np.ndarray) -> float:
        v = nll(x) - log_prior(x)
        return v if np.isfinite(v) else np.inf

    f.log_prior = log_prior  # type: ignore[attr-defined]
    f.nll_grad = nll_grad  # type: ignore[attr-defined]
    return f


def _prior_derivs(log_prior: Any, x: np.ndarray, h: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of ``log_prior`` by central differences (it is cheap, and a few
    coordinates at most are coupled: the intercept at centred predictors)."""
    m = x.size
    g = np.zeros(m)
    H = np.zeros((m, m))
    f0 = log_prior(x)
    steps = h * np.maximum(1.0, np.abs(x))
    for i in range(m):
        e = np.zeros(m)
        e[i] = steps[i]
        fp, fm = log_prior(x + e), log_prior(x - e)
        g[i] = (fp - fm) / (2 * steps[i])
        H[i, i] = (fp - 2 * f0 + fm) / steps[i] ** 2
        for j in range(i):
            e2 = np.zeros(m)
            e2[j] = steps[j]
            H[i, j] = H[j, i] = (
                log_prior(x + e + e2)
                - log_prior(x + e - e2)
                - log_prior(x - e + e2)
                + log_prior(x - e - e2)
            ) / (4 * steps[i] * steps[j])
    return g, H


def fit_glm_laplace(
    design: Design,
    priors: PriorSet,
    *,
    draws: int = 1000,
    random_seed: int | None = None,
    **ignored: Any,
) -> tuple[Any, dict[str, Any]]:
    """Bayesian Laplace (normal) approximation of a GLM's posterior; (DataTree, info).

    Works on standardized fixed-effect columns (the slope priors mapped exactly) and reports
    on the user's scale.  ``info`` holds ``mode`` and ``cov`` (``[beta, (log sigma)]`` on
    the user's scale), ``converged`` and the notes; options meant for the random-effect
    integration (``nagq``, ``strategy``, ``grid_*``) have nothing to act on and are listed in
    a note.
    """
    fam = design.family
    if fam.has_dispersion and not fam.is_linear:  # only the gaussian's sigma is handled here
        fam.check_engine("laplace")
        raise InferenceError(
            f"method='laplace' does not estimate the {fam.name} family's dispersion; use "
            "method='nuts' or 'ml'"
        )
    from bayesglmm.engines.bayes.draws import draws_to_tree
    from bayesglmm.engines.scaling import standardization

    if design.blocks:
        raise InferenceError("fit_glm_laplace is for designs without random-effect terms")
    t0 = time.perf_counter()
    std = standardization(design)
    sd_design, sd_priors = std.design(design), std.priors(priors, design)
    k = design.k
    gauss = design.family.is_linear
    f = glm_laplace_density(sd_design, sd_priors)
    ml = fit_glm_ml(sd_design)
    x0 = np.concatenate([ml.beta, [np.log(ml.sigma)] if gauss and ml.sigma is not None else []])
    if x0.size == 0:
        raise InferenceError(
            "the model has no parameters (no fixed effects, no random effects, no sigma): "
            "there is no posterior to approximate"
        )
    if not np.all(np.isfinite(x0)):
        x0 = np.zeros(k + int(gauss))

    def grad(x: np.ndarray) -> np.ndarray:
        return f.nll_grad(x) - _prior_derivs(f.log_prior, x)[0]

    def hess(x: np.ndarray) -> np.ndarray:
        m = x.size
        H = np.zeros((m, m))
        steps = 1e-5 * np.maximum(1.0, np.abs(x))
        for i in range(m):
            e = np.zeros(m)
            e[i] = steps[i]
            H[:, i] = (f.nll_grad(x + e) - f.nll_grad(x - e)) / (2 * steps[i])
        H = 0.5 * (H + H.T)
        return H - _prior_derivs(f.log_prior, x)[1]

    res = optimize.minimize(
        f, x0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-9, "maxiter": 200}
    )
    mode = np.asarray(res.x, dtype=float)
    g = grad(mode)
    converged = bool(np.all(np.isfinite(g)) and np.max(np.abs(g)) < 1e-6 * np.sqrt(design.n))
    H = hess(mode)
    cov, xs = gaussian_at_mode(mode, H, draws, random_seed)
    # back to the user's scale: beta = T beta_std (linear, so the Gaussian maps exactly)
    T = std.T
    A = np.eye(mode.size)
    A[:k, :k] = T
    mode_u = A @ mode
    cov_u = A @ cov @ A.T
    betas = std.beta_to_user(xs[:, :k])
    sigma = np.exp(xs[:, k]) if gauss else None
    tree = draws_to_tree(
        design, betas, [[] for _ in range(int(draws))], [[] for _ in range(int(draws))], sigma=sigma
    )
    notes = [
        GLM_NOTE,
        "Bayesian Laplace without random effects: the posterior is approximated by one "
        "Gaussian at its mode in (beta" + (", log sigma" if gauss else "") + "), the exact "
        "Hessian there giving its covariance",
    ]
    used = sorted(k_ for k_, v in ignored.items() if v is not None and k_ != "strategy")
    if ignored.get("strategy") not in (None, "auto", "gaussian"):
        used.append("strategy")
    if used:
        notes.append(f"{', '.join(used)}: nothing to integrate without random effects (ignored)")
    info: dict[str, Any] = {
        "strategy": "gaussian",
        "n_hyper": 0,
        "nagq": None,
        "converged": converged,
        "mode": mode_u.tolist(),
        "cov": cov_u.tolist(),
        "elapsed_mode": time.perf_counter() - t0,
        "notes": notes,
    }
    return tree, info
