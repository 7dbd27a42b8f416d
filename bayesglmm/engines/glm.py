"""Models without random-effect terms: the GLM, fitted exactly.

A formula such as ``y ~ x`` (no ``( | )`` term) has nothing to integrate over, so every
method reduces to a generalized linear model.  lme4's ``glmer``/``lmer`` refuse such a
formula; here it is fitted, because "why random effects?" is taught by comparing exactly
these two models, and every fit of one says so in a note (:data:`GLM_NOTE`).

Maximum likelihood (``method="ml"``, any ``nagq``) : IRLS
    Fisher scoring with step-halving on the deviance, as R's ``glm.fit``, iterated until
    the relative change of the deviance is below ``tol`` (glm's rule, with a far smaller
    tolerance), so the estimate is the exact MLE.  ``vcov`` is the inverse Fisher
    information at the estimate (``summary.glm``'s; the same as the observed information
    for canonical links).  Gaussian: ordinary least squares, ``sigma`` by ML
    (``sqrt(RSS / n)``, as ``lmer(REML = FALSE)`` and ``logLik.glm``) and
    ``vcov = sigma^2 (X'X)^-1`` with that ``sigma`` (``summary.glm`` divides by
    ``n - k`` instead, so its SEs are larger by ``sqrt(n / (n - k))``).  There is nothing
    for adaptive quadrature to integrate: ``nagq > 1`` gives the same (exact) fit, labelled
    ``agq<q>`` as asked, with a message that says so; its log-likelihood is the normalized
    one (glmer's ``nAGQ > 1`` convention, relative to the saturated model, is for GLMMs).
PQL (``method="pql"``)
    glmmPQL's iteration without random effects is IRLS, so the estimates are the MLE.  Its
    dispersion is the ML residual variance of the working model, ``phi = X^2 / n`` (the
    Pearson statistic over ``n``), and ``vcov = phi I^-1`` (``dispersion="fixed"``:
    ``phi = 1``); the log-likelihood is NaN, as for every PQL fit.
Bayesian Laplace (``method="laplace"``)
    The posterior of ``(beta[, log sigma])`` is approximated by the Gaussian at its mode,
    with the exact Hessian there (the log-likelihood's by central differences of its
    analytic gradient, the priors' by three-point differences).  With no random effects
    there is no integration step: this is the plain Laplace (normal) approximation of the
    posterior, exact for a gaussian model with flat priors on ``beta`` at given ``sigma``.
    Gaussian models are included (``sigma`` gets its prior and the ``log`` Jacobian).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.estimate import MLEstimate
from bayesglmm.engines.ml.pirls import FamilyKernel
from bayesglmm.errors import InferenceError
from bayesglmm.priors import PriorSet

__all__ = ["GLM_NOTE", "fit_glm_ml", "fit_glm_laplace", "glm_laplace_density"]

GLM_NOTE = (
    "no random-effect terms: fitted as a GLM (no groups, no variance components, "
    "nothing integrated out)"
)


def _start(design: Design, fam: FamilyKernel) -> np.ndarray:
    """Start values: the intercept at the link of the mean response, other columns 0."""
    beta = np.zeros(design.k)
    if "(Intercept)" in design.x_names:
        y = np.asarray(design.y, dtype=float)
        w = np.ones_like(y) if design.weights is None else np.asarray(design.weights, float)
        if design.family.is_binomial:
            n = 1.0 if design.trials is None else np.asarray(design.trials, dtype=float)
            m = float(np.clip(np.sum(w * y) / np.sum(w * n * np.ones_like(y)), 0.01, 0.99))
        else:
            m = max(float(design.row_mean(y)), 0.01)  # weighted as the rows count
        b0 = float(design.family.linkfun(np.array([m]))[0])
        if design.family.link == "log":  # an offset is a log exposure
            b0 -= float(np.mean(design.offset))
        beta[design.x_names.index("(Intercept)")] = b0
    return beta


def _solve_spd(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(H, g)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(H, g, rcond=None)[0]


def irls(
    design: Design, *, start: np.ndarray | None = None, tol: float = 1e-12, maxiter: int = 100
) -> tuple[np.ndarray, np.ndarray, float, int, bool]:
    """Fisher scoring for a non-gaussian GLM.

    Returns
    -------
    beta, fisher, loglik, n_iter, converged
        ``fisher`` is ``X' W X`` at ``beta``; ``loglik`` includes every constant.
    """
    fam = FamilyKernel(design.family, design.y, design.trials, weights=design.weights)
    X, off = np.asarray(design.X, dtype=float), np.asarray(design.offset, dtype=float)
    beta = _start(design, fam) if start is None else np.asarray(start, dtype=float).copy()

    def negll(b: np.ndarray) -> float:
        v = -float(np.sum(fam.ll(X @ b + off)))
        return v if np.isfinite(v) else np.inf

    f = negll(beta)
    if not np.isfinite(f):
        raise InferenceError("the GLM log-likelihood is not finite at the start values")
    converged = False
    it = 0
    for it in range(1, maxiter + 1):  # noqa: B007
        d1, w = fam.score(X @ beta + off)
        H = X.T @ (X * w[:, None])
        step = _solve_spd(H, X.T @ d1)
        t, f_new, b_new = 1.0, np.inf, beta
        while t > 1e-10:  # step-halving, as glm.fit when the deviance grows
            b_new = beta + t * step
            f_new = negll(b_new)
            if f_new <= f + 1e-13 * abs(f):
                break
            t *= 0.5
        if not np.isfinite(f_new) or f_new > f + 1e-13 * abs(f):
            converged = bool(np.max(np.abs(X.T @ d1)) < 1e-6 * max(1.0, abs(f)))
            break
        # glm.fit's rule, |dev - dev_old| / (|dev| + 0.1) < tol, with a far smaller tol: the
        # Newton step that met it leaves an error of its square (under separation the
        # deviance flattens while beta drifts, and the rule stops as glm's does)
        small = abs(f - f_new) / (abs(f_new) + 0.1) < tol
        beta, f = b_new, f_new
        if small:
            converged = True
            break
    _, w = fam.score(X @ beta + off)
    fisher = X.T @ (X * w[:, None])
    return beta, fisher, float(-f + fam.const), it, converged


def fit_glm_ml(
    design: Design,
    *,
    method: str = "ml",
    nagq: int = 1,
    start: dict | None = None,
    tol: float = 1e-12,
    maxiter: int = 100,
    dispersion: str = "estimate",
) -> MLEstimate:
    """Exact ML (or PQL) fit of a design without random-effect blocks.

    Parameters
    ----------
    design : Design
        With ``design.blocks == ()``.
    method : {"ml", "pql"}
        Label and conventions of the estimate (see the module docstring).
    nagq : int
        Accepted for ``method="ml"``; ``> 1`` changes nothing and adds a message.
    start : dict, optional
        ``{"beta": ...}`` start values.
    tol : float
        Relative deviance change that ends IRLS.
    maxiter : int
        IRLS iteration limit.
    dispersion : {"estimate", "fixed"}
        PQL only: ``phi = X^2 / n`` or 1.

    Returns
    -------
    MLEstimate
        ``theta`` empty, ``covariances``/``modes``/``cond_var`` empty tuples, ``nagq`` 1
        (ML) or 0 (PQL); :data:`GLM_NOTE` first among the messages.
    """
    if design.blocks:
        raise InferenceError("fit_glm_ml is for designs without random-effect terms")
    t0 = time.perf_counter()
    messages = [GLM_NOTE]
    if method == "ml" and int(nagq) > 1:
        messages.append(
            f"nAGQ = {int(nagq)} changes nothing: there are no random effects to integrate "
            "over, so the likelihood is exact (and reported normalized, not relative to the "
            "saturated model as glmer's nAGQ > 1 fits)"
        )
    X = np.asarray(design.X, dtype=float)
    y = np.asarray(design.y, dtype=float)
    n, k = design.n, design.k
    if n <= k:
        raise InferenceError(f"the GLM has {k} fixed effects but only {n} observations")
    hessian = None
    sigma: float | None = None
    phi: float | None = None
    family_dispersion: tuple = ()
    if method == "pql":  # the family states why not (negative binomial: glmmPQL's theta)
        design.family.check_engine("pql")
    if design.family.has_dispersion and not design.family.is_linear and method != "pql":
        # a free dispersion (negative binomial theta): [beta, log dispersion] jointly
        beta, vcov, loglik, family_dispersion, hessian, grad, n_iter, converged = (
            _glm_with_dispersion(design, tol, maxiter)
        )
        if not converged:
            messages.append("the GLM with a dispersion did not converge")
        if design.family.dispersion[0].name == "sigma":  # Student-t: its scale
            sigma = family_dispersion[0]
    elif design.family.is_linear:
        # precision weights (sigma^2 / w, as lm and lmer): weighted least squares; rows of
        # weight 0 do not count as observations
        w = np.ones(n) if design.weights is None else np.asarray(design.weights, float)
        sw = np.sqrt(w)
        n_eff = int(np.count_nonzero(w > 0))
        beta, *_ = np.linalg.lstsq(X * sw[:, None], sw * (y - design.offset), rcond=None)
        r = y - design.offset - X @ beta
        s2 = float(np.sum(w * r * r)) / n_eff
        if s2 <= 0.0:
            raise InferenceError("the gaussian GLM fits the data exactly (residual SD 0)")
        sigma = float(np.sqrt(s2))
        vcov = s2 * np.linalg.inv(X.T @ (X * w[:, None]))
        loglik = -0.5 * n_eff * (np.log(2.0 * np.pi * s2) + 1.0) + 0.5 * float(
            np.sum(np.log(w[w > 0]))
        )
        n_iter, converged, grad = 1, True, 0.0
    else:
        b0 = None if not start or "beta" not in start else np.asarray(start["beta"], float)
        beta, fisher, loglik, n_iter, converged = irls(design, start=b0, tol=tol, maxiter=maxiter)
        fam = FamilyKernel(design.family, design.y, design.trials, weights=design.weights)
        d1, _ = fam.score(X @ beta + design.offset)
        grad = float(np.max(np.abs(X.T @ d1))) if k else 0.0
        try:
            vcov = np.linalg.inv(fisher)
            if not np.all(np.isfinite(np.diag(vcov))) or np.any(np.diag(vcov) <= 0):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            vcov = np.full((k, k), np.nan)
            messages.append("the Fisher information is singular: standard errors are unavailable")
        hessian = 2.0 * fisher  # of the deviance, over [theta (none), beta]
        if not converged:
            messages.append(f"IRLS did not converge in {maxiter} iterations")
        if method == "pql":
            if dispersion == "fixed":
                phi = 1.0
            else:
                mu = design.family.linkinv(X @ beta + design.offset)
                if design.family.is_binomial:
                    nt = 1.0 if design.trials is None else np.asarray(design.trials, float)
                    p = np.clip(mu, 1e-12, 1 - 1e-12)
                    pearson = (y - nt * p) ** 2 / (nt * p * (1.0 - p))
                else:
                    pearson = (y - mu) ** 2 / np.maximum(design.family.variance(mu), 1e-300)
                if design.weights is not None:  # prior weights, as glm's Pearson residuals
                    pearson = pearson * np.asarray(design.weights, float)
                phi = float(np.sum(pearson) / n)
            vcov = phi * vcov
            sigma = float(np.sqrt(phi))
            messages.append(
                f"PQL dispersion phi = {phi:.4g} ({dispersion}); without random effects "
                "PQL is IRLS: the estimates are the GLM's MLE"
            )
            loglik = float("nan")
            hessian = None
    vcov = 0.5 * (vcov + vcov.T)
    return MLEstimate(
        method=method,
        nagq=max(int(nagq), 1) if method == "ml" else 0,
        beta=np.asarray(beta, dtype=float),
        vcov_beta=vcov,
        theta=np.zeros(0),
        covariances=(),
        sigma=sigma,
        loglik=float(loglik),
        modes=(),
        cond_var=(),
        converged=bool(converged),
        grad_norm=float(grad),
        n_iter=int(n_iter),
        singular=False,
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=float(loglik),
        dispersion=phi,
        hessian=hessian,
        n_obs=n,
        family_dispersion=family_dispersion,
    )


def _glm_with_dispersion(design: Design, tol: float, maxiter: int) -> tuple:
    """ML of a GLM whose family has dispersion parameters (negative binomial ``theta``):
    L-BFGS over ``[beta, log dispersion]`` from the IRLS fit at the starting dispersion, then
    Newton steps with a finite-difference Hessian (analytic score in ``beta``, central
    differences in the log dispersion).  Standard errors as ``MASS::glm.nb``'s.

    Returns ``(beta, vcov_beta, loglik, dispersion, deviance Hessian, max|grad|, iterations,
    converged)``.
    """
    fam = design.family
    X = np.asarray(design.X, dtype=float)
    y = np.asarray(design.y, dtype=float)
    k, m = design.k, len(fam.dispersion)
    kern = FamilyKernel(fam, y, design.trials, weights=design.weights)
    beta0 = irls(design, tol=tol, maxiter=maxiter)[0]
    mu0 = fam.linkinv(X @ beta0 + design.offset)
    disp0 = fam.spec.dispersion_start(y, mu0)
    x0 = np.concatenate(
        [beta0, [float(d.to_unconstrained(v)) for d, v in zip(fam.dispersion, disp0, strict=True)]]
    )

    def nll(x: np.ndarray) -> float:
        disp = [float(d.from_unconstrained(v)) for d, v in zip(fam.dispersion, x[k:], strict=True)]
        kern.set_dispersion(np.asarray(disp))  # one value, or the family's tuple (t: sigma, nu)
        with np.errstate(all="ignore"):
            v = -(float(np.sum(kern.ll(X @ x[:k] + design.offset))) + kern.const)
        return v if np.isfinite(v) else 1e300

    def grad(x: np.ndarray) -> np.ndarray:
        disp = [float(d.from_unconstrained(v)) for d, v in zip(fam.dispersion, x[k:], strict=True)]
        kern.set_dispersion(np.asarray(disp))
        d1, _ = kern.score(X @ x[:k] + design.offset)
        g = np.empty(k + m)
        g[:k] = -(X.T @ d1)
        for i in range(m):
            h = 1e-6 * max(1.0, abs(x[k + i]))
            xp, xm = x.copy(), x.copy()
            xp[k + i] += h
            xm[k + i] -= h
            g[k + i] = (nll(xp) - nll(xm)) / (2 * h)
        return g

    def hess(x: np.ndarray) -> np.ndarray:
        g0 = grad(x)
        H = np.empty((k + m, k + m))
        for i in range(k + m):
            h = 1e-5 * max(1.0, abs(x[i]))
            xp = x.copy()
            xp[i] += h
            H[i] = (grad(xp) - g0) / h
        return 0.5 * (H + H.T)

    res = optimize.minimize(
        nll, x0, jac=grad, method="L-BFGS-B", options={"maxiter": 10 * maxiter, "ftol": 1e-15}
    )
    x = res.x
    n_iter = int(res.nit)
    for _ in range(20):  # Newton polish
        g = grad(x)
        if np.max(np.abs(g)) < 1e-8:
            break
        step = np.linalg.solve(hess(x), g)
        t = 1.0
        while nll(x - t * step) > nll(x) + 1e-12 and t > 1e-4:
            t /= 2.0
        x = x - t * step
        n_iter += 1
    g = grad(x)
    H = hess(x)
    gmax = float(np.max(np.abs(g)))
    kern.set_dispersion(
        np.asarray(
            [float(d.from_unconstrained(v)) for d, v in zip(fam.dispersion, x[k:], strict=True)]
        )
    )
    try:
        if fam.spec.dispersion_orthogonal:
            # beta and the dispersion are orthogonal (negative binomial): the standard errors
            # of glm.nb, the Fisher information in beta at the estimated dispersion
            _, w = kern.score(X @ x[:k] + design.offset)
            vcov = np.linalg.inv(X.T @ (X * w[:, None]))
        else:  # Beta (statsmodels' BetaModel), Student-t: the joint observed information
            vcov = np.linalg.inv(H)[:k, :k]
    except np.linalg.LinAlgError:
        vcov = np.full((k, k), np.nan)
    disp = tuple(float(d.from_unconstrained(v)) for d, v in zip(fam.dispersion, x[k:], strict=True))
    return x[:k].copy(), vcov, -nll(x), disp, 2.0 * H, gmax, n_iter, gmax < 1e-3


# ---------------------------------------------------------------------------- Bayesian Laplace
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
    xs = rng.multivariate_normal(mode, cov, size=int(draws), method="cholesky")
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
