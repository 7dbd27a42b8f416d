"""A fused log-density and gradient of the GLMM posterior, for the Rust NUTS sampler.

PyMC's own NUTS spends most of its time in Python (tree building) and PyTensor call
overhead; nutpie's Rust NUTS is ~5x faster per draw but compiling a PyMC model for it takes
15-20 s, more than sampling a course model.  For the model family this package builds
(random effects non-centred or centred, uncorrelated or with an LKJ Cholesky covariance,
canonical links) the log density is simple
enough to write once as a single Numba kernel: one pass over the rows for the linear
predictor, the likelihood and its derivative, one scatter per random-effect term.  It is
compiled once per machine (``cache=True``), releases the GIL (``nogil=True``) so chains run
in parallel threads, and takes the data as arguments, so refits with a new response reuse it
with no compile step at all.

The kernel evaluates exactly the density of :func:`bayesglmm.engines.bayes.pymc_model.build_pymc_model`
(constants included) on PyMC's unconstrained value variables, in PyMC's order;
``tests/test_nuts_kernel.py`` checks value and gradient against PyMC's compiled ``logp`` /
``dlogp`` for every family and prior, in both parameterizations.  Models outside its
scope (probit/cloglog links, priors it does not know) use PyMC's sampler instead.
"""

from __future__ import annotations

import inspect
import math

import numba
import numpy as np

from bayesglmm.engines.bayes.kernel_args import KernelArgs
from bayesglmm.engines.bayes.row_dispatch import family_rows

__all__ = ["logp_and_grad"]

_LOG_2PI = math.log(2.0 * math.pi)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _prior_logp_grad(code: int, a: float, b: float, c: float, v: float) -> tuple[float, float]:
    """Log density and its derivative at ``v`` for one prior (PyMC's parameterization)."""
    if code == 0:  # Normal(mu=a, sigma=b)
        t = (v - a) / b
        return -0.5 * t * t - math.log(b) - 0.5 * _LOG_2PI, -t / b
    if code == 1 or code == 4:  # StudentT(nu=a, mu=b, sigma=c) / HalfStudentT(nu=a, sigma=b)
        nu = a
        mu, s = (b, c) if code == 1 else (0.0, b)
        t = (v - mu) / s
        lp = (
            math.lgamma(0.5 * (nu + 1.0))
            - math.lgamma(0.5 * nu)
            - 0.5 * math.log(nu * math.pi)
            - math.log(s)
            - 0.5 * (nu + 1.0) * math.log1p(t * t / nu)
        )
        d = -(nu + 1.0) * t / (s * (nu + t * t))
        if code == 4:
            lp += math.log(2.0)
        return lp, d
    if code == 2 or code == 5:  # Cauchy(alpha=a, beta=b) / HalfCauchy(beta=a)
        loc, s = (a, b) if code == 2 else (0.0, a)
        t = (v - loc) / s
        lp = -math.log(math.pi * s) - math.log1p(t * t)
        if code == 5:
            lp += math.log(2.0)
        return lp, -2.0 * t / (s * (1.0 + t * t))
    if code == 3:  # HalfNormal(sigma=a)
        t = v / a
        return math.log(2.0) - 0.5 * t * t - math.log(a) - 0.5 * _LOG_2PI, -t / a
    if code == 6:  # Exponential(lam=a)
        return math.log(a) - a * v, -a
    # Gamma(alpha=a, beta=b)
    return a * math.log(b) - math.lgamma(a) + (a - 1.0) * math.log(v) - b * v, (a - 1.0) / v - b


