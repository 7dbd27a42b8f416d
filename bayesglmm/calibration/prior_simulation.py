"""Simulation from the prior: parameters drawn from a model's priors, random effects and a
response from its family, with the same covariates and groups (the truth SBC ranks)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def draw_lkj(p: int, eta: float, rng: np.random.Generator) -> np.ndarray:
    """A correlation matrix from LKJ(eta) by the onion method (Lewandowski et al. 2009)."""
    if p == 1:
        return np.ones((1, 1))
    beta = eta + (p - 2) / 2
    r12 = 2 * rng.beta(beta, beta) - 1
    C = np.array([[1.0, r12], [r12, 1.0]])
    for k in range(2, p):
        beta -= 0.5
        y = rng.beta(k / 2, beta)
        u = rng.standard_normal(k)
        u /= np.linalg.norm(u)
        w = math.sqrt(y) * u
        A = np.linalg.cholesky(C)
        z = A @ w
        C = np.block([[C, z[:, None]], [z[None, :], np.ones((1, 1))]])
    return C


def simulate_from_prior(
    model: Any, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """Draw parameters from the priors and a response; returns (y, true parameter values)."""
    d = model.design
    pri = model.priors
    slope_idx = [i for i, n in enumerate(d.x_names) if n != "(Intercept)"]
    beta = np.zeros(d.k)
    truth: dict[str, float] = {}
    for i, (name, p) in zip(slope_idx, pri.fixed.items(), strict=True):
        beta[i] = float(p.rvs(None, rng))
        truth[name] = beta[i]
    if pri.intercept is not None:
        b0c = float(pri.intercept.rvs(None, rng))
        means = d.row_mean(d.X[:, slope_idx]) if slope_idx else np.zeros(0)  # as the model
        j = d.x_names.index("(Intercept)")
        beta[j] = b0c - means @ beta[slope_idx]
        truth["(Intercept)"] = beta[j]
    eta = d.X @ beta + d.offset
    for label, b in zip(pri.sd, d.blocks, strict=True):
        sd = np.array([float(p.rvs(None, rng)) for p in pri.sd[label]])
        for t, s in zip(b.terms, sd, strict=True):
            truth[f"sd({b.group}: {t})"] = s
        if b.correlated:
            C = draw_lkj(b.n_terms, pri.cor[label].params["eta"], rng)
            for j in range(b.n_terms):
                for k in range(j + 1, b.n_terms):
                    truth[f"cor({b.group}: {b.terms[j]}, {b.terms[k]})"] = C[j, k]
            L = np.linalg.cholesky(C * sd[:, None] * sd[None, :])
        else:
            L = np.diag(sd)
        r = rng.standard_normal((b.n_levels, b.n_terms)) @ L.T
        eta = eta + np.einsum("np,np->n", b.Z, r[b.index])
    fam = d.family
    eta = np.clip(eta, -30, 20)
    disp = {}
    for dp in fam.dispersion:  # the family's dispersion parameters, drawn from their priors
        disp[dp.name] = float(pri.dispersion(dp.name).rvs(None, rng))
        truth[dp.name] = disp[dp.name]
    y = fam.simulate(rng, eta, d.trials, disp, d.weights)
    return y, truth
