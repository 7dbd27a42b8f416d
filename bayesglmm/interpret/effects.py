"""marginaleffects-style verbs: predictions, comparisons, slopes and their ``avg_`` forms.

Every verb returns a tidy :class:`pandas.DataFrame` named as R's marginaleffects names it:
one row per row of ``newdata`` (or per ``by=`` group for the ``avg_`` forms), the columns
``rowid`` (unit-level verbs), ``term`` and ``contrast`` (comparisons and slopes), ``estimate``,
``std.error``, ``conf.low``, ``conf.high`` at ``conf_level`` (95% by default), ``method``, and
the predictor values of the row.

The random effects enter in one of three ways (``re=``):

* ``"conditional"``: each row's own group effects (ML: conditional modes; Bayes: draws);
* ``"none"``: a typical group, all random effects 0;
* ``"marginal"``: population-averaged, ``E_b[g^-1(x'beta + z'b)]`` integrated over the
  random-effect distribution by Gauss-Hermite quadrature (exact for any structure: the
  random part of a row is one Gaussian with variance ``z' Sigma z``), for each draw.

Uncertainty, by engine (the ``method`` column says which):

* Bayesian fits (NUTS, Laplace, ADVI): ``"posterior draws"`` (``"bootstrap draws"`` for a
  ``fit.bootstrap()`` fit, whose draws are refits); the quantity is computed for
  every draw; ``estimate`` is the posterior median (as marginaleffects), ``std.error`` the
  posterior SD and the interval equal-tailed.
* ML fits (Laplace, AGQ, PQL): ``"delta"`` (default): ``estimate`` at the estimate, the
  standard error from a central-difference Jacobian ``J`` as ``sqrt(diag(J V J'))``, where
  ``V`` is the covariance of ``[beta, theta]`` (``2 H^-1`` of the deviance Hessian) when the
  fit has that Hessian (Laplace/AGQ of a non-gaussian family), so population-averaged
  quantities carry the uncertainty of the variance components; otherwise (gaussian, PQL) the
  fixed effects' ``vcov`` with the variance components held at their estimates.  Conditional
  modes are held at their values (as marginaleffects does with lme4).  Predictions on the
  response scale take the interval on the link scale and back-transform it (marginaleffects'
  ``invlink(link)``), so it stays inside the response's range; other quantities use
  ``estimate +- z * std.error``, with ``statistic`` and ``p.value`` (two-sided, H0: 0).
  ``ml_method="simulation"`` instead draws ``n_sim`` parameter vectors from ``N(estimate,
  V)`` (seeded) and takes equal-tailed intervals of the quantity (Krinsky-Robb).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError
from bayesglmm.intervals import CI_PROB

RE = Literal["conditional", "none", "marginal"]
Type = Literal["response", "link"]
MLMethod = Literal["delta", "simulation"]

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


# ---------------------------------------------------------------------------- parameter states
@dataclass
class _State:
    """Draws of every parameter, duck-typed as a fit for :mod:`bayesglmm.interpret.predict`."""

    design: Any
    beta: np.ndarray  # (S, k)
    covs: list[np.ndarray]  # per block (S, p, p)
    ranefs: list[np.ndarray]  # per block (S, L, p)
    is_bayesian: bool

    @property
    def n_samples(self) -> int:
        return int(self.beta.shape[0])

    def draws_fixed(self) -> np.ndarray:
        return self.beta

    def draws_cov(self, i: int) -> np.ndarray:
        return self.covs[i]

    def draws_ranef(self, i: int) -> np.ndarray:
        if self.ranefs[i].shape[0] == self.n_samples:
            return self.ranefs[i]
        return np.broadcast_to(self.ranefs[i], (self.n_samples, *self.ranefs[i].shape[1:]))


def draws_label(fit: Any) -> str:
    """The ``method`` of quantities computed from a fit's draws: ``"posterior draws"``, or
    ``"bootstrap draws"`` for a :meth:`GLMMFit.bootstrap` fit (parametric bootstrap)."""
    return "bootstrap draws" if fit.options.get("bootstrap") else "posterior draws"


def _bayes_state(fit: Any) -> _State:
    nb = len(fit.design.blocks)
    return _State(
        fit.design,
        fit.draws_fixed(),
        [fit.draws_cov(i) for i in range(nb)],
        [fit.draws_ranef(i) for i in range(nb)],
        True,
    )


class _MLParams:
    """The ML estimate as a flat vector ``[beta, theta_free]`` with its covariance ``V``."""

    def __init__(self, fit: Any) -> None:
        from bayesglmm.engines.ml.pirls import ThetaLayout

        ml = fit.ml
        self.fit = fit
        self.design = fit.design
        self.layout = ThetaLayout.from_blocks(fit.design.blocks)
        self.beta = np.asarray(ml.beta, dtype=float)
        self.theta = np.asarray(ml.theta, dtype=float)
        self.k = self.beta.size
        # theta is relative to sigma for the gaussian family and PQL (lme4 / lme)
        self.scale2 = float(ml.sigma) ** 2 if ml.sigma is not None else 1.0
        self.ranefs = [np.asarray(m, dtype=float)[None] for m in ml.modes]
        self.fixed_cov = [np.asarray(c, dtype=float)[None] for c in ml.covariances]
        H = getattr(ml, "hessian", None)
        nt = self.theta.size
        self.theta_free = np.zeros(nt, dtype=bool)
        V = np.asarray(ml.vcov_beta, dtype=float)
        self.with_theta = False
        if H is not None and ml.method == "ml" and ml.sigma is None:
            H = np.asarray(H, dtype=float)
            free = np.concatenate(
                [~(self.theta <= self.layout.lower_bounds() + 1e-10), np.ones(self.k, bool)]
            )
            try:
                Vf = 2.0 * np.linalg.inv(H[np.ix_(free, free)])
                Vf = 0.5 * (Vf + Vf.T)
                if np.all(np.isfinite(Vf)) and np.all(np.linalg.eigvalsh(Vf) > 0):
                    # the Hessian's order is [theta_free, beta]; ours is [beta, theta_free]
                    tf = free[:nt]
                    ntf = int(tf.sum())
                    perm = np.r_[np.arange(ntf, ntf + self.k), np.arange(ntf)]
                    V = Vf[np.ix_(perm, perm)]
                    self.theta_free = tf
                    self.with_theta = True
            except np.linalg.LinAlgError:
                pass
        if not np.all(np.isfinite(V)):
            raise ArgumentError(
                "the ML fit has no finite covariance of the fixed effects (see fit.ml.messages); "
                "intervals are unavailable: refit, or use a Bayesian method"
            )
        self.V = V
        self.point = np.concatenate([self.beta, self.theta[self.theta_free]])

    def state(self, P: np.ndarray) -> _State:
        """A state with one draw per row of ``P`` (``[beta, theta_free]`` vectors)."""
        P = np.atleast_2d(P)
        S = P.shape[0]
        beta = P[:, : self.k]
        if not self.with_theta:
            covs = [np.broadcast_to(c, (S, *c.shape[1:])) for c in self.fixed_cov]
        else:
            theta = np.broadcast_to(self.theta, (S, self.theta.size)).copy()
            theta[:, self.theta_free] = P[:, self.k :]
            facs = [self.layout.factors(t) for t in theta]
            covs = [
                self.scale2 * np.stack([f[i] @ f[i].T for f in facs])
                for i in range(len(self.design.blocks))
            ]
        return _State(self.design, beta, covs, self.ranefs, False)


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
    z = _z(conf_level)
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


def _z(level: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + level / 2.0))


def _check_level(conf_level: float) -> None:
    if not (isinstance(conf_level, int | float) and 0.0 < float(conf_level) < 1.0):
        raise ArgumentError(f"conf_level must be in (0, 1), got {conf_level!r}")


# ---------------------------------------------------------------------------- data helpers
def fitted_frame(fit: Any, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The fitted rows (after dropping missing values): the predictor columns, plus the
    columns named in ``extra`` (e.g. ``by=`` columns the formula does not use) taken from the
    data frame the model was built from."""
    model = getattr(fit, "_model", None)
    if model is None or getattr(model, "_used_frame", None) is None:
        raise ArgumentError(
            "this fit carries no data frame (no model attached); pass newdata= explicitly"
        )
    idx = fit.design.row_index
    frame = model._used_frame
    if idx is not None:
        frame = frame.iloc[np.asarray(idx)]
    cols = list(fit.design.encoder.predictors)
    out = frame.loc[:, [c for c in cols if c in frame.columns]].reset_index(drop=True)
    src = getattr(model, "_data_frame", None)
    more = [c for c in extra if c not in out.columns]
    if more and src is not None and len(src) == fit.design.n_input:
        rows = src.iloc[np.asarray(idx)] if idx is not None else src
        for c in more:
            if c in rows.columns:
                out[c] = rows[c].to_numpy()
    return out