@numba.njit(nogil=True, cache=True, error_model="numpy")
def logp_and_grad(
    x: np.ndarray,
    X: np.ndarray,
    xmean: np.ndarray,
    offset: np.ndarray,
    y: np.ndarray,
    trials: np.ndarray,
    family: int,
    const: float,
    beta_off: int,
    ic_off: int,
    Z: np.ndarray,
    idx: np.ndarray,
    sd_off: np.ndarray,
    z_off: np.ndarray,
    nterm: np.ndarray,
    nlev: np.ndarray,
    zcol: np.ndarray,
    bcorr: np.ndarray,
    bcent: np.ndarray,
    csd_code: np.ndarray,
    csd_a: np.ndarray,
    csd_b: np.ndarray,
    csd_c: np.ndarray,
    lkj_eta: np.ndarray,
    sigma_off: int,
    ndisp: int,
    pr_pos: np.ndarray,
    pr_code: np.ndarray,
    pr_a: np.ndarray,
    pr_b: np.ndarray,
    pr_c: np.ndarray,
    pr_log: np.ndarray,
    zunit: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Log posterior density (constants included) and its gradient at ``x``.

    ``Z`` holds the columns divided by ``zunit`` (their units, for correlated blocks), and a
    correlated block's factor ``L`` is for those columns.  Non-centred, ``r = L z`` is on
    that scale; centred, the parameters are the user's-scale effects ``r_user`` (as PyMC's
    ``r_<L>``), ``r = unit * r_user``, whose density carries the Jacobian ``prod unit``.
    """
    n, k = X.shape
    grad = np.zeros_like(x)
    lp = const
    # linear predictor: offset + intercept at centred predictors + X beta + sum Z * r[idx]
    shift = x[ic_off] if ic_off >= 0 else 0.0
    for j in range(k):
        shift -= xmean[j] * x[beta_off + j]
    eta = np.empty(n)
    for i in range(n):
        e = offset[i] + shift
        for j in range(k):
            e += X[i, j] * x[beta_off + j]
        eta[i] = e
    nb = sd_off.shape[0]
    # random effects r = z L' per block (L = diag(sd) for an uncorrelated block, else the
    # covariance Cholesky factor), stored flat at rbase[bl]
    mmax = 1
    rsize = 0
    for bl in range(nb):
        mmax = max(mmax, nterm[bl])
        rsize += nlev[bl] * nterm[bl]
    Ls = np.zeros((nb, mmax, mmax))
    r = np.empty(rsize)
    rbase = np.empty(nb, dtype=np.int64)
    pos = 0
    for bl in range(nb):
        m = nterm[bl]
        rbase[bl] = pos
        p = sd_off[bl]
        if bcorr[bl] == 1:
            for a in range(m):
                for b in range(a + 1):
                    Ls[bl, a, b] = math.exp(x[p]) if a == b else x[p]
                    p += 1
        else:
            for a in range(m):
                Ls[bl, a, a] = math.exp(x[p + a])
        zo = z_off[bl]
        if bcent[bl] == 1:  # the random effects are the parameters (user's scale)
            for j in range(nlev[bl] * m):
                r[pos + j] = x[zo + j] * zunit[zcol[bl] + j % m]
        else:  # r = L z
            for lev in range(nlev[bl]):
                for a in range(m):
                    acc_r = 0.0
                    for b in range(a + 1):
                        acc_r += Ls[bl, a, b] * x[zo + lev * m + b]
                    r[pos + lev * m + a] = acc_r
        pos += nlev[bl] * m
    for bl in range(nb):
        m = nterm[bl]
        for t in range(m):
            c = zcol[bl] + t
            rb = rbase[bl] + t
            for i in range(n):
                eta[i] += Z[i, c] * r[rb + idx[i, bl] * m]
    # likelihood and d loglik / d eta: the family's row kernel (row_dispatch.py)
    geta = np.empty(n)
    d0 = x[sigma_off] if sigma_off >= 0 else 0.0
    d1 = x[sigma_off + 1] if ndisp > 1 else 0.0
    ll, g0, g1 = family_rows(family, d0, d1, y, trials, eta, geta)
    lp += ll
    if sigma_off >= 0:
        grad[sigma_off] += g0
    if ndisp > 1:
        grad[sigma_off + 1] += g1
    # gradient: fixed effects
    total = 0.0
    for i in range(n):
        total += geta[i]
    if ic_off >= 0:
        grad[ic_off] += total
    for j in range(k):
        s = -xmean[j] * total
        for i in range(n):
            s += X[i, j] * geta[i]
        grad[beta_off + j] += s
    # gradient: random effects (z) and log sd; z ~ N(0, 1)
    for bl in range(nb):
        m = nterm[bl]
        nl = nlev[bl]
        zo = z_off[bl]
        # acc[lev, t] = d loglik / d r[lev, t]
        acc = np.zeros((nl, m))
        for t in range(m):
            c = zcol[bl] + t
            for i in range(n):
                acc[idx[i, bl], t] += Z[i, c] * geta[i]
        GL = np.zeros((m, m))  # d logp / d L (lower triangle)
        if bcent[bl] == 1:
            # r_lev ~ N(0, L L'): with u = L^-1 r and v = L'^-1 u, the log density is
            # -|u|^2 / 2 - sum log L_aa - m log(2 pi) / 2, d/dr = -v, d/dL = v u'
            u = np.empty(m)
            v = np.empty(m)
            for lev in range(nl):
                base = zo + lev * m
                for a in range(m):  # forward substitution L u = r (r = unit * r_user)
                    s = x[base + a] * zunit[zcol[bl] + a]
                    for b in range(a):
                        s -= Ls[bl, a, b] * u[b]
                    u[a] = s / Ls[bl, a, a]
                for a in range(m - 1, -1, -1):  # back substitution L' v = u
                    s = u[a]
                    for b in range(a + 1, m):
                        s -= Ls[bl, b, a] * v[b]
                    v[a] = s / Ls[bl, a, a]
                for a in range(m):
                    ua = zunit[zcol[bl] + a]
                    lp += -0.5 * u[a] * u[a] - 0.5 * _LOG_2PI
                    grad[base + a] += ua * (acc[lev, a] - v[a])
                    for b in range(a + 1):
                        GL[a, b] += v[a] * u[b]
            for a in range(m):
                lp -= nl * math.log(Ls[bl, a, a])
                lp += nl * math.log(zunit[zcol[bl] + a])  # Jacobian of r = unit * r_user
                GL[a, a] -= nl / Ls[bl, a, a]
        else:
            for lev in range(nl):
                for b in range(m):
                    z = x[zo + lev * m + b]
                    g = -z
                    for a in range(b, m):
                        g += acc[lev, a] * Ls[bl, a, b]
                        GL[a, b] += acc[lev, a] * z
                    grad[zo + lev * m + b] += g
                    lp += -0.5 * z * z - 0.5 * _LOG_2PI
        p = sd_off[bl]
        if bcorr[bl] == 0:
            for a in range(m):  # L = diag(exp(x)): chain rule through the log transform
                grad[p + a] += GL[a, a] * Ls[bl, a, a]
            continue
        # LKJ Cholesky covariance (PyMC's LKJCholeskyCov logp with its packed transform):
        # sum_a (w_a + 1) log(L_aa / s_a) + log p_sd(s_a) - a log s_a, s_a = |row a of L|,
        # w_a = 2 eta - 3 + m - a; plus the log Jacobian of exp on the diagonal
        for a in range(m):
            s2 = 0.0
            for b in range(a + 1):
                s2 += Ls[bl, a, b] * Ls[bl, a, b]
            sa = math.sqrt(s2)
            w = 2.0 * lkj_eta[bl] - 3.0 + m - a
            lps, dps = _prior_logp_grad(
                csd_code[bl, a], csd_a[bl, a], csd_b[bl, a], csd_c[bl, a], sa
            )
            laa = Ls[bl, a, a]
            lp += (w + 1.0) * (math.log(laa) - math.log(sa)) + lps - a * math.log(sa)
            coef = (dps - (w + 1.0 + a) / sa) / sa
            for b in range(a + 1):
                GL[a, b] += coef * Ls[bl, a, b]
            GL[a, a] += (w + 1.0) / laa
        for a in range(m):
            for b in range(a + 1):
                if a == b:
                    lp += x[p]
                    grad[p] += GL[a, a] * Ls[bl, a, a] + 1.0
                else:
                    grad[p] += GL[a, b]
                p += 1
    # priors (log-transformed positive parameters carry the Jacobian)
    for ri in range(pr_pos.shape[0]):
        p = pr_pos[ri]
        if pr_log[ri] == 1:
            pv = math.exp(x[p])
            lpp, d = _prior_logp_grad(pr_code[ri], pr_a[ri], pr_b[ri], pr_c[ri], pv)
            lp += lpp + x[p]
            grad[p] += d * pv + 1.0
        else:
            lpp, d = _prior_logp_grad(pr_code[ri], pr_a[ri], pr_b[ri], pr_c[ri], x[p])
            lp += lpp
            grad[p] += d
    return lp, grad


# the record's field order is the kernel's parameter order (checked once, at import)
assert KernelArgs._fields == tuple(inspect.signature(logp_and_grad.py_func).parameters)[1:]
