"""Unconstrained covariance parameters for the Bayesian integrated-Laplace path.

Each random-effect block's covariance is ``Sigma = diag(sd) C diag(sd)``.  The unconstrained
vector ``psi`` holds, block by block, ``log sd`` (one per term) and, for a correlated block
with ``p > 1`` terms, ``p (p - 1) / 2`` unconstrained canonical partial correlations
(Stan's ``cholesky_corr`` transform): ``z = tanh(y)`` fills the Cholesky factor ``Lc`` of ``C``
row by row,

    Lc[i, j] = z_ij sqrt(1 - sum_{l < j} Lc[i, l]^2),   Lc[i, i] = sqrt(1 - sum_{l < i} Lc[i, l]^2).

The prior density of ``psi`` is the user's SD priors times ``LKJ(eta)`` on ``C``, as PyMC's
``LKJCholeskyCov`` (which is the product of the SD prior and LKJ on the correlation matrix),
pushed through the transform: ``log sd`` adds ``sum log sd``; the correlation part is Stan's
``lkj_corr_cholesky`` density, ``sum_{i >= 1} (p - i - 1 + 2 (eta - 1)) log Lc[i, i]``
(0-based ``i``), plus the log-Jacobian of ``y -> Lc``,
``sum_ij [log(1 - z_ij^2) + log(1 - sum_{l < j} Lc[i, l]^2) / 2]``.  Normalizing constants
are dropped (they do not depend on ``psi``).

lme4's ``theta`` (the Cholesky factor of ``Sigma``, relative to the unit residual scale of
the non-gaussian families, column-major lower triangle; :class:`ThetaLayout`) is
``diag(sd) Lc``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from bayesglmm.design.types import Design
from bayesglmm.engines.ml.pirls import ThetaLayout
from bayesglmm.priors import Prior, PriorSet, block_labels

__all__ = ["CovParam", "corr_cholesky", "corr_cholesky_inverse", "log_density"]


def log_density(prior: Prior) -> Callable[[np.ndarray], np.ndarray]:
    """A fast log density of a scalar prior (NumPy arithmetic; :meth:`Prior.logpdf` goes
    through SciPy's argument checks, ~50 us a call, which dominates the fast path's
    finite differences).  Falls back to :meth:`Prior.logpdf` for other distributions."""
    p, d = prior.params, prior.dist
    if d == "Normal":
        mu, s = p["mu"], p["sigma"]
        c = -math.log(s) - 0.5 * math.log(2 * math.pi)
        return lambda x: c - 0.5 * ((x - mu) / s) ** 2
    if d in ("StudentT", "HalfStudentT"):
        nu, s = p["nu"], p["sigma"]
        mu = p.get("mu", 0.0)
        c = (
            special.gammaln((nu + 1) / 2)
            - special.gammaln(nu / 2)
            - 0.5 * math.log(nu * math.pi)
            - math.log(s)
            + (math.log(2.0) if d == "HalfStudentT" else 0.0)
        )
        return lambda x: c - (nu + 1) / 2 * np.log1p(((x - mu) / s) ** 2 / nu)
    if d == "HalfNormal":
        s = p["sigma"]
        c = 0.5 * math.log(2 / math.pi) - math.log(s)
        return lambda x: c - 0.5 * (x / s) ** 2
    if d == "Gamma":  # shape alpha, rate beta (the dispersions' defaults)
        a, r = p["alpha"], p["beta"]
        c = a * math.log(r) - float(special.gammaln(a))
        return lambda x: c + (a - 1.0) * np.log(x) - r * x
    if d == "Exponential":
        lam = p["lam"]
        return lambda x: math.log(lam) - lam * np.asarray(x, dtype=float)
    return prior.logpdf


def corr_cholesky(y: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of correlation matrices from unconstrained partial correlations.

    Parameters
    ----------
    y : ndarray (..., p (p - 1) / 2)
        Unconstrained values, row-major over the strictly lower triangle.
    p : int
        Dimension.

    Returns
    -------
    L : ndarray (..., p, p)
        Lower-triangular factors with unit-norm rows.
    log_jac : ndarray (...)
        ``log |d L / d y|`` (strictly lower elements of ``L`` against ``y``).
    """
    y = np.asarray(y, dtype=float)
    shape = y.shape[:-1]
    z = np.tanh(y)
    L = np.zeros((*shape, p, p))
    L[..., 0, 0] = 1.0
    log_jac = np.log1p(-(z**2)).sum(axis=-1) if z.size else np.zeros(shape)
    pos = 0
    for i in range(1, p):
        rest = np.ones(shape)  # 1 - squared norm of row i so far
        for j in range(i):
            log_jac = log_jac + 0.5 * np.log(rest)
            L[..., i, j] = z[..., pos] * np.sqrt(rest)
            rest = rest - L[..., i, j] ** 2
            pos += 1
        L[..., i, i] = np.sqrt(np.maximum(rest, 0.0))
    return L, log_jac


