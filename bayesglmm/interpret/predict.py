"""Predictions from any fit: conditional, typical-group (``re="none"``) and
population-averaged (``re="marginal"``), on the link or response scale.

All computations work on draws: a Bayesian fit has ``S`` posterior draws, an ML fit one
"draw" at the estimate.  The random-effect part of one row's linear predictor,
``sum_k z_ik' b_k``, is a sum of independent Gaussians, so for the population average it is
exactly ``N(0, v_i)`` with ``v_i = sum_k z_ik' Sigma_k z_ik``; the marginal mean
``E[g^-1(eta_i + sqrt(v_i) u)]`` is then a one-dimensional integral, computed by
Gauss-Hermite quadrature for every random-effect structure (slopes and crossed factors
included), so no Monte Carlo error enters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import pandas as pd

from bayesglmm.design.build import NewData, encode_new_data
from bayesglmm.errors import DesignError

if TYPE_CHECKING:
    from bayesglmm.design.types import Design
    from bayesglmm.fit_protocol import FitLike

Kind = Literal["response", "link"]
RE = Literal["conditional", "none", "marginal"]
NewLevels = Literal["sample", "zero", "error"]

#: seed of the new-level draws when ``random_seed`` is None, so repeated calls agree
DEFAULT_SEED = 0

_GH_NODES = 40


class ParameterDraws(Protocol):
    """What the prediction functions read from a fit: its design and parameter draws (a
    :class:`GLMMFit`, or one state of :mod:`bayesglmm.interpret.effects`)."""

    @property
    def design(self) -> Design: ...

    @property
    def n_samples(self) -> int: ...

    def draws_fixed(self) -> np.ndarray: ...

    def draws_cov(self, i: int) -> np.ndarray: ...

    def draws_ranef(self, i: int) -> np.ndarray: ...


def _own_data(fit: FitLike) -> NewData:
    d = fit.design
    return NewData(
        X=d.X,
        offset=d.offset,
        Z=tuple(b.Z for b in d.blocks),
        index=tuple(b.index for b in d.blocks),
        unseen=tuple(np.zeros(d.n, dtype=bool) for _ in d.blocks),
        new_levels=tuple(() for _ in d.blocks),
    )


def encode(
    fit: FitLike,
    newdata: pd.DataFrame | None,
    re: RE,
) -> tuple[NewData, list[np.ndarray | None]]:
    """Encode ``newdata`` (or reuse the fitted rows) for prediction.

    Returns the encoded data and, per block, each row's group label (None when absent).
    """
    if newdata is None:
        return _own_data(fit), [None] * len(fit.design.blocks)
    nd = encode_new_data(fit.design, newdata, need_groups=(re == "conditional"))
    labels = []
    for blk in fit.design.encoder.blocks:
        cols = list(blk.term.factors)
        if all(c in newdata.columns for c in cols):
            labels.append(newdata[cols].astype(str).agg(":".join, axis=1).to_numpy(dtype=str))
        else:
            labels.append(None)
    return nd, labels


def fixed_eta(fit: ParameterDraws, nd: NewData) -> np.ndarray:
    """Fixed part plus offset, (S, n)."""
    return fit.draws_fixed() @ nd.X.T + nd.offset[None, :]


def random_eta(
    fit: ParameterDraws,
    nd: NewData,
    new_levels: NewLevels = "sample",
    rng: np.random.Generator | None = None,
    labels: list[np.ndarray | None] | None = None,
) -> np.ndarray:
    """Random-effect part of the linear predictor, (S, n), with new levels handled."""
    S = fit.n_samples
    out = np.zeros((S, nd.n))
    for i, block in enumerate(fit.design.blocks):
        idx, Z = nd.index[i], nd.Z[i]
        r = fit.draws_ranef(i)  # (S, L, p)
        seen = idx >= 0
        if seen.any():
            out[:, seen] += np.einsum("snp,np->sn", r[:, idx[seen], :], Z[seen])
        if (~seen).any():
            if new_levels == "error":
                raise DesignError(
                    f"newdata has level(s) {[str(v) for v in nd.new_levels[i]]} of `{block.group}` not "
                    "seen in the fit; use new_levels='sample' or 'zero'"
                )
            if new_levels == "sample":
                if rng is None:
                    rng = np.random.default_rng(DEFAULT_SEED)
                # one draw per new level per posterior draw, shared by that level's rows
                codes = _new_codes(labels[i] if labels else None, nd, i)
                n_lev = max(len(nd.new_levels[i]), 1)
                cov = fit.draws_cov(i)  # (S, p, p)
                L = _safe_chol(cov)
                u = rng.standard_normal((S, n_lev, block.n_terms))
                b_new = np.einsum("spq,slq->slp", L, u)
                rows = np.flatnonzero(~seen)
                out[:, rows] += np.einsum("snp,np->sn", b_new[:, codes, :], Z[rows])
    return out


def _new_codes(labels: np.ndarray | None, nd: NewData, i: int) -> np.ndarray:
    """Code of each unseen row's level within ``nd.new_levels[i]`` (rows in order)."""
    n_new = int(nd.unseen[i].sum())
    if labels is None:
        return np.zeros(n_new, dtype=np.int64)
    lab = labels[nd.unseen[i]]
    lookup = {v: k for k, v in enumerate(nd.new_levels[i])}
    return np.array([lookup.get(v, 0) for v in lab], dtype=np.int64)


