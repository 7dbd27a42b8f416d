"""Bayesian fast path: random effects integrated out by Laplace, priors on (beta, psi).

This is *not* the joint-mode Laplace over (beta, b, sd), whose density has no proper mode
as sd -> 0 (on toenail it collapses to sd ~ 0 or runs away to 19).  Instead, as lme4 and
INLA do, the random effects are integrated out first (adaptive Gauss-Hermite with 15 nodes
for one scalar term, Laplace otherwise):

    log p(beta, psi | y) ~= -deviance(theta(psi), beta) / 2 + log p(beta) + log p(psi),

where ``psi`` holds each block's log SDs and, for a correlated block, its unconstrained
canonical partial correlations (:mod:`bayesglmm.engines.bayes.cov_param`: the SD priors and
``LKJ(eta)`` on the correlation matrix, with the Jacobians, as PyMC's ``LKJCholeskyCov``),
then the family's dispersion parameters on their log scale (negative binomial and Gamma
``shape``, Beta ``phi``, Student-t ``sigma, nu``, gaussian ``sigma``) with their priors and
the log-Jacobian; with a dispersion the random effects are integrated out by Laplace (as the
ML fit with a dispersion).  The posterior and its derivatives are
:class:`~bayesglmm.engines.bayes.laplace_posterior.IntegratedPosterior`; the draws are made
in :mod:`~bayesglmm.engines.bayes.laplace_draws`.  A GLM (no random effects) is one Gaussian
at the posterior mode (:func:`~bayesglmm.engines.glm.fit_glm_laplace`, and
:mod:`~bayesglmm.engines.bayes.glm_dispersion_laplace` for a family with a dispersion).

Two strategies turn this density into draws:

``"grid"`` (default for up to three hyperparameters), INLA's grid strategy:
    ``log p(psi | y)`` is explored on a lattice in the standardized coordinates of the
    Gaussian at the joint mode (:mod:`bayesglmm.engines.bayes.inla_grid`), each point with the
    fixed effects integrated out by Laplace:
    ``log p(psi | y) ~= log p(beta*, psi | y) - log det H_beta / 2`` at the conditional mode
    ``beta*(psi)`` (Newton steps).  A draw picks a lattice cell by its mass, a ``psi`` inside
    it, then ``beta | psi ~ N(beta*, H_beta^-1)``.  A skewed SD posterior (few groups) is
    captured, which the Gaussian in ``log sd`` cannot do.
``"gaussian"``:
    one Gaussian at the joint mode of ``(psi, beta)`` (finite-difference Hessian).

Either way the random effects of each draw come from their conditional Gaussian
``N(u*, H^-1)`` given ``(psi, beta)``.  Draws carry the names and coords NUTS uses
(``Intercept``, ``beta``, ``sd_<group>``, ``cor_<group>``, ``r_<group>``, and the
dispersions by their ``Family.dispersion`` names).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Literal

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.draws import draws_to_tree
from bayesglmm.engines.bayes.laplace_draws import draw_ranef, grid_draws
from bayesglmm.engines.bayes.laplace_posterior import IntegratedPosterior
from bayesglmm.engines.blas_threads import one_blas_thread
from bayesglmm.engines.ml.laplace import AGQError, LaplaceObjective, fit_ml, newton_polish
from bayesglmm.engines.ml.laplace_dispersion import fit_ml_dispersion
from bayesglmm.engines.scaling import standardization
from bayesglmm.errors import ConvergenceWarning, InferenceError
from bayesglmm.priors import PriorSet
from bayesglmm.quiet import ignoring_warnings

__all__ = ["fit_bayes_laplace"]

Strategy = Literal["auto", "grid", "gaussian"]
GRID_MAX_DIM = 3  # "auto" uses the grid up to this many hyperparameters (covariance + dispersion)
_GRID_STEP = {1: 0.5, 2: 1.0, 3: 1.25}
_GRID_THRESHOLD = {1: 3.0, 2: 3.5, 3: 4.0}


def _choose_nagq(design: Design, obj: LaplaceObjective) -> tuple[int, Any]:
    """Quadrature for integrating the random effects out, and the ML fit that decided it.

    Several random-effect terms: Laplace (nagq = 1).  One scalar term: 15-point adaptive
    Gauss-Hermite unless Laplace already agrees with it: one Newton step on the 15-node
    deviance from the Laplace ML estimate (with the Laplace Hessian) moves no fixed effect
    by more than 0.1 SE and the SD by less than 3%, as with many observations per group
    (hdp: the two ML fits differ by 0.02 SE and 2%); on toenail they differ by 2 SE and the
    quadrature is kept.  Laplace evaluations cost ~1/10 of 15-node ones.
    """
    if design.family.has_dispersion:
        # a free dispersion: the ML fit with it (as engines.registry's ML engine); Laplace
        return 1, fit_ml_dispersion(design)
    if not obj.scalar:
        return 1, fit_ml(design, nagq=1)
    lap = fit_ml(design, nagq=1)
    if lap.hessian is not None and np.all(np.isfinite(lap.hessian)):
        # one Newton step from the Laplace estimate on the 15-node deviance
        x = np.concatenate([lap.theta, lap.beta])
        _, g = obj.deviance_grad(x, 15)
        obj.reset()
        try:
            step = -np.linalg.solve(lap.hessian, g)
        except np.linalg.LinAlgError:
            step = np.full(x.size, np.inf)
        nt = lap.theta.size
        se = np.sqrt(np.maximum(np.diag(lap.vcov_beta), 1e-300))
        theta = np.maximum(np.abs(lap.theta), 1e-8)
        if np.all(np.abs(step[nt:]) <= 0.1 * se) and np.all(np.abs(step[:nt]) <= 0.03 * theta):
            return 1, lap
    return 15, fit_ml(design, nagq=15)


def _with_dispersion_draws(tree: Any, post: IntegratedPosterior, psis: np.ndarray) -> Any:
    """The tree with the family's dispersion draws added under their names
    (``Family.dispersion``: ``shape``, ``phi``, ``sigma``, ``nu``), as NUTS stores them."""
    values = post.dispersion_values(psis)
    ds = tree["posterior"].to_dataset()
    for i, d in enumerate(post.dispersion):
        ds[d.name] = (("chain", "draw"), values[None, :, i])
    tree["posterior"] = ds
    return tree


def fit_bayes_laplace(
    design: Design,
    priors: PriorSet,
    *,
    draws: int = 1000,
    random_seed: int | None = None,
    nagq: int | None = None,
    strategy: Strategy = "auto",
    grid_step: float | None = None,
    grid_threshold: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Integrated-Laplace posterior approximation; returns (DataTree, info).

    Parameters
    ----------
    design : Design
    priors : PriorSet
    draws : int
        Posterior draws.
    random_seed : int, optional
    nagq : int, optional
        Quadrature points for integrating the random effects out.  Default: one scalar
        random-effect term gets 15-point adaptive Gauss-Hermite (Laplace alone is badly off
        for binary data with few observations per group, e.g. toenail) unless Laplace
        agrees with it at the ML estimates (see :func:`_choose_nagq`); else 1 (Laplace).
        A family with a dispersion: 1 (``nagq > 1`` is an ``AGQError``, as in ``ml``).
    strategy : {"auto", "grid", "gaussian"}
        How the hyperparameters (covariance parameters and dispersions) are integrated
        over: INLA's grid or one Gaussian at the mode.  ``"auto"``: the grid for up to three.
    grid_step : float, optional
        Lattice spacing in standardized units (default 0.5, 1, 1.25 for 1, 2, 3 parameters).
    grid_threshold : float, optional
        Log-density drop at which the exploration stops (default 3, 3.5, 4 for 1, 2, 3
        parameters: more dimensions put more mass far out).

    Returns
    -------
    tree : DataTree
        One chain of draws with the NUTS variable names.
    info : dict
        ``strategy``, ``n_hyper``, ``grid_points`` (and the grid settings), ``nagq``,
        ``converged``, ``mode`` (``[psi, beta]``: ``psi`` with the log dispersions last,
        ``beta`` on the user's scale) and timings.

    The approximation is computed on standardized fixed-effect columns
    (:mod:`bayesglmm.engines.scaling`) and reported on the user's scale.
    """
    if not design.blocks and design.family.has_dispersion and not design.family.is_linear:
        # a GLM with a free dispersion (negative binomial, Gamma, Beta, Student-t, gaussian
        # with a log link): one Gaussian at the mode of [beta, log dispersion]
        from bayesglmm.engines.bayes.glm_dispersion_laplace import fit_glm_dispersion_laplace

        return fit_glm_dispersion_laplace(
            design,
            priors,
            draws=draws,
            random_seed=random_seed,
            nagq=nagq,
            strategy=strategy,
            grid_step=grid_step,
            grid_threshold=grid_threshold,
        )
    if not design.blocks:  # a GLM: one Gaussian at the posterior mode (gaussian included)
        from bayesglmm.engines.glm import fit_glm_laplace

        return fit_glm_laplace(
            design,
            priors,
            draws=draws,
            random_seed=random_seed,
            nagq=nagq,
            strategy=strategy,
            grid_step=grid_step,
            grid_threshold=grid_threshold,
        )
    fam = design.family
    fam.check_engine("laplace")  # the family states the engines it does not fit
    t0 = time.perf_counter()
    # work on standardized fixed-effect columns (the slope priors mapped exactly), report on
    # the user's scale: the mode search, Hessians and grid are then scale-free
    std = standardization(design)
    design, priors = std.design(design), std.priors(priors, design)
    obj = LaplaceObjective(design)
    with ignoring_warnings():  # thread-safe (bayesglmm.quiet)
        if nagq is None or (nagq == 1 and design.family.has_dispersion):
            nagq, ml = _choose_nagq(design, obj)
        elif design.family.has_dispersion:
            raise AGQError(
                f"nagq > 1 is not available in method='laplace' for the {design.family.name} "
                "family: with a dispersion parameter the random effects are integrated out by "
                "Laplace (as in method='ml'); use nagq=1 or leave it unset"
            )
        else:
            obj.check_nagq(nagq)
            ml = fit_ml(design, nagq=nagq)
    post = IntegratedPosterior(design, priors, obj, nagq)
    m = post.m
    if strategy == "auto":
        strategy = "grid" if m <= GRID_MAX_DIM else "gaussian"
    if strategy not in ("grid", "gaussian"):
        raise InferenceError(f"unknown strategy `{strategy}`; choose auto, grid or gaussian")
    disp0 = [
        float(d.to_unconstrained(v))
        for d, v in zip(post.dispersion, ml.family_dispersion or (), strict=True)
    ]
    start = np.concatenate([post.cp.from_theta(ml.theta), disp0, ml.beta])
    with one_blas_thread():
        # L-BFGS-B can stop short: a relative-reduction stop after its line search backed off
        # a step where the inner mode search failed (a long step with a log link).  Newton
        # steps on the finite-difference Hessian (Levenberg-shifted where it is indefinite)
        # finish the job, as in the ML fit.
        res = optimize.minimize(post.value_grad, start, jac=True, method="L-BFGS-B")
        obj.u = np.zeros(obj.q)
        mode, H, _, g = newton_polish(
            post.value_grad,
            lambda x, _g: post.hessian(x)[2],
            res.x,
            np.full(res.x.size, -np.inf),
            max_rounds=10,
        )
        post.value(mode)  # the warm start at the mode
        converged = bool(np.all(np.isfinite(g)) and np.max(np.abs(g)) < 1e-3)
        try:
            cov = np.linalg.inv(H)
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as exc:
            raise InferenceError("the integrated-Laplace posterior has no proper mode") from exc
        if not converged:
            warnings.warn(
                "Bayesian Laplace: mode search did not fully converge",
                ConvergenceWarning,
                stacklevel=3,
            )
        t_mode = time.perf_counter()
        rng = np.random.default_rng(random_seed)
        info: dict[str, Any] = {"strategy": strategy, "n_hyper": m}
        if strategy == "grid":
            step = grid_step or _GRID_STEP.get(m, 1.0)
            thr = grid_threshold or _GRID_THRESHOLD.get(m, 4.0)
            psis, betas, grid = grid_draws(post, mode, H, cov, draws, rng, step, thr)
            info |= {
                "grid_points": int(np.isfinite(grid.lp).sum()),
                "grid_step": step,
                "grid_threshold": thr,
            }
        else:
            phis = rng.multivariate_normal(mode, cov, size=draws)
            psis, betas = phis[:, :m], phis[:, m:]
        t_grid = time.perf_counter()
        r_draws = draw_ranef(post, psis, betas, rng)
    covs = post.cp.covariances(psis[:, : post.n_cov])
    betas = std.beta_to_user(betas)
    mode = np.concatenate([mode[:m], std.beta_to_user(mode[m:])])
    tree = draws_to_tree(
        design,
        betas,
        [[c[s] for c in covs] for s in range(draws)],
        [[r[s] for r in r_draws] for s in range(draws)],
    )
    if post.n_disp:
        tree = _with_dispersion_draws(tree, post, psis)
    info |= {
        "converged": converged,
        "nagq": nagq,
        "mode": mode.tolist(),
        "elapsed_mode": t_mode - t0,
        "elapsed_integration": t_grid - t_mode,
        "elapsed_ranef": time.perf_counter() - t_grid,
    }
    return tree, info
