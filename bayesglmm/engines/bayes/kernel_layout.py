"""Build the NUTS log density's layout for a model: the flat parameter vector in PyMC's
order, the prior table, the design arrays (columns scaled as the PyMC model), or None when
the model is outside the kernel's scope (a family/link without a row kernel, a prior the
kernel does not know).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.kernel_args import KernelLayout, lik_constant, weighted_y
from bayesglmm.engines.bayes.log_density import logp_and_grad
from bayesglmm.engines.bayes.row_dispatch import check_compiled_rows, quiet_compile
from bayesglmm.engines.scaling import column_scales
from bayesglmm.families import ROW_KERNELS, get_family, kernel_code
from bayesglmm.priors import Prior, PriorSet, block_labels, term_scales

__all__ = ["PRIOR_CODES", "family_code", "kernel_layout"]

# prior codes understood by the kernel
PRIOR_CODES = {
    "Normal": 0,
    "StudentT": 1,
    "Cauchy": 2,
    "HalfNormal": 3,
    "HalfStudentT": 4,
    "HalfCauchy": 5,
    "Exponential": 6,
    "Gamma": 7,
}
# the row kernels: every one of the registry's (families/registry.py ROW_FUNCTIONS)
_SUPPORTED = ROW_KERNELS


def family_code(family_name: str, link: str) -> int | None:
    """The kernels' row-kernel code (registry ``ROW_KERNEL_CODES``), or None."""
    return kernel_code(get_family(family_name, link), _SUPPORTED)


def _prior_row(p: Prior, log: bool) -> tuple[int, float, float, float, int]:
    q = p.params
    code = PRIOR_CODES[p.dist]
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
    if any(p.dist not in PRIOR_CODES for p in all_priors):
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
        "y": np.ascontiguousarray(weighted_y(fam, design.y, {"w": w}), dtype=float),
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
    arrays["const"] = np.array([lik_constant(fam, np.asarray(design.y, float), arrays)])
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
    # compile (or load from Numba's cache) here, once, without Numba's notices; a stale
    # cache of the row kernels is a clear error, not a wrong density
    check_compiled_rows()
    quiet_compile(logp_and_grad, np.zeros(pos), *layout.args())
    return layout


def _lkj_log_norm(eta: float, n: int) -> float:
    """Log normalizing constant of the LKJ(eta) density on n x n correlations (as PyMC)."""
    k = np.arange(1, n)
    return float(
        (n - 1) * special.gammaln(eta + 0.5 * (n - 1))
        - np.sum(0.5 * k * np.log(np.pi) + special.gammaln(eta + 0.5 * (n - 1 - k)))
    )
