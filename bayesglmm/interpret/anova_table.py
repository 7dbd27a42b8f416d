"""lme4's ``anova``: likelihood-ratio tests between nested ML fits (with the boundary caveat
for variance components), or the LOO (PSIS) difference between Bayesian fits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError


def anova(*fits: Any, names: list[str] | None = None) -> pd.DataFrame:
    """Compare fits of the same data: likelihood-ratio tests (ML) or LOO (Bayesian).

    ML fits (Laplace or AGQ; gaussian fits by ML): as lme4's ``anova``, one row per model
    ordered by the number of parameters, with ``npar``, ``AIC``, ``BIC``, ``logLik`` (the
    properly normalized log-likelihood, so Laplace and AGQ fits are on one scale),
    ``deviance``, ``Chisq``, ``Df`` and ``Pr(>Chisq)`` against the previous row.  When two
    models differ in their random effects, the null puts a variance on the boundary of its
    space (0): the chi-square p-value is then conservative (too large), and for one added
    variance component the null distribution of the statistic is a 50:50 mixture of
    chi-square(Df - 1) and chi-square(Df) (Self & Liang 1987; Stram & Lee 1994; lme4's
    documentation, GLMM FAQ); that mixture p-value is the column ``Pr(>Chisq) boundary``
    (NaN where the random effects are the same).  The first row's test columns are NaN, as
    in R.

    Bayesian fits: PSIS-LOO (ArviZ) of each fit, ``elpd_loo``, ``se``, ``p_loo``, and the
    difference ``elpd_diff`` to the best fit with its standard error ``se_diff`` (from the
    pointwise differences), and the largest Pareto k.

    Raises
    ------
    ArgumentError
        Fewer than two fits, mixed ML and Bayesian fits, PQL fits (no likelihood), or fits of
        different data.
    """
    if len(fits) < 2:
        raise ArgumentError("anova needs at least two fits")
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(fits))]
    if len(names) != len(fits):
        raise ArgumentError(f"anova: {len(names)} names for {len(fits)} fits")
    y0 = np.asarray(fits[0].design.y, float)
    for nm, f in zip(names, fits, strict=True):
        y = np.asarray(f.design.y, float)
        if y.shape != y0.shape or not np.array_equal(y, y0):
            raise ArgumentError(
                f"anova: `{nm}` is fitted to different data (response or rows differ from "
                f"`{names[0]}`); models must be fitted to the same observations"
            )
    bayes = [f.is_bayesian for f in fits]
    if any(bayes) and not all(bayes):
        raise ArgumentError("anova: mix of ML and Bayesian fits; compare like with like")
    if all(bayes):
        return _anova_loo(fits, names)
    for nm, f in zip(names, fits, strict=True):
        if f.ml.method != "ml":
            raise ArgumentError(
                f"anova: `{nm}` is a PQL fit, which has no likelihood for a likelihood-ratio "
                "test; refit with method='ml'"
            )
    from scipy import stats

    rows = []
    for nm, f in zip(names, fits, strict=True):
        ll = float(getattr(f.ml, "loglik_normalized", f.ml.loglik))
        if not np.isfinite(ll):
            ll = float(f.ml.loglik)
        k = f.n_params
        rows.append(
            {
                "model": nm,
                "npar": k,
                "AIC": -2 * ll + 2 * k,
                "BIC": -2 * ll + math.log(f.design.n) * k,
                "logLik": ll,
                "deviance": -2 * ll,
                "_ntheta": len(np.asarray(f.ml.theta)),
            }
        )
    rows.sort(key=lambda r: r["npar"])
    for r in rows:
        r.update({"Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan})
        r["Pr(>Chisq) boundary"] = np.nan
    for prev, cur in zip(rows[:-1], rows[1:], strict=True):
        chisq = max(2.0 * (cur["logLik"] - prev["logLik"]), 0.0)
        df = cur["npar"] - prev["npar"]
        cur["Chisq"], cur["Df"] = chisq, df
        cur["Pr(>Chisq)"] = float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan
        if df > 0 and cur["_ntheta"] != prev["_ntheta"]:
            lower = float(stats.chi2.sf(chisq, df - 1)) if df > 1 else float(chisq <= 0.0)
            cur["Pr(>Chisq) boundary"] = 0.5 * lower + 0.5 * float(stats.chi2.sf(chisq, df))
    tab = pd.DataFrame(rows).set_index("model").drop(columns="_ntheta")
    tab.index.name = None
    if tab["Pr(>Chisq) boundary"].notna().any():
        tab.attrs["note"] = (
            "models differ in their random effects: the chi-square p-value is conservative "
            "(a variance is at its boundary 0 under the null); 'Pr(>Chisq) boundary' is the "
            "50:50 chi-bar-square mixture, exact for one variance component"
        )
    return tab


def _anova_loo(fits: tuple, names: list[str]) -> pd.DataFrame:
    loos = [f.loo() for f in fits]
    elpd_i = [np.asarray(lo.elpd_i).ravel() for lo in loos]
    elpd = np.array([float(e.sum()) for e in elpd_i])
    best = int(np.argmax(elpd))
    n = elpd_i[0].size
    rows = []
    for nm, lo, e in zip(names, loos, elpd_i, strict=True):
        diff = e - elpd_i[best]
        rows.append(
            {
                "model": nm,
                "elpd_loo": float(e.sum()),
                "se": float(np.sqrt(n * e.var())),
                "p_loo": float(lo.p),
                "elpd_diff": float(diff.sum()),
                "se_diff": float(np.sqrt(n * diff.var())),
                "max_pareto_k": float(np.nanmax(np.asarray(lo.pareto_k))),
            }
        )
    tab = pd.DataFrame(rows).set_index("model").sort_values("elpd_loo", ascending=False)
    tab.index.name = None
    tab.attrs["note"] = (
        "PSIS-LOO; elpd_diff is each model's expected log predictive density minus the best's, "
        "se_diff the standard error of that difference from the pointwise values"
    )
    return tab
