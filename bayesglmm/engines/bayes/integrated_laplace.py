"""Bayesian fast path: random effects integrated out by Laplace, priors on (beta, psi).

This is *not* the joint-mode Laplace over (beta, b, sd), whose density has no proper mode
as sd -> 0 (on toenail it collapses to sd ~ 0 or runs away to 19).  Instead, as lme4 and
INLA do, the random effects are integrated out first (adaptive Gauss-Hermite with 15 nodes
for one scalar term, Laplace otherwise):

    log p(beta, psi | y) ~= -deviance(theta(psi), beta) / 2 + log p(beta) + log p(psi),

where ``psi`` holds each block's log SDs and, for a correlated block, its unconstrained
canonical partial correlations (:mod:`bayesglmm.engines.bayes.cov_param`: the SD priors and
``LKJ(eta)`` on the correlation matrix, with the Jacobians, as PyMC's ``LKJCholeskyCov``).

Two strategies turn this density into draws:

``"grid"`` (default for up to three covariance parameters), INLA's grid strategy:
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
(``Intercept``, ``beta``, ``sd_<group>``, ``cor_<group>``, ``r_<group>``).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Literal

import numpy as np
from scipy import linalg, optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.cov_param import CovParam, log_density
from bayesglmm.engines.bayes.draws import draws_to_tree
from bayesglmm.engines.bayes.inla_grid import Grid, explore_grid, sample_grid
from bayesglmm.engines.blas_threads import one_blas_thread
from bayesglmm.engines.ml.laplace import LaplaceObjective, fit_ml, newton_polish
from bayesglmm.engines.scaling import standardization
from bayesglmm.errors import ConvergenceWarning, InferenceError
from bayesglmm.priors import PriorSet
from bayesglmm.quiet import ignoring_warnings

__all__ = ["fit_bayes_laplace"]

Strategy = Literal["auto", "grid", "gaussian"]
GRID_MAX_DIM = 3  # "auto" uses the grid up to this many covariance parameters
_GRID_STEP = {1: 0.5, 2: 1.0, 3: 1.25}
_GRID_THRESHOLD = {1: 3.0, 2: 3.5, 3: 4.0}


class _Posterior:
    """``-log p(psi, beta | y)`` (up to a constant) of the flat vector ``phi = [psi, beta]``."""

    def __init__(self, design: Design, priors: PriorSet, obj: LaplaceObjective, nagq: int):
        self.design, self.priors, self.obj, self.nagq = design, priors, obj, nagq
        self.cp = CovParam(design, priors)
        self.m, self.k = self.cp.size, obj.k
        self.slopes = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
        self.means = design.row_mean(design.X[:, self.slopes]) if self.slopes else np.zeros(0)
        names = design.x_names
        self.i0 = names.index("(Intercept)") if "(Intercept)" in names else None
        self.fixed_lp = [log_density(p) for p in priors.fixed.values()]
        self.icpt_lp = log_density(priors.intercept) if priors.intercept is not None else None

    # ------------------------------------------------------------------ prior
    def log_prior(self, phi: np.ndarray) -> float:
        psi, beta = phi[: self.m], phi[self.m :]
        lp = self.cp.log_prior(psi)
        for i, logpdf in zip(self.slopes, self.fixed_lp, strict=True):
            lp += float(logpdf(beta[i]))
        if self.icpt_lp is not None and self.i0 is not None:
            # the prior is on the intercept at centred predictors (a linear map: unit Jacobian)
            lp += float(self.icpt_lp(beta[self.i0] + self.means @ beta[self.slopes]))
        return lp

    def _prior_grad(self, phi: np.ndarray, h: float = 1e-6) -> np.ndarray:
        """Gradient of :meth:`log_prior` by central differences, term by term.

        The prior is separable: the covariance part in ``psi``, one density per slope and
        the intercept's density at centred predictors (a linear map of ``beta``), so each
        term is differenced in its own argument, as a two-point vectorised call.
        """
        m = self.m
        psi, beta = phi[:m], phi[m:]
        g = np.zeros(phi.size)
        for i in range(m):
            e = np.zeros(m)
            e[i] = h * max(1.0, abs(psi[i]))
            g[i] = (self.cp.log_prior(psi + e) - self.cp.log_prior(psi - e)) / (2 * e[i])

        def slope(logpdf: Any, x: float) -> float:
            step = h * max(1.0, abs(x))
            v = np.asarray(logpdf(np.array([x + step, x - step])), dtype=float)
            return float(v[0] - v[1]) / (2 * step)

        for i, logpdf in zip(self.slopes, self.fixed_lp, strict=True):
            g[m + i] = slope(logpdf, float(beta[i]))
        if self.icpt_lp is not None and self.i0 is not None:
            dc = slope(self.icpt_lp, float(beta[self.i0] + self.means @ beta[self.slopes]))
            g[m + self.i0] += dc
            g[m + np.asarray(self.slopes, dtype=int)] += dc * self.means
        return g

    # ------------------------------------------------------------------ posterior
    def value(self, phi: np.ndarray, u0: np.ndarray | None = None) -> float:
        """``-log p``; ``u0`` restarts the inner mode search from a fixed point (for FD)."""
        if u0 is not None:
            self.obj.u = u0.copy()
        psi, beta = phi[: self.m], phi[self.m :]
        try:
            dev = self.obj.evaluate(beta, self.cp.to_theta(psi), self.nagq).deviance
        except (InferenceError, np.linalg.LinAlgError, FloatingPointError):
            return np.inf
        val = 0.5 * dev - self.log_prior(phi)
        return float(val) if np.isfinite(val) else np.inf

    def value_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """``-log p`` and its gradient (analytic for one scalar term, else central FD)."""
        phi = np.asarray(phi, dtype=float)
        if self.obj.scalar:
            psi, beta = phi[: self.m], phi[self.m :]
            theta = np.exp(psi)
            try:
                ev = self.obj.evaluate(beta, theta, self.nagq, gradient=True)
            except (InferenceError, np.linalg.LinAlgError):
                return np.inf, np.zeros(phi.size)
            assert ev.gradient is not None  # asked for
            g = 0.5 * ev.gradient
            g[: self.m] *= theta  # d theta / d log sd
            return 0.5 * ev.deviance - self.log_prior(phi), g - self._prior_grad(phi)
        u0 = self.obj.u.copy()
        f0 = self.value(phi, u0)
        g = np.empty(phi.size)
        for i in range(phi.size):
            e = np.zeros(phi.size)
            e[i] = 1e-5 * max(1.0, abs(phi[i]))
            g[i] = (self.value(phi + e, u0) - self.value(phi - e, u0)) / (2 * e[i])
        self.obj.u = u0
        return f0, g

    def hessian(
        self, phi: np.ndarray, sub: slice | None = None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and Hessian over the coordinates ``sub`` (default: all)."""
        phi = np.asarray(phi, dtype=float)
        idx = np.arange(phi.size)[sub if sub is not None else slice(None)]
        n = idx.size
        if self.obj.scalar:
            u0 = self.obj.u.copy()
            f0, g0 = self.value_grad(phi)
            H = np.empty((n, n))
            for a, i in enumerate(idx):
                e = np.zeros(phi.size)
                e[i] = 1e-5 * max(1.0, abs(phi[i]))
                self.obj.u = u0.copy()
                H[a] = (self.value_grad(phi + e)[1][idx] - g0[idx]) / e[i]
            self.obj.u = u0
            return f0, g0[idx], 0.5 * (H + H.T)
        # second differences of the value, as lme4's deriv12 (also gives the gradient)
        u0 = self.obj.u.copy()
        steps = 1e-4 * np.maximum(1.0, np.abs(phi[idx]))
        f0 = self.value(phi, u0)
        E = np.zeros((n, phi.size))
        E[np.arange(n), idx] = steps
        fp = np.array([self.value(phi + E[a], u0) for a in range(n)])
        fm = np.array([self.value(phi - E[a], u0) for a in range(n)])
        H = np.diag((fp - 2 * f0 + fm) / steps**2)
        for a in range(n):
            for b in range(a + 1, n):
                fpp = self.value(phi + E[a] + E[b], u0)
                fmm = self.value(phi - E[a] - E[b], u0)
                H[a, b] = H[b, a] = (fpp - fp[a] - fp[b] + 2 * f0 - fm[a] - fm[b] + fmm) / (
                    2 * steps[a] * steps[b]
                )
        self.obj.u = u0
        return f0, (fp - fm) / (2 * steps), H

    def beta_value_grad(self, psi: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
        """``-log p`` and its gradient in ``beta`` at fixed ``psi``."""
        phi = np.concatenate([psi, beta])
        if self.obj.scalar:
            f, g = self.value_grad(phi)
            return f, g[self.m :]
        u0 = self.obj.u.copy()
        f0 = self.value(phi, u0)
        g = np.empty(self.k)
        for j in range(self.k):
            e = np.zeros(phi.size)
            e[self.m + j] = 1e-5 * max(1.0, abs(beta[j]))
            g[j] = (self.value(phi + e, u0) - self.value(phi - e, u0)) / (2 * e[self.m + j])
        self.obj.u = u0
        return f0, g

    # ------------------------------------------------------------------ p(psi | y)
    def log_marginal(
        self, psi: np.ndarray, beta0: np.ndarray, max_newton: int = 6
    ) -> tuple[float, np.ndarray, np.ndarray] | None:
        """``log p(psi | y)`` (fixed effects integrated out by Laplace), the conditional
        mode ``beta*`` and the Cholesky factor of ``H_beta``; None where not defined."""
        sub = slice(self.m, None)
        f, g, H = self.hessian(np.concatenate([psi, beta0]), sub)
        if not np.isfinite(f):
            return None
        try:
            C = linalg.cho_factor(H, lower=True)
        except linalg.LinAlgError:
            return None
        beta = beta0.copy()
        for _ in range(max_newton):
            step = -linalg.cho_solve(C, g)
            dec = -g @ step
            if dec < 0.02:
                # the quadratic model is accurate this close (error ~ dec^1.5 * skew)
                beta = beta + step
                break
            t = 1.0
            for _ in range(12):
                fn, gn = self.beta_value_grad(psi, beta + t * step)
                if fn <= f + 1e-10:
                    break
                t *= 0.5
            else:
                break
            beta, f, g = beta + t * step, fn, gn
        f_min = f - 0.5 * g @ linalg.cho_solve(C, g)  # quadratic model of the remainder
        Lc = np.tril(C[0])
        return -f_min - float(np.log(np.diag(Lc)).sum()), beta, Lc


def _draw_ranef(
    obj: LaplaceObjective,
    cp: CovParam,
    psis: np.ndarray,
    betas: np.ndarray,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Random effects per draw from their conditional Gaussian given ``(psi, beta)``."""
    design = obj.design
    if obj.scalar:
        return [_draw_ranef_scalar(obj, cp, psis, betas, rng)[:, :, None]]
    S = betas.shape[0]
    out = [np.empty((S, b.n_levels, b.n_terms)) for b in design.blocks]
    # visit draws in order of psi so the inner mode search is warm-started from a neighbour
    order = np.lexsort(psis.T[::-1])
    for s in order:
        theta = cp.to_theta(psis[s])
        m = obj.mode_at(theta, betas[s])
        eps = rng.standard_normal(obj.q)
        f = m.factor
        if obj.scalar:
            u = m.u + eps / np.sqrt(f.d)
        elif hasattr(f, "C"):  # (levels, p, p) stack: M = C C'
            e = eps.reshape(f.L, f.p, 1)
            u = m.u + np.linalg.solve(np.swapaxes(f.C, 1, 2), e).reshape(-1)
        else:
            if obj.q > 3000:
                raise InferenceError("too many random effects for the dense conditional draw")
            L = np.linalg.cholesky(f.M.toarray())
            u = m.u + linalg.solve_triangular(L.T, eps, lower=False)
        off = 0
        for i, (b, F) in enumerate(zip(design.blocks, obj.chol_factors(theta), strict=True)):
            size = b.n_levels * b.n_terms
            out[i][s] = u[off : off + size].reshape(b.n_levels, b.n_terms) @ F.T
            off += size
    obj.reset()
    return out


def _draw_ranef_scalar(
    obj: LaplaceObjective,
    cp: CovParam,
    psis: np.ndarray,
    betas: np.ndarray,
    rng: np.random.Generator,
    n_anchors: int = 16,
) -> np.ndarray:
    """Random effects ``(draws, levels)`` for one scalar term, without a mode search per draw.

    As INLA's Gaussian approximation of the latent field: the draws are split into
    ``n_anchors`` bins of the SD; at each bin's mean ``(theta_a, beta_a)`` the conditional
    mode ``u_a`` and curvature ``H_a`` are computed once, and each draw takes the mode moved
    to its own ``(theta, beta)`` by the implicit-function derivatives

        du/dbeta = -theta sum_i z_i w_i x_i / H,    du/dtheta = u (2 - H) / (theta H)

    (from ``theta sum_i z_i d1_i = u`` at the mode), plus ``N(0, 1/H_a)`` noise.  Vectorised
    over draws; 16 mode searches instead of one per draw.
    """
    S = betas.shape[0]
    L = obj.L
    assert L is not None  # one scalar term
    thetas = cp.factors(psis)[0][:, 0, 0]  # one scalar term: theta is its SD
    out = np.empty((S, L))
    order = np.argsort(thetas, kind="stable")
    for rows in np.array_split(order, min(n_anchors, S)):
        if rows.size == 0:
            continue
        th_a = float(thetas[rows].mean())
        b_a = betas[rows].mean(axis=0)
        u_a, H, du_dth, Jb = obj.scalar_mode_sensitivities(np.array([th_a]), b_a)
        u = (
            u_a[None, :]
            + (betas[rows] - b_a) @ Jb.T
            + np.outer(thetas[rows] - th_a, du_dth)
            + rng.standard_normal((rows.size, L)) / np.sqrt(H)[None, :]
        )
        out[rows] = u * thetas[rows, None]
    obj.reset()
    return out


def _grid_draws(
    post: _Posterior,
    mode: np.ndarray,
    H: np.ndarray,
    cov: np.ndarray,
    draws: int,
    rng: np.random.Generator,
    step: float,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, Grid]:
    """``(psi, beta)`` draws by INLA's grid strategy."""
    m = post.m
    psi0, beta0 = mode[:m], mode[m:]
    # d beta* / d psi from the joint Hessian (a warm start and the in-cell shift)
    B = -np.linalg.solve(H[m:, m:], H[m:, :m])

    def logdens(psi: np.ndarray, hint: Any) -> tuple[float, Any]:
        if hint is None:
            start = beta0 + B @ (psi - psi0)
        else:
            start = hint[1] + B @ (psi - hint[0])
        res = post.log_marginal(psi, start)
        if res is None:
            return -np.inf, hint
        lp, beta, Lc = res
        return lp, (psi.copy(), beta, Lc)

    grid = explore_grid(logdens, psi0, cov[:m, :m], step=step, threshold=threshold)
    ok = np.isfinite(grid.lp)
    point, z = sample_grid(grid, draws, rng)
    psis = grid.psi(z)
    pay = [grid.payload[i] if ok[i] else None for i in range(grid.lp.size)]
    k = post.k
    psi_pt = np.stack([p[0] if p is not None else psi0 for p in pay])
    beta_pt = np.stack([p[1] if p is not None else beta0 for p in pay])
    Linv_t = np.stack([np.linalg.inv(p[2]).T if p is not None else np.zeros((k, k)) for p in pay])
    eps = rng.standard_normal((draws, k))
    betas = (
        beta_pt[point] + (psis - psi_pt[point]) @ B.T + np.einsum("sij,sj->si", Linv_t[point], eps)
    )
    return psis, betas, grid


def _choose_nagq(design: Design, obj: LaplaceObjective) -> tuple[int, Any]:
    """Quadrature for integrating the random effects out, and the ML fit that decided it.

    Several random-effect terms: Laplace (nagq = 1).  One scalar term: 15-point adaptive
    Gauss-Hermite unless Laplace already agrees with it: one Newton step on the 15-node
    deviance from the Laplace ML estimate (with the Laplace Hessian) moves no fixed effect
    by more than 0.1 SE and the SD by less than 3%, as with many observations per group
    (hdp: the two ML fits differ by 0.02 SE and 2%); on toenail they differ by 2 SE and the
    quadrature is kept.  Laplace evaluations cost ~1/10 of 15-node ones.
    """
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
    strategy : {"auto", "grid", "gaussian"}
        How the covariance parameters are integrated over: INLA's grid or one Gaussian at
        the mode.  ``"auto"``: the grid for up to three covariance parameters.
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
        ``converged``, ``mode`` (``[psi, beta]``, ``beta`` on the user's scale) and timings.

    The approximation is computed on standardized fixed-effect columns
    (:mod:`bayesglmm.engines.scaling`) and reported on the user's scale.
    """
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
    design.family.check_engine("laplace")  # the family states the engines it does not fit
    t0 = time.perf_counter()
    # work on standardized fixed-effect columns (the slope priors mapped exactly), report on
    # the user's scale: the mode search, Hessians and grid are then scale-free
    std = standardization(design)
    design, priors = std.design(design), std.priors(priors, design)
    obj = LaplaceObjective(design)
    with ignoring_warnings():  # thread-safe (bayesglmm.quiet)
        if nagq is None:
            nagq, ml = _choose_nagq(design, obj)
        else:
            obj.check_nagq(nagq)
            ml = fit_ml(design, nagq=nagq)
    post = _Posterior(design, priors, obj, nagq)
    m = post.m
    if strategy == "auto":
        strategy = "grid" if m <= GRID_MAX_DIM else "gaussian"
    if strategy not in ("grid", "gaussian"):
        raise InferenceError(f"unknown strategy `{strategy}`; choose auto, grid or gaussian")
    start = np.concatenate([post.cp.from_theta(ml.theta), ml.beta])
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
            psis, betas, grid = _grid_draws(post, mode, H, cov, draws, rng, step, thr)
            info |= {
                "grid_points": int(np.isfinite(grid.lp).sum()),
                "grid_step": step,
                "grid_threshold": thr,
            }
        else:
            phis = rng.multivariate_normal(mode, cov, size=draws)
            psis, betas = phis[:, :m], phis[:, m:]
        t_grid = time.perf_counter()
        r_draws = _draw_ranef(obj, post.cp, psis, betas, rng)
    covs = post.cp.covariances(psis)
    betas = std.beta_to_user(betas)
    mode = np.concatenate([mode[:m], std.beta_to_user(mode[m:])])
    tree = draws_to_tree(
        design,
        betas,
        [[c[s] for c in covs] for s in range(draws)],
        [[r[s] for r in r_draws] for s in range(draws)],
    )
    info |= {
        "converged": converged,
        "nagq": nagq,
        "mode": mode.tolist(),
        "elapsed_mode": t_mode - t0,
        "elapsed_integration": t_grid - t_mode,
        "elapsed_ranef": time.perf_counter() - t_grid,
    }
    return tree, info
