"""R² for GLMMs: Nakagawa's marginal and conditional R², and the Bayesian R².

**Nakagawa R²** (Nakagawa & Schielzeth 2013; Johnson 2014; Nakagawa, Johnson & Schielzeth
2017), on the latent scale::

    marginal    = s2_f / (s2_f + s2_re + s2_d)
    conditional = (s2_f + s2_re) / (s2_f + s2_re + s2_d)

* ``s2_f = var(X beta)``: the sample variance (``n - 1``, as R's ``var`` in
  ``insight::get_variance``) of the fixed-effect linear predictor over the fitted rows;
* ``s2_re``: the sum over random-effect blocks of ``Sigma[0, 0]`` (a random intercept) or,
  with random slopes, the mean over rows of ``z_i' Sigma z_i`` (Johnson 2014);
* ``s2_d``: the distribution-specific variance, as :func:`bayesglmm.interpret.icc.distribution_variance`
  (and the ICC): logit ``pi^2/3``, probit 1, cloglog ``pi^2/6``; Poisson ``ln(1 + 1/lambda)``
  (``"lognormal"``, default), ``1/lambda`` (``"delta"``) or ``trigamma(lambda)``
  (``"trigamma"``), ``lambda = exp(mean(X beta + offset) + s2_re / 2)``; gaussian: the
  residual variance ``sigma^2``.

For Bayesian fits every quantity is computed per draw, so R² has a posterior; for ML fits it
is the plug-in value at the estimate (``fit.bootstrap()`` gives a fit whose draws are
bootstrap replicates, and then intervals).

**Bayesian R²** (Gelman, Goodrich, Gabry & Vehtari 2019), per draw ``s``::

    R2_s = var(mu_s) / (var(mu_s) + var(y - mu_s))

with ``mu_s`` the expected response of each fitted row (counts for the binomial: trials times
the probability) including the random effects (``re="conditional"``, brms's default) or with
them at 0 (``re="none"``, brms's ``re_formula = NA``); the residual-based form of the paper
and of ``brms::bayes_R2`` / ``rstanarm::bayes_R2``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError
from bayesglmm.intervals import CI_PROB

PoissonMethod = Literal["lognormal", "delta", "trigamma"]


def random_variance(fit: Any) -> dict[str, np.ndarray]:
    """Latent variance of each grouping factor, (S,) per group (Johnson 2014 for slopes)."""
    d = fit.design
    out: dict[str, np.ndarray] = {}
    for i, b in enumerate(d.blocks):
        cov = fit.draws_cov(i)
        if b.terms == ("(Intercept)",):
            v = cov[:, 0, 0]
        else:
            v = np.einsum("np,spq,nq->s", b.Z, cov, b.Z) / d.n
        out[b.group] = out.get(b.group, 0.0) + v
    return out


def nakagawa_components(fit: Any, method: PoissonMethod = "lognormal") -> dict[str, np.ndarray]:
    """Variance components of Nakagawa's R², (S,) each: ``fixed``, ``random``,
    ``distribution`` (residual variance for the gaussian family)."""
    from bayesglmm.interpret.icc import distribution_variance

    d = fit.design
    if not d.blocks:
        raise ArgumentError("the model has no random effects: Nakagawa's R² needs some")
    if method not in ("lognormal", "delta", "trigamma"):
        raise ArgumentError(f"method must be 'lognormal', 'delta' or 'trigamma', not {method!r}")
    beta = fit.draws_fixed()
    xb = beta @ d.X.T
    s2_f = xb.var(axis=1, ddof=1)
    s2_re = sum(random_variance(fit).values())
    fam = d.family
    lam = fam.spec.latent_mean(fam.link_fn, xb.mean(axis=1) + d.offset.mean() + s2_re / 2.0)
    s2_d = distribution_variance(
        fam.name, fam.link, lam, method, fam.spec.latent_dispersion(fit.draws_dispersion())
    )
    S = beta.shape[0]
    return {
        "fixed": np.broadcast_to(np.asarray(s2_f, float), (S,)),
        "random": np.broadcast_to(np.asarray(s2_re, float), (S,)),
        "distribution": np.broadcast_to(np.asarray(s2_d, float), (S,)),
    }


def nakagawa_from_components(
    s2_fixed: np.ndarray | float, s2_random: np.ndarray | float, s2_dist: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """``(marginal, conditional)`` R² from the three variance components."""
    s2_fixed, s2_random, s2_dist = (
        np.asarray(v, dtype=float) for v in (s2_fixed, s2_random, s2_dist)
    )
    total = s2_fixed + s2_random + s2_dist
    return s2_fixed / total, (s2_fixed + s2_random) / total


def nakagawa_draws(fit: Any, method: PoissonMethod = "lognormal") -> dict[str, np.ndarray]:
    """Nakagawa's marginal and conditional R², (S,) each."""
    c = nakagawa_components(fit, method)
    m, cond = nakagawa_from_components(c["fixed"], c["random"], c["distribution"])
    return {"marginal": m, "conditional": cond}


