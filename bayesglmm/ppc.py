"""Replicated data, pointwise log-likelihood and residuals from any fit (NumPy only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from bayesglmm.errors import DesignError
from bayesglmm.predict import encode, fixed_eta, random_eta

if TYPE_CHECKING:
    from bayesglmm.results import GLMMFit


def eta_draws(fit: GLMMFit) -> np.ndarray:
    """Conditional linear predictor of the fitted rows, (S, n)."""
    nd, _ = encode(fit, None, "conditional")
    return fixed_eta(fit, nd) + random_eta(fit, nd, "zero")


def _pointwise_loglik_fused(fit: GLMMFit) -> np.ndarray | None:
    """The Numba kernel's pointwise log-likelihood (logit and log links), else None."""
    from bayesglmm.inference.nuts_kernel import family_code, pointwise_loglik_draws, row_constants

    d = fit.design
    fam = family_code(d.family.name, d.family.link)
    if fam not in (0, 1):  # the gaussian (and probit/cloglog) use the NumPy path
        return None
    trials = np.ones(d.n) if d.trials is None else np.asarray(d.trials, dtype=float)
    y = np.asarray(d.y, dtype=float)
    const = row_constants(fam, y, trials)
    if d.weights is not None:  # case weights: w * ll_i (the kernel is linear in y, trials)
        w = np.asarray(d.weights, dtype=float)
        const, y = w * const, w * y
        trials = w * trials if fam == 0 else w
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


def pointwise_loglik(fit: GLMMFit, chunk: int = 256) -> np.ndarray:
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
    sigma = fit.draws_sigma()
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
        s = 1.0 if sigma is None else sigma[sl][:, None]
        out[sl] = d.family.loglik(d.y[None, :], eta, d.trials, s, d.weights)
    return out


def simulate_response(fit: GLMMFit, mu_or_eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw responses given linear predictors (S, n)."""
    d = fit.design
    fam = d.family
    if fam.name == "gaussian":
        sigma = fit.draws_sigma()
        s = sigma[: mu_or_eta.shape[0], None] if sigma.size > 1 else sigma[0]
        if d.weights is not None:  # precision weights: sd sigma / sqrt(w) (simulate.lm)
            w = np.asarray(d.weights, dtype=float)
            s = s / np.sqrt(np.where(w > 0, w, 1.0))
        return rng.normal(mu_or_eta, s)
    mu = fam.linkinv(mu_or_eta)
    if fam.name == "poisson":
        return rng.poisson(mu).astype(float)
    n = 1 if d.trials is None else d.trials.astype(np.int64)
    return rng.binomial(n, np.clip(mu, 0.0, 1.0)).astype(float)


def replicate(
    fit: GLMMFit, n_draws: int | None = None, random_seed: int | None = None
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


def fitted(fit: GLMMFit) -> np.ndarray:
    """Conditional fitted means (posterior mean for Bayesian fits), per row."""
    d = fit.design
    mu = d.family.linkinv(eta_draws(fit)).mean(axis=0)
    return mu * (d.trials if d.trials is not None else 1.0)


def residuals(
    fit: GLMMFit,
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
    if type == "pearson":
        if fam.name == "gaussian":
            s = fit.draws_sigma().mean()
            return sw * (y - mu) / s
        var = fam.variance(mu / n if fam.is_binomial else mu, n if fam.is_binomial else None)
        return sw * (y - mu) / np.sqrt(var)
    if type != "deviance":
        raise DesignError(f"type must be 'deviance', 'pearson' or 'response', not {type!r}")
    if fam.name == "poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(y > 0, y * np.log(y / mu), 0.0)
        dev = 2.0 * (t - (y - mu))
    elif fam.is_binomial:
        p = np.clip(mu / n, 1e-12, 1 - 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(y > 0, y * np.log(y / (n * p)), 0.0)
            b = np.where(n - y > 0, (n - y) * np.log((n - y) / (n * (1 - p))), 0.0)
        dev = 2.0 * (a + b)
    else:
        dev = (y - mu) ** 2
    return sw * np.sign(y - mu) * np.sqrt(np.maximum(dev, 0.0))
