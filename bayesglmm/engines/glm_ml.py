"""A model without random effects fitted by maximum likelihood or PQL: exact IRLS.

See :mod:`bayesglmm.engines.glm` for why such models are fitted at all.

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
    A family with a free dispersion (negative binomial, gamma, Beta, Student-t)
    is fitted over ``[beta, log dispersion]`` jointly.
PQL (``method="pql"``)
    glmmPQL's iteration without random effects is IRLS, so the estimates are the MLE.  Its
    dispersion is the ML residual variance of the working model, ``phi = X^2 / n`` (the
    Pearson statistic over ``n``), and ``vcov = phi I^-1`` (``dispersion="fixed"``:
    ``phi = 1``); the log-likelihood is NaN, as for every PQL fit.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import optimize

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.estimate import MLEstimate
from bayesglmm.engines.ml.pirls import FamilyKernel
from bayesglmm.errors import InferenceError

__all__ = ["GLM_NOTE", "fit_glm_ml", "irls"]

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
