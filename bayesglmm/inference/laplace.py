"""Maximum likelihood by Laplace approximation and adaptive Gauss-Hermite quadrature
(lme4's ``glmer(nAGQ = 1)`` and ``glmer(nAGQ = Q)``).

The random effects are ``b = Lambda(theta) u`` with ``u ~ N(0, I)``; ``theta`` holds, per
block, the column-major lower-triangular elements of the Cholesky factor of that block's
covariance (lme4's parameterization; diagonal elements bounded below by 0, so variances may
reach 0).  For given ``(theta, beta)`` the conditional mode ``u*`` maximizes the penalized
log-likelihood, found by Newton / Fisher scoring (penalized IRLS) warm-started from the
previous call.  The Laplace deviance is

    -2 log L ~= -2 sum_i log f(y_i | eta_i*) + |u*|^2 + log det(A' W A + I),

with ``A = Z Lambda`` and Fisher weights ``W`` (as lme4).  The structure is used:

* one scalar random-effect term (a random intercept, say): ``A' W A + I`` is diagonal, kept
  as a vector; every per-group sum is a ``np.bincount`` (no loop over rows or groups);
* anything else (random slopes, crossed or nested factors): ``A`` is a SciPy sparse matrix
  built from the integer group indexes (never a dense n x levels matrix) and
  ``A' W A + I`` is factorized by sparse LU (SciPy's SuperLU; scikit-sparse/CHOLMOD is not
  required, so the package installs from PyPI wheels only).

AGQ (``nagq > 1``) needs exactly one scalar random-effect term: each group's integral uses
``Q`` Gauss-Hermite nodes centred at its conditional mode and scaled by its curvature; at
``Q = 1`` it is the Laplace deviance exactly.  The outer optimization over ``(theta, beta)``
is L-BFGS-B with central-difference gradients; standard errors come from the
finite-difference Hessian of the deviance over ``(theta, beta)``, as lme4 computes them.

lme4 quirk reproduced: for ``nAGQ > 1`` glmer reports the log-likelihood relative to the
saturated model's (it sums deviance residuals); for Bernoulli data the two coincide, for
Poisson and binomial-with-trials they differ by a constant.  ``MLEstimate.loglik`` follows
glmer; ``loglik_normalized`` is the properly normalized value.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import linalg as splinalg
from scipy.special import gammaln, logsumexp, xlogy

from bayesglmm.design_types import Design
from bayesglmm.errors import ConvergenceWarning, IdentifiabilityWarning, InferenceError
from bayesglmm.inference.ml_types import MLEstimate

__all__ = ["LaplaceObjective", "fit_ml", "saturated_loglik"]


def saturated_loglik(design: Design) -> float:
    """Log-likelihood of the saturated model (0 for Bernoulli data)."""
    y = design.y
    fam = design.family.name
    if fam == "poisson":
        return float((xlogy(y, y) - y - gammaln(y + 1)).sum())
    if fam == "binomial" and design.trials is not None:
        n = design.trials
        lc = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
        return float((xlogy(y, y / n) + xlogy(n - y, (n - y) / n) + lc).sum())
    return 0.0


class LaplaceObjective:
    """Laplace / AGQ deviance of a GLMM as a function of ``(theta, beta[, log sigma])``.

    Parameters
    ----------
    design : Design

    Notes
    -----
    ``deviance(params, nagq)`` returns ``-2 log L``; the conditional modes of the last call
    are kept in ``self.u`` and used as the next start (warm start).
    """

    def __init__(self, design: Design) -> None:
        self.d = design
        self.fam = design.family
        self.gauss = self.fam.has_dispersion
        blocks = design.blocks
        if not blocks:
            raise InferenceError("the model has no random-effect terms; fit a GLM instead")
        self.layout: list[tuple[int, int, bool]] = []  # (theta start, p, correlated)
        pos = 0
        for b in blocks:
            p = b.n_terms
            m = p * (p + 1) // 2 if b.correlated else p
            self.layout.append((pos, p, b.correlated))
            pos += m
        self.n_theta = pos
        self.k = design.k
        self.n_params = self.n_theta + self.k + (1 if self.gauss else 0)
        lower = []
        for _, p, corr in self.layout:
            if corr:
                lower += [0.0 if i == j else -np.inf for j in range(p) for i in range(j, p)]
            else:
                lower += [0.0] * p
        self.lower = np.array(lower + [-np.inf] * (self.k + (1 if self.gauss else 0)))
        self.scalar = len(blocks) == 1 and blocks[0].n_terms == 1
        self.q = sum(b.n_levels * b.n_terms for b in blocks)
        self.u = np.zeros(self.q)
        if self.scalar:
            b = blocks[0]
            self.idx = b.index
            self.z = b.Z[:, 0]
            self.L = b.n_levels
        else:
            rows, cols, vals = [], [], []
            off = 0
            for b in blocks:
                for j in range(b.n_terms):
                    rows.append(np.arange(design.n))
                    cols.append(off + b.index * b.n_terms + j)
                    vals.append(b.Z[:, j])
                off += b.n_levels * b.n_terms
            self.Zs = sparse.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(design.n, self.q),
            )

    # ------------------------------------------------------------------ parameters
    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(theta, beta, sigma) from the flat parameter vector."""
        theta = params[: self.n_theta]
        beta = params[self.n_theta : self.n_theta + self.k]
        sigma = float(np.exp(params[-1])) if self.gauss else 1.0
        return theta, beta, sigma

    def chol_factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-block lower-triangular Cholesky factors of the covariances."""
        out = []
        for start, p, corr in self.layout:
            L = np.zeros((p, p))
            if corr:
                L[np.tril_indices(p)[1], np.tril_indices(p)[0]] = 0  # placeholder
                k = start
                for j in range(p):
                    for i in range(j, p):
                        L[i, j] = theta[k]
                        k += 1
            else:
                L[np.diag_indices(p)] = theta[start : start + p]
            out.append(L)
        return out

    def _lambda(self, theta: np.ndarray) -> Any:
        mats = [
            sparse.kron(sparse.identity(b.n_levels, format="csr"), sparse.csr_matrix(L))
            for b, L in zip(self.d.blocks, self.chol_factors(theta), strict=True)
        ]
        return sparse.block_diag(mats, format="csr")

    # ------------------------------------------------------------------ inner problem
    def _loglik_rows(self, eta: np.ndarray, sigma: float) -> np.ndarray:
        return self.fam.loglik(self.d.y, eta, self.d.trials, sigma)

    def mode(self, theta: np.ndarray, beta: np.ndarray, sigma: float = 1.0) -> dict[str, Any]:
        """Conditional mode u* and the curvature at it, for fixed (theta, beta)."""
        d = self.d
        eta0 = d.X @ beta + d.offset
        u = self.u.copy()
        s2 = sigma * sigma
        if self.scalar:
            lam = float(theta[0])
            zl = self.z * lam

            def eta_of(u: np.ndarray) -> np.ndarray:
                return eta0 + zl * u[self.idx]

            def penalized(u: np.ndarray) -> float:
                return float(-self._loglik_rows(eta_of(u), sigma).sum() + 0.5 * u @ u)

            f = penalized(u)
            for _ in range(100):
                eta = eta_of(u)
                d1, w = self.fam.score_weights(d.y, eta, d.trials)
                if self.gauss:
                    d1, w = d1 / s2, w / s2
                grad = np.bincount(self.idx, weights=zl * d1, minlength=self.L) - u
                h = np.bincount(self.idx, weights=zl * zl * w, minlength=self.L) + 1.0
                step = grad / h
                t = 1.0
                while True:
                    u_new = u + t * step
                    f_new = penalized(u_new)
                    if f_new <= f + 1e-12 or t < 1e-8:
                        break
                    t *= 0.5
                done = abs(f - f_new) < 1e-11 * (1 + abs(f)) and np.max(np.abs(t * step)) < 1e-7
                u, f = u_new, f_new
                if done:
                    break
            eta = eta_of(u)
            _, w = self.fam.score_weights(d.y, eta, d.trials)
            if self.gauss:
                w = w / s2
            h = np.bincount(self.idx, weights=zl * zl * w, minlength=self.L) + 1.0
            self.u = u
            return {"u": u, "eta": eta, "h": h, "logdet": float(np.log(h).sum()), "lam": lam}
        A = (self.Zs @ self._lambda(theta)).tocsr()
        eye = sparse.identity(self.q, format="csc")

        def penalized(u: np.ndarray) -> float:
            return float(-self._loglik_rows(eta0 + A @ u, sigma).sum() + 0.5 * u @ u)

        f = penalized(u)
        for _ in range(100):
            eta = eta0 + A @ u
            d1, w = self.fam.score_weights(d.y, eta, d.trials)
            if self.gauss:
                d1, w = d1 / s2, w / s2
            grad = A.T @ d1 - u
            H = (A.T @ A.multiply(w[:, None])).tocsc() + eye
            step = splinalg.spsolve(H, grad)
            t = 1.0
            while True:
                u_new = u + t * step
                f_new = penalized(u_new)
                if f_new <= f + 1e-12 or t < 1e-8:
                    break
                t *= 0.5
            done = abs(f - f_new) < 1e-11 * (1 + abs(f)) and np.max(np.abs(t * step)) < 1e-7
            u, f = u_new, f_new
            if done:
                break
        eta = eta0 + A @ u
        _, w = self.fam.score_weights(d.y, eta, d.trials)
        if self.gauss:
            w = w / s2
        H = (A.T @ A.multiply(w[:, None])).tocsc() + eye
        lu = splinalg.splu(H)
        logdet = float(np.log(np.abs(lu.U.diagonal())).sum())
        self.u = u
        return {"u": u, "eta": eta, "H": H, "lu": lu, "logdet": logdet, "A": A}

    # ------------------------------------------------------------------ deviance
    def deviance(self, params: np.ndarray, nagq: int = 1) -> float:
        """``-2 log L`` by Laplace (``nagq=1``) or adaptive Gauss-Hermite quadrature."""
        theta, beta, sigma = self.split(np.asarray(params, dtype=float))
        m = self.mode(theta, beta, sigma)
        u = m["u"]
        if nagq == 1:
            ll = self._loglik_rows(m["eta"], sigma).sum()
            dev = float(-2.0 * ll + u @ u + m["logdet"])
        else:
            dev = self._agq_deviance(m, beta, sigma, nagq)
        return dev if np.isfinite(dev) else 1e300

    def _agq_deviance(self, m: dict[str, Any], beta: np.ndarray, sigma: float, nagq: int) -> float:
        d = self.d
        x, w = np.polynomial.hermite_e.hermegauss(nagq)
        logw = np.log(w / w.sum())
        eta0 = d.X @ beta + d.offset
        zl = self.z * m["lam"]
        sd = 1.0 / np.sqrt(m["h"])
        terms = np.empty((nagq, self.L))
        for k in range(nagq):  # loop over the Q nodes only; groups and rows are vectorized
            uk = m["u"] + x[k] * sd
            ll = np.bincount(
                self.idx,
                weights=self._loglik_rows(eta0 + zl * uk[self.idx], sigma),
                minlength=self.L,
            )
            terms[k] = logw[k] + ll - 0.5 * uk * uk + 0.5 * x[k] ** 2
        log_int = logsumexp(terms, axis=0) + np.log(sd)
        return float(-2.0 * log_int.sum())

    def cond_var(self, params: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """Conditional modes b* and conditional covariances Var(b | y) per block."""
        theta, beta, sigma = self.split(params)
        m = self.mode(theta, beta, sigma)
        if self.scalar:
            b = self.d.blocks[0]
            lam = m["lam"]
            return ((lam * m["u"])[:, None],), ((lam * lam / m["h"])[:, None, None],)
        Ls = self.chol_factors(theta)
        modes, cvs = [], []
        off = 0
        lu = m["lu"]
        for b, L in zip(self.d.blocks, Ls, strict=True):
            p, nl = b.n_terms, b.n_levels
            u = m["u"][off : off + nl * p].reshape(nl, p)
            modes.append(u @ L.T)
            cv = np.empty((nl, p, p))
            chunk = max(1, 2000 // p)
            for s in range(0, nl, chunk):  # columns of H^-1 in chunks of levels
                e = min(nl, s + chunk)
                cols = np.arange(off + s * p, off + e * p)
                E = np.zeros((self.q, cols.size))
                E[cols, np.arange(cols.size)] = 1.0
                Hinv = lu.solve(E)[cols].reshape(e - s, p, e - s, p)
                blocks = Hinv[np.arange(e - s), :, np.arange(e - s), :]
                cv[s:e] = np.einsum("ij,ljk,mk->lim", L, blocks, L)
            cvs.append(cv)
            off += nl * p
        return tuple(modes), tuple(cvs)


def _glm_start(design: Design) -> np.ndarray:
    """Fixed-effect start values: a GLM fit without random effects (IRLS, deterministic)."""
    d = design
    fam = d.family
    beta = np.zeros(d.k)
    if "(Intercept)" in d.x_names and fam.name != "gaussian":
        n = d.trials if d.trials is not None else 1.0
        mean = np.clip(np.mean(d.y / n), 0.01, 0.99) if fam.is_binomial else max(np.mean(d.y), 0.01)
        beta[d.x_names.index("(Intercept)")] = float(fam.linkfun(np.array([mean]))[0])
    for _ in range(25):
        eta = d.X @ beta + d.offset
        d1, w = fam.score_weights(d.y, eta, d.trials)
        H = d.X.T @ (d.X * w[:, None]) + 1e-8 * np.eye(d.k)
        step = np.linalg.solve(H, d.X.T @ d1)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def _num_grad(f: Any, x: np.ndarray, lower: np.ndarray, h: float = 1e-5) -> np.ndarray:
    g = np.empty_like(x)
    for i in range(x.size):
        step = h * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += step
        if x[i] - step < lower[i]:  # one-sided at the boundary
            g[i] = (f(xp) - f(x)) / step
            continue
        xm[i] -= step
        g[i] = (f(xp) - f(xm)) / (2 * step)
    return g


def _num_hessian(f: Any, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    n = x.size
    H = np.empty((n, n))
    steps = h * np.maximum(1.0, np.abs(x))
    f0 = f(x)
    for i in range(n):
        for j in range(i, n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = steps[i]
            ej[j] = steps[j]
            if i == j:
                H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / steps[i] ** 2
            else:
                H[i, j] = H[j, i] = (
                    f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
                ) / (4 * steps[i] * steps[j])
    return H


def _newton_polish(f: Any, x: np.ndarray, lower: np.ndarray, iters: int = 8) -> np.ndarray:
    """Newton steps on the free coordinates with the FD Hessian: quasi-Newton methods stop
    early on badly scaled problems (hdp: age in years), Newton does not care about scale."""
    fx = f(x)
    for _ in range(iters):
        g = _num_grad(f, x, lower)
        free = ~((x <= lower + 1e-10) & (g > 0))
        if not free.any() or np.max(np.abs(g[free])) < 1e-6:
            break
        idx = np.flatnonzero(free)
        H = _num_hessian(lambda z: f(_put(x, idx, z)), x[idx])
        try:
            step = -np.linalg.solve(H, g[idx])
        except np.linalg.LinAlgError:
            break
        if g[idx] @ step >= 0:  # not a descent direction (indefinite Hessian)
            break
        t = 1.0
        while t > 1e-4:
            cand = _put(x, idx, np.maximum(x[idx] + t * step, lower[idx]))
            fc = f(cand)
            if fc < fx:
                x, fx = cand, fc
                break
            t *= 0.5
        else:
            break
    return x


def _put(x: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[idx] = vals
    return out


def fit_ml(
    design: Design,
    nagq: int = 1,
    *,
    start: np.ndarray | None = None,
    tol: float = 1e-8,
    maxiter: int = 500,
) -> MLEstimate:
    """Maximum-likelihood fit by Laplace (``nagq=1``) or adaptive Gauss-Hermite quadrature.

    Parameters
    ----------
    design : Design
    nagq : int
        Quadrature points; ``> 1`` needs exactly one scalar random-effect term.
    start : array, optional
        Start ``(theta, beta[, log sigma])``; default ``theta = 1`` and a GLM fit for beta.
    tol : float
        Relative function tolerance of the outer optimizer.
    maxiter : int

    Returns
    -------
    MLEstimate
    """
    t0 = time.perf_counter()
    nagq = int(nagq)
    if nagq < 1:
        raise InferenceError(f"nagq must be >= 1, got {nagq}")
    if nagq > 1 and not (len(design.blocks) == 1 and design.blocks[0].n_terms == 1):
        terms = ", ".join(b.name for b in design.blocks)
        raise InferenceError(
            f"nagq > 1 needs exactly one scalar random-effect term; this model has: {terms}"
        )
    obj = LaplaceObjective(design)
    if start is None:
        theta0 = []
        for _, p, corr in obj.layout:
            theta0 += (
                [1.0 if i == j else 0.0 for j in range(p) for i in range(j, p)]
                if corr
                else [1.0] * p
            )
        x0 = np.concatenate([theta0, _glm_start(design)])
        if obj.gauss:
            x0 = np.append(x0, np.log(np.std(design.y) or 1.0))
            x0[: obj.n_theta] *= np.std(design.y) or 1.0
    else:
        x0 = np.asarray(start, dtype=float)

    def f(x: np.ndarray) -> float:
        return obj.deviance(x, nagq)

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in obj.lower]
    res = optimize.minimize(
        f,
        x0,
        jac=lambda x: _num_grad(f, x, obj.lower),
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-6},
    )
    x = _newton_polish(f, res.x, obj.lower)
    dev = f(x)
    grad = _num_grad(f, x, obj.lower)
    free = ~((x <= obj.lower + 1e-8) & (grad > 0))
    grad_norm = float(np.max(np.abs(grad[free]))) if free.any() else 0.0
    converged = bool(res.success or grad_norm < 1e-3)
    messages: list[str] = []
    # standard errors: finite-difference Hessian of the deviance over (theta, beta)
    H = _num_hessian(f, x)
    try:
        vcov_all = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        vcov_all = np.full_like(H, np.nan)
    kb = slice(obj.n_theta, obj.n_theta + obj.k)
    vcov_beta = vcov_all[kb, kb]
    if not np.isfinite(vcov_beta).all() or np.any(np.diag(vcov_beta) <= 0):
        # at a boundary the joint Hessian can be indefinite: use the beta block alone
        vcov_beta = 2.0 * np.linalg.pinv(H[kb, kb])
    theta, beta, sigma = obj.split(x)
    Ls = obj.chol_factors(theta)
    covs = tuple(L @ L.T for L in Ls)
    singular = any(np.min(np.abs(np.diag(L))) < 1e-4 * max(1.0, np.max(np.abs(L))) for L in Ls)
    if singular:
        messages.append("boundary (singular) fit: a random-effect variance is 0")
        warnings.warn(
            "boundary (singular) fit: a random-effect variance is estimated as 0; "
            "simplify the random-effect structure",
            ConvergenceWarning,
            stacklevel=3,
        )
    if not converged:
        messages.append(f"optimizer did not converge: gradient norm {grad_norm:.2g}")
        warnings.warn(
            f"the ML optimizer did not converge (max |gradient| {grad_norm:.2g}); rescale the "
            "predictors or simplify the model",
            ConvergenceWarning,
            stacklevel=3,
        )
    se = np.sqrt(np.maximum(np.diag(vcov_beta), 0))
    if np.any(np.abs(beta) > 15) or np.any(se > 50):
        messages.append("estimates are unreliable: (quasi-)complete separation")
        warnings.warn(
            "estimates are unreliable: (quasi-)complete separation (huge coefficients or "
            "standard errors); a Bayesian fit with the default priors stays proper",
            IdentifiabilityWarning,
            stacklevel=3,
        )
    modes, cond_var = obj.cond_var(x)
    loglik_true = -0.5 * dev
    loglik = loglik_true
    if nagq > 1:
        sat = saturated_loglik(design)
        if sat != 0.0:
            loglik = loglik_true - sat
            messages.append(
                f"logLik for nAGQ > 1 is reported as glmer does, relative to the saturated "
                f"model; the normalized value is {loglik_true:.4f}"
            )
    theta_out = theta.copy()
    return MLEstimate(
        method="ml",
        nagq=nagq,
        beta=beta.copy(),
        vcov_beta=vcov_beta,
        theta=theta_out,
        covariances=covs,
        sigma=sigma if obj.gauss else None,
        loglik=float(loglik),
        modes=modes,
        cond_var=cond_var,
        converged=converged,
        grad_norm=grad_norm,
        n_iter=int(res.nit),
        singular=bool(singular),
        messages=tuple(messages),
        elapsed=time.perf_counter() - t0,
        loglik_normalized=float(loglik_true),
    )