def _categorical_levels(fit: Any, var: str, frame: pd.DataFrame) -> list[Any] | None:
    enc = fit.design.encoder
    if var in enc.levels:
        return list(enc.levels[var])
    col = frame[var] if var in frame.columns else None
    if col is not None and not pd.api.types.is_numeric_dtype(col):
        return list(pd.unique(col))
    if col is not None and pd.api.types.is_bool_dtype(col):
        return [False, True]
    return None


def datagrid(fit: Any, **values: Any) -> pd.DataFrame:
    """A grid of predictor values, as marginaleffects' ``datagrid``.

    Every predictor (grouping factors included) not named is held at its mean (numeric) or
    its most frequent level (categorical, grouping factor) in the fitted data; named ones
    take the given values; the grid is their Cartesian product.

    Parameters
    ----------
    fit : GLMMFit
    **values
        ``column=value`` or ``column=[values]``.

    Returns
    -------
    pandas.DataFrame
        One row per combination, with the fitted data's dtypes (categoricals keep their
        categories).

    Raises
    ------
    ArgumentError
        A name that is not a predictor of the model.
    """
    frame = fitted_frame(fit)
    unknown = [k for k in values if k not in frame.columns]
    if unknown:
        raise ArgumentError(
            f"datagrid: {', '.join(f'`{k}`' for k in unknown)} is not a predictor of "
            f"`{fit.design.formula}`; predictors: {', '.join(frame.columns)}"
        )
    groups = {f for b in fit.design.encoder.blocks for f in b.term.factors}
    axes: dict[str, list[Any]] = {}
    for c in frame.columns:
        if c in values:
            v = values[c]
            axes[c] = list(v) if isinstance(v, list | tuple | np.ndarray | pd.Series) else [v]
        elif (
            c not in groups
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ):
            axes[c] = [float(frame[c].mean())]
        else:
            axes[c] = [frame[c].mode(dropna=True).iloc[0]]
    rows = list(itertools.product(*axes.values()))
    out = pd.DataFrame(rows, columns=list(axes))
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            out[c] = pd.Categorical(out[c], categories=frame[c].cat.categories)
    return out


