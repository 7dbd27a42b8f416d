"""The shared inference step of the effect verbs: a quantity computed at every parameter
state, summarized as posterior draws (Bayes), a delta-method or a simulation interval (ML)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError
from bayesglmm.interpret.effects.state import (
    MLMethod,
    _bayes_state,
    _MLParams,
    _State,
    draws_label,
)
from bayesglmm.intervals import wald_z


# ---------------------------------------------------------------------------- the engine
@dataclass
class _Quantity:
    """A function of the parameters giving (S, m) values, and how to report it."""

    fn: Callable[[_State], np.ndarray]
    link_transform: tuple[Callable, Callable] | None = None  # (to link, from link)


def _infer(
    fit: Any,
    q: _Quantity,
    conf_level: float,
    ml_method: MLMethod,
    n_sim: int,
    random_seed: int | None,
) -> pd.DataFrame:
    """Estimate, SE and interval of every column of ``q.fn``."""
    _check_level(conf_level)
    a = (1.0 - conf_level) / 2.0
    if fit.is_bayesian:
        d = q.fn(_bayes_state(fit))
        lo, hi = np.quantile(d, [a, 1.0 - a], axis=0)
        return pd.DataFrame(
            {
                "estimate": np.median(d, axis=0),
                "std.error": d.std(axis=0, ddof=1) if d.shape[0] > 1 else np.nan,
                "conf.low": lo,
                "conf.high": hi,
                "method": draws_label(fit),
            }
        )
    if ml_method not in ("delta", "simulation"):
        raise ArgumentError(f"ml_method must be 'delta' or 'simulation', not {ml_method!r}")
    par = _MLParams(fit)
    est = q.fn(par.state(par.point))[0]
    if ml_method == "simulation":
        rng = np.random.default_rng(0 if random_seed is None else random_seed)
        P = rng.multivariate_normal(par.point, par.V, size=int(n_sim), method="eigh")
        d = q.fn(par.state(P))
        lo, hi = np.quantile(d, [a, 1.0 - a], axis=0)
        return pd.DataFrame(
            {
                "estimate": est,
                "std.error": d.std(axis=0, ddof=1),
                "conf.low": lo,
                "conf.high": hi,
                "method": "simulation",
            }
        )
    # delta method: central-difference Jacobian of the reported (or link-scale) quantity
    to_link, from_link = q.link_transform or (None, None)

    def g(p: np.ndarray) -> np.ndarray:
        v = q.fn(par.state(p))[0]
        return to_link(v) if to_link is not None else v

    g0 = g(par.point)
    J = np.empty((g0.size, par.point.size))
    for j in range(par.point.size):
        h = 1e-5 * max(1.0, abs(par.point[j]))
        e = np.zeros_like(par.point)
        e[j] = h
        J[:, j] = (g(par.point + e) - g(par.point - e)) / (2.0 * h)
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, par.V, J), 0.0))
    z = wald_z(conf_level)
    out = pd.DataFrame({"estimate": est, "std.error": se})
    if from_link is not None:
        out["std.error"] = se * np.abs(_num_deriv(from_link, g0))
        out["conf.low"] = from_link(g0 - z * se)
        out["conf.high"] = from_link(g0 + z * se)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = np.where(se > 0, est / se, np.nan)
        out["statistic"] = stat
        out["p.value"] = _pnorm2(stat)
        out["conf.low"] = est - z * se
        out["conf.high"] = est + z * se
    out["method"] = "delta"
    return out


def _num_deriv(f: Callable, x: np.ndarray) -> np.ndarray:
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    return (f(x + h) - f(x - h)) / (2 * h)


def _pnorm2(z: np.ndarray) -> np.ndarray:
    from scipy import special

    return special.erfc(np.abs(z) / math.sqrt(2.0))


def _check_level(conf_level: float) -> None:
    if not (isinstance(conf_level, int | float) and 0.0 < float(conf_level) < 1.0):
        raise ArgumentError(f"conf_level must be in (0, 1), got {conf_level!r}")