def corr_cholesky_inverse(L: np.ndarray, clip: float = 0.95) -> np.ndarray:
    """Unconstrained values ``y`` of one correlation Cholesky factor (partial correlations
    clipped to ``[-clip, clip]``, so a singular start stays finite)."""
    p = L.shape[0]
    out = []
    for i in range(1, p):
        rest = 1.0
        for j in range(i):
            z = L[i, j] / np.sqrt(rest) if rest > 0 else 0.0
            out.append(np.arctanh(np.clip(z, -clip, clip)))
            rest -= L[i, j] ** 2
    return np.asarray(out, dtype=float)


@dataclass(frozen=True)
class _Block:
    label: str
    p: int
    correlated: bool
    sd_priors: tuple[Callable[[np.ndarray], np.ndarray], ...]
    eta: float | None
    start: int  # position of the block's log sds in psi

    @property
    def n_cor(self) -> int:
        return self.p * (self.p - 1) // 2 if self.correlated else 0


class CovParam:
    """``psi`` (log SDs and unconstrained correlations) for a design's blocks.

    Parameters
    ----------
    design : Design
    priors : PriorSet

    Attributes
    ----------
    size : int
        Length of ``psi``.
    names : list of str
        A name per element of ``psi`` (``log_sd_<label>[<term>]``, ``cpc_<label>[i,j]``).
    """

    def __init__(self, design: Design, priors: PriorSet) -> None:
        self.layout = ThetaLayout.from_blocks(design.blocks)
        blocks, names, pos = [], [], 0
        for label, b in zip(block_labels(design), design.blocks, strict=True):
            corr = bool(b.correlated) and b.n_terms > 1
            eta = priors.cor[label].params["eta"] if corr else None
            sd_pri = tuple(log_density(p) for p in priors.sd[label])
            blk = _Block(label, b.n_terms, corr, sd_pri, eta, pos)
            blocks.append(blk)
            names += [f"log_sd_{label}[{t}]" for t in b.terms]
            names += [
                f"cpc_{label}[{b.terms[i]},{b.terms[j]}]" for i in range(1, blk.p) for j in range(i)
            ]
            pos += blk.p + blk.n_cor
        self.blocks = tuple(blocks)
        self.names = names
        self.size = pos

    def factors(self, psi: np.ndarray) -> list[np.ndarray]:
        """Cholesky factors ``diag(sd) Lc`` per block, shape (..., p, p)."""
        psi = np.asarray(psi, dtype=float)
        out = []
        for b in self.blocks:
            sd = np.exp(psi[..., b.start : b.start + b.p])
            if b.correlated:
                Lc, _ = corr_cholesky(psi[..., b.start + b.p : b.start + b.p + b.n_cor], b.p)
                out.append(sd[..., :, None] * Lc)
            else:
                out.append(sd[..., :, None] * np.eye(b.p))
        return out

    def to_theta(self, psi: np.ndarray) -> np.ndarray:
        """lme4's ``theta`` (see :class:`ThetaLayout`) at one ``psi``."""
        return self.layout.from_factors(self.factors(psi))

    def from_theta(self, theta: np.ndarray, min_sd: float = 0.05) -> np.ndarray:
        """``psi`` for lme4's ``theta`` (SDs floored at ``min_sd``; a start value)."""
        out = []
        for b, F in zip(self.blocks, self.layout.factors(np.asarray(theta)), strict=True):
            S = F @ F.T
            sd = np.sqrt(np.diag(S))
            out.append(np.log(np.maximum(sd, min_sd)))
            if b.correlated:
                C = S / np.outer(np.maximum(sd, 1e-12), np.maximum(sd, 1e-12))
                C = C + 1e-9 * np.eye(b.p)
                Lc = np.linalg.cholesky(C / np.sqrt(np.outer(np.diag(C), np.diag(C))))
                out.append(corr_cholesky_inverse(Lc))
        return np.concatenate(out)

    def log_prior(self, psi: np.ndarray) -> float:
        """Log prior density of ``psi`` (Jacobians included, constants dropped)."""
        psi = np.asarray(psi, dtype=float)
        lp = 0.0
        for b in self.blocks:
            log_sd = psi[b.start : b.start + b.p]
            sd = np.exp(log_sd)
            lp += float(log_sd.sum())
            for logpdf, s in zip(b.sd_priors, sd, strict=True):
                lp += float(logpdf(s))
            if b.correlated and b.eta is not None:  # a correlated block has its LKJ eta
                y = psi[b.start + b.p : b.start + b.p + b.n_cor]
                Lc, log_jac = corr_cholesky(y, b.p)
                i = np.arange(1, b.p)
                coef = b.p - i - 1 + 2.0 * (b.eta - 1.0)
                lp += float(coef @ np.log(np.diagonal(Lc)[1:]) + log_jac)
        return lp

    def covariances(self, psi: np.ndarray) -> list[np.ndarray]:
        """Covariance matrices per block from draws ``psi`` (S, size): a list of (S, p, p)."""
        return [F @ np.swapaxes(F, -1, -2) for F in self.factors(psi)]