def _resolve_newdata(fit: Any, newdata: pd.DataFrame | str | None, by: Any = None) -> pd.DataFrame:
    if newdata is None:
        extra = [] if by is None or by is False else ([by] if isinstance(by, str) else list(by))
        return fitted_frame(fit, extra)
    if isinstance(newdata, str):
        if newdata == "mean":
            return datagrid(fit)
        raise ArgumentError(f"newdata must be a DataFrame, None or 'mean', not {newdata!r}")
    if not isinstance(newdata, pd.DataFrame):
        raise ArgumentError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    return newdata.reset_index(drop=True)


def _check_re_type(re: str, type: str) -> None:  # noqa: A002
    if re not in ("conditional", "none", "marginal"):
        raise ArgumentError(f"re must be 'conditional', 'none' or 'marginal', not {re!r}")
    if type not in ("response", "link"):
        raise ArgumentError(f"type must be 'response' or 'link', not {type!r}")


class _Predictor:
    """Encodes a frame once; evaluates the mean (or link) on any parameter state."""

    def __init__(self, fit: Any, frame: pd.DataFrame, re: str, type: str) -> None:  # noqa: A002
        from bayesglmm.interpret import predict

        self.fit, self.re, self.type = fit, re, type
        self.nd, self.labels = predict.encode(fit, frame, re)  # type: ignore[arg-type]
        self.new_levels = "sample" if fit.is_bayesian else "zero"

    def __call__(self, st: _State) -> np.ndarray:
        from bayesglmm.interpret import predict

        fam = self.fit.design.family
        eta = predict.fixed_eta(st, self.nd)
        if self.re == "conditional":
            rng = np.random.default_rng(predict.DEFAULT_SEED)
            eta = eta + predict.random_eta(st, self.nd, self.new_levels, rng, self.labels)
            return eta if self.type == "link" else fam.linkinv(eta)
        if self.re == "none" or self.type == "link":
            return eta if self.type == "link" else fam.linkinv(eta)
        return predict.marginal_mean(st, eta, predict.re_variance(st, self.nd))


