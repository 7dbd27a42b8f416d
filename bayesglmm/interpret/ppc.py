"""Replicated data, pointwise log-likelihood and residuals from any fit (NumPy only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from bayesglmm.errors import DesignError
from bayesglmm.interpret.predict import encode, fixed_eta, random_eta

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike


def eta_draws(fit: FitLike) -> np.ndarray:
    """Conditional linear predictor of the fitted rows, (S, n)."""
    nd, _ = encode(fit, None, "conditional")
    return fixed_eta(fit, nd) + random_eta(fit, nd, "zero")


def _pointwise_loglik_fused(fit: FitLike) -> np.ndarray | None:
    """The Numba kernel's pointwise log-likelihood (logit and log links), else None."""
    from bayesglmm.engines.bayes.pointwise_loglik import pointwise_code, pointwise_loglik_draws

    d = fit.design
    fam = pointwise_code(d.family)
    if fam is None:  # families without a fused row kernel use the NumPy path
        return None
    trials = np.ones(d.n) if d.trials is None else np.asarray(d.trials, dtype=float)
    y = np.asarray(d.y, dtype=float)
    const = d.family.spec.row_constants(y, trials)
    if d.weights is not None:  # case weights: w * ll_i (the kernel is linear in y, trials)
        w = np.asarray(d.weights, dtype=float)
        const, y = w * const, w * y
        trials = w * trials  # Poisson: trials are ones, so the mean's multiplier w
    R = [fit.draws_ranef(i) for i in range(len(d.blocks))]
    S = fit.n_samples
    flat = [r.reshape(S, -1) for r in R]
    sizes = np.array([f.shape[1] for f in flat], dtype=np.int64)
    nterm = np.array([b.n_terms for b in d.blocks], dtype=np.int64)
    return pointwise_loglik_draws(
        np.ascontiguousarray(fit.draws_fixed(), dtype=float),
        np.ascontiguousarray(d.X, dtype=float),
        np.ascontiguousarray(d.offset, dtype=float),
        y,
        trials,
        fam,
        np.ascontiguousarray(np.concatenate(flat, axis=1) if flat else np.zeros((S, 0))),
        # block offsets: one per block (no blocks: empty, never a stray [0] the kernel
        # would read past the empty ``nterm`` with)
        (np.cumsum(sizes) - sizes).astype(np.int64),
        nterm,
        np.ascontiguousarray(
            np.column_stack([b.Z for b in d.blocks]) if d.blocks else np.zeros((d.n, 0))
        ),
        (np.cumsum(nterm) - nterm).astype(np.int64),
        np.ascontiguousarray(
            np.column_stack([b.index for b in d.blocks]) if d.blocks else np.zeros((d.n, 0)),
            dtype=np.int64,
        ),
        np.ascontiguousarray(const, dtype=float),
    )


def pointwise_loglik(fit: FitLike, chunk: int = 256) -> np.ndarray:
    """Log-likelihood of every observation under every draw, (S, n), computed in chunks.

    With prior weights each row's entry is its weighted contribution (``w_i ll_i``; gaussian
    ``log N(y_i | mu_i, sigma^2 / w_i)``; 0 for a zero weight), so the rows sum to the
    model's log-likelihood and LOO leaves out a whole weighted row (all its ``w_i`` copies).
    """
    fused = _pointwise_loglik_fused(fit)
    if fused is not None:
        return fused
    d = fit.design
    S = fit.n_samples
    out = np.empty((S, d.n))
    has_dispersion = d.family.has_dispersion
    B = fit.draws_fixed()
    R = [fit.draws_ranef(i) for i in range(len(d.blocks))]
    for start in range(0, S, chunk):
        sl = slice(start, min(start + chunk, S))
        eta = B[sl] @ d.X.T + d.offset[None, :]
        for i, b in enumerate(d.blocks):
            if b.n_terms == 1:  # the common case: no (draws, n, 1) temporary
                eta += R[i][sl, :, 0][:, b.index] * b.Z[:, 0]
            else:
                eta += np.einsum("snp,np->sn", R[i][sl][:, b.index, :], b.Z)
        s = fit.dispersion_arg(sl) if has_dispersion else 1.0
        out[sl] = d.family.loglik(d.y[None, :], eta, d.trials, s, d.weights)
    return out


def simulate_response(fit: FitLike, mu_or_eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw responses given linear predictors (S, n), by the family's ``simulate``."""
    d = fit.design
    S = mu_or_eta.shape[0]
    disp = {k: (v[:S, None] if v.size > 1 else v[0]) for k, v in fit.draws_dispersion().items()}
    return d.family.simulate(rng, mu_or_eta, d.trials, disp, d.weights)


def replicate(
    fit: FitLike, n_draws: int | None = None, random_seed: int | None = None
) -> np.ndarray:
    """Replicated responses, (R, n).

    Bayesian fits: one replicate per posterior draw (thinned to ``n_draws``).  ML fits:
    ``n_draws`` parametric replicates at the estimate with the conditional modes.
    """
    rng = np.random.default_rng(random_seed)
    eta = eta_draws(fit)
    if fit.is_bayesian:
        if n_draws is not None and n_draws < eta.shape[0]:
            eta = eta[np.linspace(0, eta.shape[0] - 1, n_draws).astype(int)]
    else:
        eta = np.repeat(eta, n_draws or 200, axis=0)
    return simulate_response(fit, eta, rng)


def fitted(fit: FitLike) -> np.ndarray:
    """Conditional fitted means (posterior mean for Bayesian fits), per row."""
    d = fit.design
    mu = d.family.linkinv(eta_draws(fit)).mean(axis=0)
    return mu * (d.trials if d.trials is not None else 1.0)


def residuals(
    fit: FitLike,
    type: Literal["deviance", "pearson", "response"] = "deviance",  # noqa: A002
) -> np.ndarray:
    """Conditional residuals (as ``residuals(glmer_fit, type=...)``)."""
    d = fit.design
    mu = fitted(fit)
    y = d.y
    if type == "response":
        return y - mu
    n = d.trials if d.trials is not None else np.ones_like(y)
    fam = d.family
    # prior weights scale the pearson and deviance residuals by sqrt(w) (R's residuals.glm)
    sw = 1.0 if d.weights is None else np.sqrt(np.asarray(d.weights, dtype=float))
    disp = fit.draws_dispersion()
    if type == "pearson":
        s = fit.dispersion_arg(mean=True) if disp else None
        return sw * (y - mu) / np.sqrt(fam.spec.pearson_variance(mu, n, s))
    if type != "deviance":
        raise DesignError(f"type must be 'deviance', 'pearson' or 'response', not {type!r}")
    if disp:  # a family with a dispersion gets it (negative binomial theta)
        dev = fam.spec.unit_deviance(y, mu, n, next(iter(disp.values())).mean())
    else:
        dev = fam.spec.unit_deviance(y, mu, n)
    return sw * np.sign(y - mu) * np.sqrt(np.maximum(dev, 0.0))
