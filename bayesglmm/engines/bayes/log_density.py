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
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numba
import numpy as np
from scipy import special

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.row_dispatch import family_rows, quiet_compile
from bayesglmm.engines.scaling import column_scales
from bayesglmm.families import ROW_KERNEL_CODES, ROW_KERNELS, Family, get_family, kernel_code
from bayesglmm.priors import Prior, PriorSet, block_labels, term_scales

__all__ = ["KernelArgs", "KernelLayout", "kernel_layout", "logp_and_grad", "pointwise_code"]

# prior codes understood by the kernel
_PRIOR_CODES = {
    "Normal": 0,
    "StudentT": 1,
    "Cauchy": 2,
    "HalfNormal": 3,
    "HalfStudentT": 4,
    "HalfCauchy": 5,
    "Exponential": 6,
    "Gamma": 7,
}
# the row kernels: every one of the registry's (families/registry.py ROW_FUNCTIONS); the
# pointwise log-likelihood implements two of them
_LOGIT = ROW_KERNEL_CODES["logit"]
_SUPPORTED = ROW_KERNELS
_LOG_2PI = math.log(2.0 * math.pi)


_F8, _I8 = np.dtype("float64"), np.dtype("int64")


class KernelArgs(NamedTuple):
    """The arguments of :func:`logp_and_grad` after ``x``, by name (a typed record).

    Built by :meth:`KernelLayout.args` and checked once there (:meth:`checked`); the kernel
    is called as ``logp_and_grad(x, *args)``, so the record costs nothing per call.  The
    field order is the kernel's parameter order (asserted at import).
    """

    X: np.ndarray
    xmean: np.ndarray
    offset: np.ndarray
    y: np.ndarray
    trials: np.ndarray
    family: int
    const: float
    beta_off: int
    ic_off: int
    Z: np.ndarray
    idx: np.ndarray
    sd_off: np.ndarray
    z_off: np.ndarray
    nterm: np.ndarray
    nlev: np.ndarray
    zcol: np.ndarray
    bcorr: np.ndarray
    bcent: np.ndarray
    csd_code: np.ndarray
    csd_a: np.ndarray
    csd_b: np.ndarray
    csd_c: np.ndarray
    lkj_eta: np.ndarray
    sigma_off: int
    ndisp: int
    pr_pos: np.ndarray
    pr_code: np.ndarray
    pr_a: np.ndarray
    pr_b: np.ndarray
    pr_c: np.ndarray
    pr_log: np.ndarray
    zunit: np.ndarray

    def checked(self) -> KernelArgs:
        """Self, after checking every field's type, dtype and row count (a wrong record
        would make the kernel read out of bounds); raises ``ValueError`` naming the field."""
        n = self.X.shape[0]
        for name, value in zip(self._fields, self, strict=True):
            want = _ARG_KINDS[name]
            if want is int or want is float:
                if not isinstance(value, int | float | np.integer | np.floating):
                    raise ValueError(f"kernel argument `{name}` must be a scalar, not {value!r}")
                continue
            dtype, ndim = want
            if not (
                isinstance(value, np.ndarray)
                and value.dtype == dtype
                and value.ndim == ndim
                and value.flags.c_contiguous
            ):
                got = getattr(value, "dtype", type(value).__name__), getattr(value, "ndim", None)
                raise ValueError(
                    f"kernel argument `{name}` must be a C-contiguous {dtype} array with "
                    f"{ndim} dimension(s); got {got}"
                )
        for name in ("offset", "y", "trials", "Z", "idx"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"kernel argument `{name}` must have {n} rows (those of X)")
        return self


_ARG_KINDS: dict[str, Any] = {
    "family": int,
    "const": float,
    "beta_off": int,
    "ic_off": int,
    "sigma_off": int,
    "ndisp": int,
    **{k: (_F8, 1) for k in ("xmean", "offset", "y", "trials", "lkj_eta")},
    **{k: (_F8, 1) for k in ("pr_a", "pr_b", "pr_c", "zunit")},
    **{k: (_F8, 2) for k in ("X", "Z", "csd_a", "csd_b", "csd_c")},
    "idx": (_I8, 2),
    "csd_code": (_I8, 2),
    **{k: (_I8, 1) for k in ("sd_off", "z_off", "nterm", "nlev", "zcol", "bcorr", "bcent")},
    **{k: (_I8, 1) for k in ("pr_pos", "pr_code", "pr_log")},
}