def _by_groups(frame: pd.DataFrame, by: str | Sequence[str] | None) -> tuple[list[str], Any]:
    """The ``by`` columns and each row's group code (None: one group)."""
    if by is None or by is False:
        return [], np.zeros(len(frame), dtype=np.int64)
    cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ArgumentError(
            f"by: {', '.join(f'`{c}`' for c in missing)} is not a column of newdata; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    # groups in sorted order (category order for categoricals), as marginaleffects lists them
    codes = frame.groupby(cols, sort=True, observed=True, dropna=False).ngroup()
    return cols, codes.to_numpy(dtype=np.int64)


def _group_mean(vals: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(S, n) -> (S, G), the mean within each group code."""
    G = int(codes.max()) + 1
    M = np.zeros((vals.shape[1], G))
    M[np.arange(vals.shape[1]), codes] = 1.0
    return (vals @ M) / M.sum(axis=0)


def _first_rows(frame: pd.DataFrame, cols: list[str], codes: np.ndarray) -> pd.DataFrame:
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    return frame.loc[first, cols].reset_index(drop=True)


def _tidy(inf: pd.DataFrame, lead: pd.DataFrame, conf_level: float, re: str) -> pd.DataFrame:
    out = pd.concat([lead.reset_index(drop=True), inf.reset_index(drop=True)], axis=1)
    out.attrs.update(conf_level=conf_level, re=re)
    return out


# ---------------------------------------------------------------------------- predictions
def predictions(
    fit: Any,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002 - marginaleffects' name
    conf_level: float = CI_PROB,
    by: str | Sequence[str] | None = None,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Predictions with intervals, one row per row of ``newdata`` (marginaleffects).

    Parameters
    ----------
    fit : GLMMFit
    newdata : DataFrame, "mean" or None
        Rows to predict (None: the fitted rows; "mean": :func:`datagrid` at the means).
    re : {"conditional", "none", "marginal"}
        Group effects: the row's own, a typical group's (0), or averaged over the
        random-effect distribution (population average).
    type : {"response", "link"}
    conf_level : float
        Interval level (default 0.95).
    by : str or list of str, optional
        Average the predictions within groups of these columns.
    ml_method : {"delta", "simulation"}
        ML fits: delta method or parametric simulation (see the module notes).
    n_sim : int
        Simulation draws (``ml_method="simulation"``).
    random_seed : int, optional
        Seed of the simulation (default 0).

    Returns
    -------
    pandas.DataFrame
        ``rowid`` (or the ``by`` columns), ``estimate``, ``std.error``, ``conf.low``,
        ``conf.high``, ``method`` and the predictor columns; ``attrs["conf_level"]``.
    """
    _check_re_type(re, type)
    frame = _resolve_newdata(fit, newdata, by)
    pred = _Predictor(fit, frame, re, type)
    fam = fit.design.family
    if by is None:
        q = _Quantity(pred)
        if type == "response":
            q.link_transform = (fam.linkfun, fam.linkinv)
        inf = _infer(fit, q, conf_level, ml_method, n_sim, random_seed)
        lead = pd.DataFrame({"rowid": np.arange(len(frame))})
        out = _tidy(inf, lead, conf_level, re)
        return _keep_attrs(pd.concat([out, frame], axis=1), out)
    cols, codes = _by_groups(frame, by)
    q = _Quantity(lambda st: _group_mean(pred(st), codes))
    inf = _infer(fit, q, conf_level, ml_method, n_sim, random_seed)
    return _tidy(inf, _first_rows(frame, cols, codes), conf_level, re)


def _keep_attrs(df: pd.DataFrame, src: pd.DataFrame) -> pd.DataFrame:
    df.attrs.update(src.attrs)
    return df


def avg_predictions(
    fit: Any,
    newdata: pd.DataFrame | str | None = None,
    *,
    re: RE = "conditional",
    type: Type = "response",  # noqa: A002
    conf_level: float = CI_PROB,
    by: str | Sequence[str] | None = None,
    ml_method: MLMethod = "delta",
    n_sim: int = 1000,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """The average prediction over the rows of ``newdata`` (per ``by`` group); see
    :func:`predictions` for the arguments.  One row (per group)."""
    _check_re_type(re, type)
    frame = _resolve_newdata(fit, newdata, by)
    pred = _Predictor(fit, frame, re, type)
    cols, codes = _by_groups(frame, by)
    q = _Quantity(lambda st: _group_mean(pred(st), codes))
    inf = _infer(fit, q, conf_level, ml_method, n_sim, random_seed)
    lead = _first_rows(frame, cols, codes) if cols else pd.DataFrame(index=range(1))
    return _tidy(inf, lead, conf_level, re)


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
        levels = _categorical_levels(fit, var, frame)
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
    re: str,
    type: str,  # noqa: A002
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


# ---------------------------------------------------------------------------- slopes
_SLOPES = ("dydx", "eyex", "eydx", "dyex")


def _slopes(
    fit: Any,
    variables: Any,
    newdata: Any,
    re: str,
    type: str,  # noqa: A002
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
        levels = _categorical_levels(fit, var, frame) if var in frame.columns else None
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