def bayes_r2_draws(fit: Any, re: Literal["conditional", "none"] = "conditional") -> np.ndarray:
    """Bayesian R² (Gelman et al. 2019), one value per draw, (S,)."""
    from bayesglmm.interpret.predict import predict_draws

    if re not in ("conditional", "none"):
        raise ArgumentError(f"re must be 'conditional' or 'none', not {re!r}")
    d = fit.design
    mu = predict_draws(fit, None, "response", re)  # (S, n), the mean of one trial
    if d.trials is not None:
        mu = mu * np.asarray(d.trials, dtype=float)[None, :]
    e = np.asarray(d.y, dtype=float)[None, :] - mu
    v_fit = mu.var(axis=1, ddof=1)
    v_res = e.var(axis=1, ddof=1)
    return v_fit / (v_fit + v_res)


def r2_table(
    fit: Any, method: PoissonMethod = "lognormal", conf_level: float = CI_PROB
) -> pd.DataFrame:
    """R² table: Nakagawa marginal and conditional; Bayesian R² for fits with draws.

    Columns ``estimate`` (posterior median for Bayesian fits, the plug-in value for ML),
    ``conf.low``, ``conf.high`` (equal-tailed at ``conf_level``; NaN for ML fits, which have
    no draws: use ``fit.bootstrap().r2()``) and ``method``.
    """
    if not 0.0 < conf_level < 1.0:
        raise ArgumentError(f"conf_level must be in (0, 1), got {conf_level!r}")
    rows: dict[str, np.ndarray] = {}
    nk = nakagawa_draws(fit, method)
    rows["Nakagawa marginal"] = nk["marginal"]
    rows["Nakagawa conditional"] = nk["conditional"]
    if fit.is_bayesian:
        rows["Bayes R2 (conditional)"] = bayes_r2_draws(fit, "conditional")
        rows["Bayes R2 (no random effects)"] = bayes_r2_draws(fit, "none")
    from bayesglmm.interpret.effects import draws_label

    a = (1.0 - conf_level) / 2.0
    out = []
    for name, v in rows.items():
        if fit.is_bayesian:
            lo, hi = np.quantile(v, [a, 1.0 - a])
            out.append((name, float(np.median(v)), float(lo), float(hi), draws_label(fit)))
        else:
            out.append((name, float(v[0]), np.nan, np.nan, "ML plug-in (no interval)"))
    tab = pd.DataFrame(out, columns=["r2", "estimate", "conf.low", "conf.high", "method"])
    tab = tab.set_index("r2")
    tab.attrs["conf_level"] = conf_level
    return tab


def r2(fit: Any, method: PoissonMethod = "lognormal", conf_level: float = CI_PROB) -> pd.DataFrame:
    """R² table of a fit (the function form of ``fit.r2()``); see :func:`r2_table`."""
    return r2_table(fit, method=method, conf_level=conf_level)
