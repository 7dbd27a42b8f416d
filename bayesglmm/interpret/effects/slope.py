"""``slopes`` and ``avg_slopes``: derivatives of the prediction in a predictor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError
from bayesglmm.interpret.effects.comparison import (
    _contrasts,
    _normalize_variables,
    _with,
)
from bayesglmm.interpret.effects.grid import (
    _by_groups,
    _check_re_type,
    _first_rows,
    _group_mean,
    _Predictor,
    _resolve_newdata,
    _tidy,
    categorical_levels,
    fitted_frame,
)
from bayesglmm.interpret.effects.inference import (
    _infer,
    _Quantity,
)
from bayesglmm.interpret.effects.prediction import _keep_attrs
from bayesglmm.interpret.effects.state import (
    RE,
    MLMethod,
    Type,
    _State,
)
from bayesglmm.intervals import CI_PROB

# ---------------------------------------------------------------------------- slopes
_SLOPES = ("dydx", "eyex", "eydx", "dyex")


def _slopes(
    fit: Any,
    variables: Any,
    newdata: Any,
    re: RE,
    type: Type,  # noqa: A002
    slope: str,
    eps: float | None,
    by: Any,
    average: bool,
    conf_level: float,
    ml_method: MLMethod,
    n_sim: int,
    random_seed: int | None,
) -> pd.DataFrame:
    _check_re_type(re, type)
    if slope not in _SLOPES:
        raise ArgumentError(f"slope must be one of {', '.join(_SLOPES)}, not {slope!r}")
    frame = _resolve_newdata(fit, newdata, by)
    specs = _normalize_variables(variables, fit)
    ref = fitted_frame(fit) if fit._model is not None else frame
    jobs = []
    for var in specs:
        levels = categorical_levels(fit, var, frame) if var in frame.columns else None
        if levels is not None:
            if variables is None:
                continue  # marginaleffects: factors get contrasts, not slopes
            raise ArgumentError(f"slopes: `{var}` is categorical; use comparisons()")
        _contrasts(fit, frame, {var: 1.0})  # validates the name
        x = frame[var].to_numpy(dtype=float)
        rx = ref[var].to_numpy(dtype=float)
        h = float(eps) if eps is not None else 1e-4 * float(np.ptp(rx) or 1.0)
        if not h > 0:
            raise ArgumentError(f"eps must be positive, got {eps!r}")
        jobs.append(
            (
                var,
                x,
                h,
                _Predictor(fit, _with(frame, var, x - h / 2), re, type),
                _Predictor(fit, _with(frame, var, x + h / 2), re, type),
                _Predictor(fit, frame, re, type),
            )
        )
    if not jobs:
        raise ArgumentError("slopes: no numeric variable to differentiate")
    cols, codes = _by_groups(frame, by)
    group = average or by is not None

    def quantity(st: _State) -> np.ndarray:
        parts = []
        for _, x, h, plo, phi, pmid in jobs:
            d = (phi(st) - plo(st)) / h
            if slope != "dydx":
                y = pmid(st)
                d = {"eyex": d * x / y, "eydx": d / y, "dyex": d * x}[slope]
            parts.append(_group_mean(d, codes) if group else d)
        return np.concatenate(parts, axis=1)

    inf = _infer(fit, _Quantity(quantity), conf_level, ml_method, n_sim, random_seed)
    leads = []
    for var, *_ in jobs:
        lab = {"dydx": "dY/dX", "eyex": "eY/eX", "eydx": "eY/dX", "dyex": "dY/eX"}[slope]
        if group:
            lead = _first_rows(frame, cols, codes) if cols else pd.DataFrame(index=range(1))
            lead.insert(0, "contrast", lab)
            lead.insert(0, "term", var)
        else:
            lead = pd.concat(
                [
                    pd.DataFrame({"rowid": np.arange(len(frame)), "term": var, "contrast": lab}),
                    frame,
                ],
                axis=1,
            )
        leads.append(lead)
    lead = pd.concat(leads, ignore_index=True)
    if group:
        return _tidy(inf, lead, conf_level, re)
    keep = ["rowid", "term", "contrast"]
    out = _tidy(inf, lead[keep], conf_level, re)
    return _keep_attrs(pd.concat([out, lead.drop(columns=keep)], axis=1), out)


def slopes(
    fit: Any,
    variables: str | Sequence[str] | None = None,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002
    slope: str = "dydx",
    eps: float | None = None,
    by: str | Sequence[str] | None = None,
    conf_level: float = CI_PROB,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Unit-level partial derivatives of the prediction (marginal effects).

    The derivative is a central difference ``(f(x + eps/2) - f(x - eps/2)) / eps`` with
    ``eps = 1e-4 * range(x)`` by default (marginaleffects' step).

    Parameters
    ----------
    fit : GLMMFit
    variables : str or list of str, optional
        Numeric predictors (default: all of them).
    slope : {"dydx", "eyex", "eydx", "dyex"}
        Derivative or elasticity (marginaleffects' names).
    eps : float, optional
        Finite-difference step.
    newdata, re, type, by, conf_level, ml_method, n_sim, random_seed
        As :func:`comparisons`.

    Returns
    -------
    pandas.DataFrame
        ``rowid``, ``term``, ``contrast`` (``dY/dX``), ``estimate``, ``std.error``,
        ``conf.low``, ``conf.high``, ``method`` and the predictor columns.
    """
    return _slopes(
        fit, variables, newdata, re, type, slope, eps, by, False, conf_level, ml_method, n_sim,
        random_seed,
    )  # fmt: skip


def avg_slopes(
    fit: Any,
    variables: str | Sequence[str] | None = None,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002
    slope: str = "dydx",
    eps: float | None = None,
    by: str | Sequence[str] | None = None,
    conf_level: float = CI_PROB,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Average slopes over the rows of ``newdata`` (per ``by`` group); see :func:`slopes`."""
    return _slopes(
        fit, variables, newdata, re, type, slope, eps, by, True, conf_level, ml_method, n_sim,
        random_seed,
    )  # fmt: skip
