"""Bayesian Laplace for a GLM (no random effects) whose family has a free dispersion.

The negative binomial and Gamma ``shape``, Beta ``phi``, Student-t ``sigma, nu`` and the
gaussian-log ``sigma``: one Gaussian at the posterior mode of ``x = [beta, log dispersion]``
(the dispersions on their unconstrained scale with their priors and the log-Jacobian), its
covariance the inverse Hessian there, as :func:`~bayesglmm.engines.glm.fit_glm_laplace`
does for the other families (and the gaussian with the identity link).  Without random
effects nothing is integrated out, so there is no grid.  The draws carry the names NUTS
uses (``Intercept``, ``beta``, the dispersions by ``Family.dispersion``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.cov_param import log_density
from bayesglmm.engines.bayes.draws import draws_to_tree
from bayesglmm.engines.glm import GLM_NOTE, fit_glm_ml
from bayesglmm.engines.glm_laplace import gaussian_at_mode
from bayesglmm.engines.ml.pirls import FamilyKernel
from bayesglmm.engines.scaling import standardization
from bayesglmm.errors import InferenceError
from bayesglmm.priors import PriorSet

__all__ = ["fit_glm_dispersion_laplace"]


class _GLMPosterior:
    """``-log p(beta, log dispersion | y)`` of a GLM, up to a constant."""

    def __init__(self, design: Design, priors: PriorSet) -> None:
        fam = design.family
        self.k, self.disp = design.k, fam.dispersion
        self.X = np.asarray(design.X, dtype=float)
        self.off = np.asarray(design.offset, dtype=float)
        self.kern = FamilyKernel(
            fam, np.asarray(design.y, float), design.trials, weights=design.weights
        )
        self.slopes = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
        self.means = design.row_mean(self.X[:, self.slopes]) if self.slopes else np.zeros(0)
        names = design.x_names
        self.i0 = names.index("(Intercept)") if "(Intercept)" in names else None
        self.fixed_lp = [log_density(p) for p in priors.fixed.values()]
        self.icpt_lp = log_density(priors.intercept) if priors.intercept is not None else None
        self.disp_lp = [log_density(priors.dispersion(d.name)) for d in self.disp]

    def dispersion(self, u: np.ndarray) -> np.ndarray:
        """Natural-scale dispersions of the unconstrained values ``u``."""
        return np.array([float(d.from_unconstrained(v)) for d, v in zip(self.disp, u, strict=True)])

    def log_prior(self, x: np.ndarray) -> float:
        beta, u = x[: self.k], x[self.k :]
        lp = 0.0
        for i, logpdf in zip(self.slopes, self.fixed_lp, strict=True):
            lp += float(logpdf(beta[i]))
        if self.icpt_lp is not None and self.i0 is not None:
            # on the intercept at centred predictors (a linear map: unit Jacobian)
            lp += float(self.icpt_lp(beta[self.i0] + self.means @ beta[self.slopes]))
        for d, logpdf, v in zip(self.disp, self.disp_lp, u, strict=True):
            lp += float(logpdf(d.from_unconstrained(v))) + float(v)  # log-Jacobian
        return lp

    def nll(self, x: np.ndarray) -> float:
        """Negative log-likelihood (with the family's constants)."""
        self.kern.set_dispersion(self.dispersion(x[self.k :]))
        with np.errstate(all="ignore"):
            v = -(float(np.sum(self.kern.ll(self.X @ x[: self.k] + self.off))) + self.kern.const)
        return v if np.isfinite(v) else np.inf

    def __call__(self, x: np.ndarray) -> float:
        v = self.nll(x) - self.log_prior(x)
        return float(v) if np.isfinite(v) else np.inf

    def grad(self, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
        """Gradient: analytic score in ``beta``, central differences elsewhere."""
        k = self.k
        g = np.empty(x.size)
        self.kern.set_dispersion(self.dispersion(x[k:]))
        with np.errstate(all="ignore"):
            d1, _ = self.kern.score(self.X @ x[:k] + self.off)
        g[:k] = -(self.X.T @ d1)
        for i in range(k, x.size):
            e = np.zeros(x.size)
            e[i] = h * max(1.0, abs(x[i]))
            g[i] = (self.nll(x + e) - self.nll(x - e)) / (2 * e[i])
        for i in range(x.size):  # the prior, term by term (cheap)
            e = np.zeros(x.size)
            e[i] = h * max(1.0, abs(x[i]))
            g[i] -= (self.log_prior(x + e) - self.log_prior(x - e)) / (2 * e[i])
        return g

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """Central differences of :meth:`grad`, symmetrized."""
        H = np.empty((x.size, x.size))
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = 1e-5 * max(1.0, abs(x[i]))
            H[i] = (self.grad(x + e) - self.grad(x - e)) / (2 * e[i])
        return 0.5 * (H + H.T)


def fit_glm_dispersion_laplace(
    design: Design,
    priors: PriorSet,
    *,
    draws: int = 1000,
    random_seed: int | None = None,
    **ignored: Any,
) -> tuple[Any, dict[str, Any]]:
    """Bayesian Laplace (normal) approximation of a GLM with a free dispersion.

    Parameters
    ----------
    design : Design
        No random-effect terms; a family with dispersion parameters.
    priors : PriorSet
    draws : int
    random_seed : int, optional
    **ignored
        Options for the random-effect integration (``nagq``, ``strategy``, ``grid_*``):
        nothing to act on; listed in a note.

    Returns
    -------
    tree : DataTree
        One chain of draws with the NUTS variable names.
    info : dict
        ``strategy`` ("gaussian"), ``mode`` and ``cov`` (``[beta, log dispersion]``, ``beta``
        on the user's scale), ``converged``, ``notes``.
    """
    if design.blocks or not design.family.has_dispersion:
        raise InferenceError("fit_glm_dispersion_laplace is for GLMs with a dispersion")
    t0 = time.perf_counter()
    std = standardization(design)
    sd_design, sd_priors = std.design(design), std.priors(priors, design)
    post = _GLMPosterior(sd_design, sd_priors)
    k = design.k
    ml = fit_glm_ml(sd_design)
    disp0 = ml.family_dispersion or ()
    x0 = np.concatenate(
        [ml.beta, [float(d.to_unconstrained(v)) for d, v in zip(post.disp, disp0, strict=True)]]
    )
    if x0.size != k + len(post.disp) or not np.all(np.isfinite(x0)):
        raise InferenceError("the ML start of the GLM posterior is not finite")
    res = optimize.minimize(post, x0, jac=post.grad, method="BFGS", options={"gtol": 1e-8})
    mode = np.asarray(res.x, dtype=float)
    for _ in range(10):  # Newton polish on the difference Hessian
        g = post.grad(mode)
        if np.max(np.abs(g)) < 1e-7:
            break
        try:
            step = np.linalg.solve(post.hessian(mode), g)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while post(mode - t * step) > post(mode) + 1e-12 and t > 1e-4:
            t /= 2.0
        mode = mode - t * step
    g = post.grad(mode)
    converged = bool(np.all(np.isfinite(g)) and np.max(np.abs(g)) < 1e-4 * np.sqrt(design.n))
    H = post.hessian(mode)
    cov, xs = gaussian_at_mode(mode, H, draws, random_seed)
    A = np.eye(mode.size)
    A[:k, :k] = std.T  # beta = T beta_std: the Gaussian maps exactly
    tree = draws_to_tree(
        design, std.beta_to_user(xs[:, :k]), [[] for _ in range(draws)], [[] for _ in range(draws)]
    )
    ds = tree["posterior"].to_dataset()
    for i, d in enumerate(post.disp):
        ds[d.name] = (("chain", "draw"), np.asarray(d.from_unconstrained(xs[None, :, k + i])))
    tree["posterior"] = ds
    names = ", ".join(f"log {d.name}" for d in post.disp)
    notes = [
        GLM_NOTE,
        "Bayesian Laplace without random effects: the posterior is approximated by one "
        f"Gaussian at its mode in (beta, {names}), the Hessian there giving its covariance",
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
        "mode": (A @ mode).tolist(),
        "cov": (A @ cov @ A.T).tolist(),
        "elapsed_mode": time.perf_counter() - t0,
        "notes": notes,
    }
    return tree, info