@dataclass(frozen=True)
class KernelLayout:
    """Where each parameter sits in the flat unconstrained vector, and the kernel's data."""

    ndim: int
    names: tuple[str, ...]  # value-variable names, PyMC order
    slices: tuple[slice, ...]
    shapes: tuple[tuple[int, ...], ...]
    arrays: dict[str, np.ndarray] = field(repr=False)
    ints: dict[str, int]
    labels: tuple[str, ...]
    family: Family

    def args(self, y: np.ndarray | None = None) -> KernelArgs:
        """Arguments of :func:`logp_and_grad` after ``x`` (a checked :class:`KernelArgs`;
        ``y`` replaces the response)."""
        a = self.arrays
        return KernelArgs(
            a["X"],
            a["xmean"],
            a["offset"],
            a["y"] if y is None else _weighted_y(self.family, y, a),
            a["trials"],
            self.ints["family"],
            float(a["prior_const"][0])
            + (float(a["const"][0]) if y is None else _lik_constant(self.family, y, a)),
            self.ints["beta_off"],
            self.ints["ic_off"],
            a["Z"],
            a["idx"],
            a["sd_off"],
            a["z_off"],
            a["nterm"],
            a["nlev"],
            a["zcol"],
            a["bcorr"],
            a["bcent"],
            a["csd_code"],
            a["csd_a"],
            a["csd_b"],
            a["csd_c"],
            a["lkj_eta"],
            self.ints["sigma_off"],
            self.ints["ndisp"],
            a["pr_pos"],
            a["pr_code"],
            a["pr_a"],
            a["pr_b"],
            a["pr_c"],
            a["pr_log"],
            a["zunit"],
        ).checked()


