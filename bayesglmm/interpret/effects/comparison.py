"""``comparisons`` and ``avg_comparisons``: contrasts of a predictor."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError
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

_COMPARISONS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], str]] = {
    "difference": (lambda hi, lo: hi - lo, "{hi} - {lo}"),
    "ratio": (lambda hi, lo: hi / lo, "{hi} / {lo}"),
    "lnratio": (lambda hi, lo: np.log(hi / lo), "ln({hi} / {lo})"),
    "lnor": (
        lambda hi, lo: np.log(hi / (1 - hi)) - np.log(lo / (1 - lo)),
        "ln(odds({hi}) / odds({lo}))",
    ),
    "lift": (lambda hi, lo: (hi - lo) / lo, "lift"),
}
# "...avg": the function of the averages (marginaleffects' "differenceavg", "ratioavg", ...)
_AVG_SUFFIX = "avg"


# ---------------------------------------------------------------------------- comparisons
@dataclass
class _Contrast:
    term: str
    label: str  # the "{hi} - {lo}" parts filled in later
    lo: pd.DataFrame
    hi: pd.DataFrame
    lo_name: str
    hi_name: str


def _normalize_variables(variables: Any, fit: Any) -> dict[str, Any]:
    if variables is None:
        enc = fit.design.encoder
        groups = {f for b in enc.blocks for f in b.term.factors}
        return {v: None for v in enc.predictors if v not in groups}
    if isinstance(variables, str):
        return {variables: None}
    if isinstance(variables, dict):
        return dict(variables)
    return {v: None for v in variables}


def _contrasts(fit: Any, frame: pd.DataFrame, variables: dict[str, Any]) -> list[_Contrast]:
    enc = fit.design.encoder
    groups = {f for b in enc.blocks for f in b.term.factors}
    out: list[_Contrast] = []
    for var, spec in variables.items():
        if var not in enc.predictors or var in groups:
            raise ArgumentError(
                f"variables: `{var}` is not a fixed-effect predictor of `{fit.design.formula}`; "
                f"predictors: {', '.join(v for v in enc.predictors if v not in groups)}"
            )
        if var not in frame.columns:
            raise ArgumentError(f"variables: newdata has no column `{var}`")
        levels = categorical_levels(fit, var, frame)
        if levels is not None:
            out.extend(_factor_contrasts(var, spec, levels, frame))
        else:
            out.append(_numeric_contrast(fit, var, spec, frame))
    return out


def _with(frame: pd.DataFrame, var: str, value: Any) -> pd.DataFrame:
    f = frame.copy()
    if isinstance(f[var].dtype, pd.CategoricalDtype):
        f[var] = pd.Categorical([value] * len(f), categories=f[var].cat.categories)
    elif np.ndim(value) == 0:
        f[var] = [value] * len(f)
    else:
        f[var] = value
    return f


def _factor_contrasts(
    var: str, spec: Any, levels: list[Any], frame: pd.DataFrame
) -> list[_Contrast]:
    if spec is None or spec == "reference":
        pairs = [(levels[0], lv) for lv in levels[1:]]
    elif spec == "sequential":
        pairs = list(itertools.pairwise(levels))
    elif spec in ("pairwise", "all"):
        pairs = list(itertools.combinations(levels, 2))
    elif isinstance(spec, list | tuple) and len(spec) == 2:
        bad = [v for v in spec if v not in levels]
        if bad:
            raise ArgumentError(
                f"variables: level(s) {bad} of `{var}` not in the fit; levels: {levels}"
            )
        pairs = [(spec[0], spec[1])]
    else:
        raise ArgumentError(
            f"variables: `{var}` is categorical; its contrast must be 'reference', "
            f"'sequential', 'pairwise' or a pair of levels, not {spec!r}"
        )
    return [
        _Contrast(var, "", _with(frame, var, lo), _with(frame, var, hi), str(lo), str(hi))
        for lo, hi in pairs
    ]


def _numeric_contrast(fit: Any, var: str, spec: Any, frame: pd.DataFrame) -> _Contrast:
    x = frame[var].to_numpy(dtype=float)
    ref = fitted_frame(fit)[var].to_numpy(dtype=float) if fit._model is not None else x
    if spec is None:
        spec = 1.0
    if isinstance(spec, bool):
        raise ArgumentError(f"variables: contrast of `{var}` must be a number, not {spec!r}")
    if isinstance(spec, int | float):
        step = float(spec)
        return _Contrast(
            var, f"+{step:g}", _with(frame, var, x), _with(frame, var, x + step), "", ""
        )
    if spec == "sd":
        s = float(np.std(ref, ddof=1))
        return _Contrast(var, "+sd", _with(frame, var, x), _with(frame, var, x + s), "", "")
    if spec == "iqr":
        q1, q3 = np.quantile(ref, [0.25, 0.75])
        return _Contrast(var, "Q3 - Q1", _with(frame, var, q1), _with(frame, var, q3), "Q1", "Q3")
    if spec == "minmax":
        return _Contrast(
            var, "Max - Min", _with(frame, var, ref.min()), _with(frame, var, ref.max()), "", ""
        )
    if isinstance(spec, list | tuple) and len(spec) == 2:
        lo, hi = float(spec[0]), float(spec[1])
        return _Contrast(
            var, f"{hi:g} - {lo:g}", _with(frame, var, lo), _with(frame, var, hi), "", ""
        )
    raise ArgumentError(
        f"variables: contrast of numeric `{var}` must be a step, 'sd', 'iqr', 'minmax' or a "
        f"pair of values, not {spec!r}"
    )


def _comparison_fn(comparison: str) -> tuple[Callable, str, bool]:
    avg = comparison.endswith(_AVG_SUFFIX) and comparison[: -len(_AVG_SUFFIX)] in _COMPARISONS
    base = comparison[: -len(_AVG_SUFFIX)] if avg else comparison
    if base not in _COMPARISONS:
        names = [*_COMPARISONS, *(f"{c}avg" for c in _COMPARISONS)]
        raise ArgumentError(f"comparison must be one of {', '.join(names)}, not {comparison!r}")
    fn, fmt = _COMPARISONS[base]
    return fn, fmt, avg


def _label(c: _Contrast, fmt: str, comparison: str) -> str:
    if c.lo_name or c.hi_name:
        return fmt.format(hi=c.hi_name, lo=c.lo_name) if fmt != "lift" else "lift"
    if comparison.startswith("difference"):
        return c.label
    return f"{c.label} ({comparison})"


def _compare(
    fit: Any,
    variables: Any,
    newdata: Any,
    re: RE,
    type: Type,  # noqa: A002
    comparison: str,
    by: Any,
    average: bool,
    conf_level: float,
    ml_method: MLMethod,
    n_sim: int,
    random_seed: int | None,
) -> pd.DataFrame:
    _check_re_type(re, type)
    fn, fmt, fn_of_avg = _comparison_fn(comparison)
    frame = _resolve_newdata(fit, newdata, by)
    specs = _normalize_variables(variables, fit)
    contrasts = _contrasts(fit, frame, specs)
    cols, codes = _by_groups(frame, by)
    preds = [(_Predictor(fit, c.lo, re, type), _Predictor(fit, c.hi, re, type)) for c in contrasts]
    group = average or by is not None

    def quantity(st: _State) -> np.ndarray:
        parts = []
        for plo, phi in preds:
            lo, hi = plo(st), phi(st)
            if fn_of_avg:
                parts.append(fn(_group_mean(hi, codes), _group_mean(lo, codes)))
            elif group:
                parts.append(_group_mean(fn(hi, lo), codes))
            else:
                parts.append(fn(hi, lo))
        return np.concatenate(parts, axis=1)

    inf = _infer(fit, _Quantity(quantity), conf_level, ml_method, n_sim, random_seed)
    leads = []
    for c in contrasts:
        lab = _label(c, fmt, comparison)
        if group or fn_of_avg:
            lead = _first_rows(frame, cols, codes) if cols else pd.DataFrame(index=range(1))
            lead.insert(0, "contrast", lab)
            lead.insert(0, "term", c.term)
        else:
            lead = pd.DataFrame({"rowid": np.arange(len(frame)), "term": c.term, "contrast": lab})
            lead = pd.concat([lead, frame], axis=1)
        leads.append(lead)
    lead = pd.concat(leads, ignore_index=True)
    if group or fn_of_avg:
        return _tidy(inf, lead, conf_level, re)
    keep = ["rowid", "term", "contrast"]
    out = _tidy(inf, lead[keep], conf_level, re)
    return _keep_attrs(pd.concat([out, lead.drop(columns=keep)], axis=1), out)


def comparisons(
    fit: Any,
    variables: str | Sequence[str] | dict[str, Any] | None = None,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002
    comparison: str = "difference",
    by: str | Sequence[str] | None = None,
    conf_level: float = CI_PROB,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Unit-level contrasts: the change in the prediction when a variable changes.

    Parameters
    ----------
    fit : GLMMFit
    variables : str, list or dict, optional
        Variables to change (default: every fixed-effect predictor).  As a dict, the
        contrast per variable: numeric ``1`` (default: ``x`` to ``x + 1``), any step,
        ``"sd"``, ``"iqr"``, ``"minmax"`` or a pair ``[a, b]``; categorical
        ``"reference"`` (default: each level against the first), ``"sequential"``,
        ``"pairwise"`` or a pair of levels.
    newdata : DataFrame, "mean" or None
        Rows at which to compare (None: the fitted rows).
    re : {"conditional", "none", "marginal"}
        ``"marginal"`` compares population-averaged predictions (integrated over the
        random-effect distribution for each draw).
    type : {"response", "link"}
    comparison : str
        ``"difference"`` (hi - lo), ``"ratio"``, ``"lnratio"``, ``"lnor"`` (log odds ratio)
        or ``"lift"``; with the suffix ``avg`` (``"ratioavg"``, ...) the function of the
        averaged predictions (marginaleffects' names).
    by : str or list of str, optional
        Average within groups of these columns.
    conf_level, ml_method, n_sim, random_seed
        As :func:`predictions`.

    Returns
    -------
    pandas.DataFrame
        ``rowid``, ``term``, ``contrast``, ``estimate``, ``std.error``, ``conf.low``,
        ``conf.high``, ``method`` and the predictor columns, one row per contrast and row.
    """
    return _compare(
        fit, variables, newdata, re, type, comparison, by, False, conf_level, ml_method, n_sim,
        random_seed,
    )  # fmt: skip


def avg_comparisons(
    fit: Any,
    variables: str | Sequence[str] | dict[str, Any] | None = None,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002
    comparison: str = "difference",
    by: str | Sequence[str] | None = None,
    conf_level: float = CI_PROB,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Average contrasts over the rows of ``newdata`` (per ``by`` group); see
    :func:`comparisons`.  With ``re="marginal"`` this is the population-averaged effect
    (e.g. the marginal risk difference of a treatment), for every draw."""
    return _compare(
        fit, variables, newdata, re, type, comparison, by, True, conf_level, ml_method, n_sim,
        random_seed,
    )  # fmt: skip