def _safe_chol(cov: np.ndarray) -> np.ndarray:
    p = cov.shape[-1]
    return np.linalg.cholesky(cov + 1e-12 * np.eye(p)[None])


def re_variance(fit: ParameterDraws, nd: NewData) -> np.ndarray:
    """Per-row variance of the random-effect part, ``v_i = sum_k z_ik' Sigma_k z_ik``, (S, n)."""
    v = np.zeros((fit.n_samples, nd.n))
    for i in range(len(fit.design.blocks)):
        cov = fit.draws_cov(i)
        v += np.einsum("np,spq,nq->sn", nd.Z[i], cov, nd.Z[i])
    return v


def marginal_mean(fit: ParameterDraws, eta_fixed: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``E[g^-1(eta + sqrt(v) u)]``, u ~ N(0, 1), by Gauss-Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(_GH_NODES)
    w = w / w.sum()
    sd = np.sqrt(np.maximum(v, 0.0))
    out = np.zeros_like(eta_fixed)
    fam = fit.design.family
    for xk, wk in zip(x, w, strict=True):
        out += wk * fam.linkinv(eta_fixed + sd * xk)
    return out


def predict_draws(
    fit: FitLike,
    newdata: pd.DataFrame | None = None,
    kind: Kind = "response",
    re: RE = "conditional",
    new_levels: NewLevels | None = None,
    random_seed: int | None = None,
) -> np.ndarray:
    """Prediction draws, (S, n); see :meth:`GLMMFit.predict`.

    ``new_levels=None`` (the default) resolves to ``"zero"`` for ML fits (a level not seen
    in the fit gets the typical-group effect 0, as lme4's ``allow.new.levels = TRUE``) and
    to ``"sample"`` for Bayesian fits (one draw from the fitted distribution per posterior
    draw, as brms's ``sample_new_levels = "gaussian"``).  Sampling is seeded by
    ``random_seed``, or by :data:`DEFAULT_SEED` when it is None, so two identical calls give
    identical predictions.
    """
    if new_levels is None:
        new_levels = "sample" if fit.is_bayesian else "zero"
    if kind not in ("response", "link"):
        raise DesignError(f"kind must be 'response' or 'link', not {kind!r}")
    if re not in ("conditional", "none", "marginal"):
        raise DesignError(f"re must be 'conditional', 'none' or 'marginal', not {re!r}")
    if new_levels not in ("sample", "zero", "error"):
        raise DesignError(f"new_levels must be 'sample', 'zero' or 'error', not {new_levels!r}")
    nd, labels = encode(fit, newdata, re)
    eta = fixed_eta(fit, nd)
    if re == "conditional":
        rng = np.random.default_rng(DEFAULT_SEED if random_seed is None else random_seed)
        eta = eta + random_eta(fit, nd, new_levels, rng, labels)
        return eta if kind == "link" else fit.design.family.linkinv(eta)
    if re == "none" or kind == "link":
        return eta if kind == "link" else fit.design.family.linkinv(eta)
    return marginal_mean(fit, eta, re_variance(fit, nd))


def predict_at_quantiles(
    fit: FitLike,
    q: Sequence[float] | np.ndarray = (0.2, 0.4, 0.6, 0.8),
    newdata: pd.DataFrame | None = None,
    kind: Kind = "response",
    group: str | None = None,
) -> pd.DataFrame:
    """Predictions with one group's random intercept held at quantiles of its distribution.

    For each quantile ``q`` the random effect is ``Phi^-1(q) * sd`` (all other random effects
    at 0); Bayesian fits average the prediction over posterior draws.  Returns a DataFrame
    with one row per observation and one column per quantile (the hospital example's
    histograms).
    """
    from scipy import stats

    d = fit.design
    if not d.blocks:
        raise DesignError(
            "the model has no random-effect terms (it is a GLM): there is no group intercept "
            "to hold at quantiles"
        )
    cands = [i for i, b in enumerate(d.blocks) if group in (None, b.group)]
    if not cands:
        raise DesignError(f"no random-effect block for group `{group}`; have {list(d.groups)}")
    i = cands[0]
    block = d.blocks[i]
    if "(Intercept)" not in block.terms:
        raise DesignError(f"block `{block.name}` has no random intercept to hold at quantiles")
    j = block.terms.index("(Intercept)")
    nd, _ = encode(fit, newdata, "none")
    eta = fixed_eta(fit, nd)
    sd = np.sqrt(fit.draws_cov(i)[:, j, j])  # (S,)
    qs = np.asarray(q, dtype=float)
    if ((qs <= 0) | (qs >= 1)).any():
        raise DesignError(f"quantiles must be in (0, 1); got {list(qs)}")
    cols = {}
    for qq in qs:
        e = eta + (stats.norm.ppf(qq) * sd)[:, None]
        val = e if kind == "link" else d.family.linkinv(e)
        cols[f"q{qq:g}"] = val.mean(axis=0)
    return pd.DataFrame(cols)