def row_constants(family: Family, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Data-only terms of each row's log likelihood (binomial coefficient, -log y!)."""
    return family.spec.row_constants(y, trials)


def family_code(family_name: str, link: str) -> int | None:
    """The kernels' row-kernel code (registry ``ROW_KERNEL_CODES``), or None."""
    return kernel_code(get_family(family_name, link), _SUPPORTED)


def pointwise_code(family: Family) -> int | None:
    """The row-kernel code :func:`pointwise_loglik_draws` takes for ``family``, or None."""
    return kernel_code(family, ("logit", "poisson"))


def _lik_constant(family: Family, y: np.ndarray, arrays: dict[str, np.ndarray]) -> float:
    """Sum of the data-only terms for response ``y`` (unweighted), with the prior weights."""
    w = arrays["w"]
    c = float(np.sum(w * row_constants(family, y, arrays["n0"])))
    if family.spec.precision_weights:  # + 0.5 sum log w over the rows that count
        c += 0.5 * float(np.log(w[w > 0]).sum())
    return c


def _weighted_y(family: Family, y: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The kernel's ``y``: case weights times the response (binomial, Poisson)."""
    if family.spec.precision_weights or not family.spec.case_weights_fold:
        return y  # gaussian: precision weights; gamma: case weights in ``trials``
    return np.ascontiguousarray(arrays["w"] * y)


def _prior_row(p: Prior, log: bool) -> tuple[int, float, float, float, int]:
    q = p.params
    code = _PRIOR_CODES[p.dist]
    if p.dist == "Normal":
        abc = (q["mu"], q["sigma"], 0.0)
    elif p.dist == "StudentT":
        abc = (q["nu"], q["mu"], q["sigma"])
    elif p.dist == "Cauchy":
        abc = (q["alpha"], q["beta"], 0.0)
    elif p.dist == "HalfNormal":
        abc = (q["sigma"], 0.0, 0.0)
    elif p.dist == "HalfStudentT":
        abc = (q["nu"], q["sigma"], 0.0)
    elif p.dist == "HalfCauchy":
        abc = (q["beta"], 0.0, 0.0)
    elif p.dist == "Exponential":
        abc = (q["lam"], 0.0, 0.0)
    else:  # Gamma
        abc = (q["alpha"], q["beta"], 0.0)
    return code, float(abc[0]), float(abc[1]), float(abc[2]), int(log)


def kernel_layout(
    design: Design, priors: PriorSet, *, centered: bool = False
) -> KernelLayout | None:
    """The kernel's layout for this model, or None when the model is outside its scope.

    The flat vector follows PyMC's value variables in model order: ``beta_scaled``,
    ``Intercept_centered``, then per block ``sd_<L>_log__`` (or the packed LKJ Cholesky
    factor) and ``z_<L>`` (``r_<L>`` when ``centered``), then ``sigma_log__``.
    """
    fam = design.family
    code = kernel_code(fam, _SUPPORTED)
    if code is None or len(fam.dispersion) > 2:  # row kernels take two dispersions at most
        return None
    all_priors = [*priors.fixed.values()]
    if priors.intercept is not None:
        all_priors.append(priors.intercept)
    for label in priors.sd:
        all_priors.extend(priors.sd[label])
    all_priors.extend(priors.dispersions.values())
    if any(p.dist not in _PRIOR_CODES for p in all_priors):
        return None

    slope_cols = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
    # the sampled slopes are ``beta_scaled = beta * scale`` (as the PyMC model), so the
    # kernel holds the columns divided by their SDs
    scales = column_scales(design.X[:, slope_cols], design)
    X = np.ascontiguousarray(design.X[:, slope_cols] / scales, dtype=float)
    names, slices, shapes = [], [], []
    pr_rows: list[tuple[int, int, float, float, float, int]] = []
    pos = 0

    def add(name: str, shape: tuple[int, ...]) -> int:
        nonlocal pos
        size = int(np.prod(shape)) if shape else 1
        names.append(name)
        slices.append(slice(pos, pos + size))
        shapes.append(shape)
        pos += size
        return pos - size

    beta_off = ic_off = sigma_off = -1
    if priors.fixed:
        beta_off = add(nm.BETA_SCALED, (len(priors.fixed),))
        for j, p in enumerate(priors.fixed.values()):
            pr_rows.append((beta_off + j, *_prior_row(p.scaled(float(scales[j])), False)))
    if priors.intercept is not None:
        ic_off = add(nm.INTERCEPT_CENTERED, ())
        pr_rows.append((ic_off, *_prior_row(priors.intercept, False)))
    labels = block_labels(design)
    sd_off, z_off, nterm, nlev, zcol, bcorr = [], [], [], [], [], []
    mmax = max((b.n_terms for b in design.blocks), default=1)
    nb = len(design.blocks)
    csd = np.zeros((4, nb, mmax))  # code, a, b, c of the SD priors of correlated blocks
    lkj_eta = np.zeros(nb)
    prior_const = 0.0
    col = 0
    units = []  # per column of Z: the unit it is divided by (correlated blocks, as PyMC's)
    for bl, (label, b) in enumerate(zip(labels, design.blocks, strict=True)):
        if b.correlated:
            m = b.n_terms
            off = add(nm.packed_chol(label), (m * (m + 1) // 2,))
            u = term_scales(b, design.weights)
            units.append(u)
            for t, p in enumerate(priors.sd[label]):
                csd[:, bl, t] = _prior_row(p.scaled(float(u[t])), False)[:4]
            eta_lkj = float(priors.cor[label].params["eta"])
            lkj_eta[bl] = eta_lkj
            prior_const += _lkj_log_norm(eta_lkj, m)
        else:
            units.append(np.ones(b.n_terms))
            off = add(nm.log_value(nm.sd(label)), (b.n_terms,))
            for t, p in enumerate(priors.sd[label]):
                pr_rows.append((off + t, *_prior_row(p, True)))
        bcorr.append(int(b.correlated))
        sd_off.append(off)
        # the random effects themselves (centred) or their standardized version z
        z_off.append(add((nm.r(label) if centered else nm.z(label)), (b.n_levels, b.n_terms)))
        nterm.append(b.n_terms)
        nlev.append(b.n_levels)
        zcol.append(col)
        col += b.n_terms
    for d in fam.dispersion:  # sigma, shape, phi, nu: sampled on the log scale, in order
        off = add(nm.log_value(d.name), ())
        sigma_off = off if sigma_off < 0 else sigma_off
        pr_rows.append((off, *_prior_row(priors.dispersion(d.name), True)))

    n = design.n
    zunit = np.concatenate(units) if units else np.zeros(0)
    Z = (
        np.ascontiguousarray(np.column_stack([b.Z for b in design.blocks]) / zunit, dtype=float)
        if design.blocks
        else np.zeros((n, 0))
    )
    idx = (
        np.ascontiguousarray(np.column_stack([b.index for b in design.blocks]), dtype=np.int64)
        if design.blocks
        else np.zeros((n, 0), dtype=np.int64)
    )
    trials = design.trials if design.trials is not None else np.ones(n)
    # prior weights: the binomial and Poisson kernels are linear in (y, trials), so case
    # weights enter as ``w y`` and ``w n`` (Poisson: ``trials`` = ``w``, the mean's
    # multiplier); gaussian: ``trials`` = ``w``, the precision weights
    w = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
    pr = np.array(pr_rows, dtype=float).reshape(-1, 6)
    arrays = {
        "X": X,
        "xmean": design.row_mean(X) if priors.intercept is not None else np.zeros(X.shape[1]),
        "scale": np.ascontiguousarray(scales, dtype=float),
        "offset": np.ascontiguousarray(design.offset, dtype=float),
        "y": np.ascontiguousarray(_weighted_y(fam, design.y, {"w": w}), dtype=float),
        "trials": np.ascontiguousarray(w * trials, dtype=float),
        "w": np.ascontiguousarray(w),
        "n0": np.ascontiguousarray(trials, dtype=float),
        "Z": Z,
        "zunit": np.ascontiguousarray(zunit, dtype=float),
        "idx": idx,
        "sd_off": np.array(sd_off, dtype=np.int64),
        "z_off": np.array(z_off, dtype=np.int64),
        "nterm": np.array(nterm, dtype=np.int64),
        "nlev": np.array(nlev, dtype=np.int64),
        "zcol": np.array(zcol, dtype=np.int64),
        "bcorr": np.array(bcorr, dtype=np.int64),
        "bcent": np.full(len(bcorr), int(centered), dtype=np.int64),
        "csd_code": np.ascontiguousarray(csd[0].astype(np.int64)),
        "csd_a": np.ascontiguousarray(csd[1]),
        "csd_b": np.ascontiguousarray(csd[2]),
        "csd_c": np.ascontiguousarray(csd[3]),
        "lkj_eta": lkj_eta,
        "prior_const": np.array([prior_const]),
        "pr_pos": pr[:, 0].astype(np.int64),
        "pr_code": pr[:, 1].astype(np.int64),
        "pr_a": pr[:, 2].copy(),
        "pr_b": pr[:, 3].copy(),
        "pr_c": pr[:, 4].copy(),
        "pr_log": pr[:, 5].astype(np.int64),
    }
    arrays["const"] = np.array([_lik_constant(fam, np.asarray(design.y, float), arrays)])
    layout = KernelLayout(
        ndim=pos,
        names=tuple(names),
        slices=tuple(slices),
        shapes=tuple(shapes),
        arrays=arrays,
        ints={
            "family": code,
            "beta_off": beta_off,
            "ic_off": ic_off,
            "sigma_off": sigma_off,
            "ndisp": len(fam.dispersion),
            "centered": int(centered),
        },
        labels=tuple(labels),
        family=fam,
    )
    # compile (or load from Numba's cache) here, once, without Numba's notices
    quiet_compile(logp_and_grad, np.zeros(pos), *layout.args())
    return layout


def _lkj_log_norm(eta: float, n: int) -> float:
    """Log normalizing constant of the LKJ(eta) density on n x n correlations (as PyMC)."""
    k = np.arange(1, n)
    return float(
        (n - 1) * special.gammaln(eta + 0.5 * (n - 1))
        - np.sum(0.5 * k * np.log(np.pi) + special.gammaln(eta + 0.5 * (n - 1 - k)))
    )


@numba.njit(nogil=True, cache=True)
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


@numba.njit(nogil=True, cache=True)
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


@numba.njit(nogil=True, cache=True, parallel=True)
def pointwise_loglik_draws(
    B: np.ndarray,
    X: np.ndarray,
    offset: np.ndarray,
    y: np.ndarray,
    trials: np.ndarray,
    family: int,
    R: np.ndarray,
    rbase: np.ndarray,
    nterm: np.ndarray,
    Z: np.ndarray,
    zcol: np.ndarray,
    idx: np.ndarray,
    const: np.ndarray,
) -> np.ndarray:
    """Log-likelihood of every row under every draw, (S, n), in one fused parallel pass.

    ``B`` (S, k) fixed effects on ``X``'s columns; ``R`` (S, total) the flattened random
    effects of all blocks (block ``b`` at ``rbase[b]``, laid out (levels, terms)); ``const``
    the per-row data constants.  ``family``: :func:`pointwise_code` (the logit and Poisson
    row kernels); the caller handles the others.
    """
    S = B.shape[0]
    n, k = X.shape
    nb = rbase.shape[0]
    out = np.empty((S, n))
    for s in numba.prange(S):
        for i in range(n):
            e = offset[i]
            for j in range(k):
                e += X[i, j] * B[s, j]
            for bl in range(nb):
                m = nterm[bl]
                base = rbase[bl] + idx[i, bl] * m
                for t in range(m):
                    e += Z[i, zcol[bl] + t] * R[s, base + t]
            if family == _LOGIT:
                sp = max(e, 0.0) + math.log(1.0 + math.exp(-abs(e)))
                out[s, i] = y[i] * e - trials[i] * sp + const[i]
            else:
                out[s, i] = y[i] * e - trials[i] * math.exp(min(e, 700.0)) + const[i]
    return out


# the record's field order is the kernel's parameter order (checked once, at import)
assert KernelArgs._fields == tuple(inspect.signature(logp_and_grad.py_func).parameters)[1:]
