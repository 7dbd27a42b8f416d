"""The parameter table of a fit, ``fit.summary()``: ArviZ's for draws; for ML, lmer's (a linear
mixed model) or glmer's."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from bayesglmm import posterior_names as nm
from bayesglmm.fit.posterior import posterior_dataset
from bayesglmm.intervals import CI_PROB

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike


def parameter_draws(fit: FitLike) -> xr.Dataset:
    """The named parameters as scalar (chain, draw) variables, under the names every
    table uses: ``(Intercept)`` and the predictors as in ``fixef()``, ``sd(g: term)``,
    ``cor(g: a, b)`` and ``sigma`` as in ``compare()``."""
    post = posterior_dataset(fit.idata)
    d = fit.design
    dims = ("chain", "draw")
    out: dict[str, Any] = {}
    slopes = [n for n in d.x_names if n != "(Intercept)"]
    for name in d.x_names:
        if name == "(Intercept)":
            out[name] = (dims, post[nm.INTERCEPT].values)
        else:
            out[name] = (dims, post[nm.BETA].values[..., slopes.index(name)])
    for lab, b in zip(fit.labels, d.blocks, strict=True):
        sd = post[nm.sd(lab)].values
        for j, t in enumerate(b.terms):
            out[f"sd({b.group}: {t})"] = (dims, sd[..., j])
        if nm.cor(lab) in post:
            cor = post[nm.cor(lab)].values
            for j in range(b.n_terms):
                for k in range(j + 1, b.n_terms):
                    out[f"cor({b.group}: {b.terms[j]}, {b.terms[k]})"] = (dims, cor[..., j, k])
    if nm.SIGMA in post:
        out[nm.SIGMA] = (dims, post[nm.SIGMA].values)
    for disp in d.family.dispersion:  # other dispersions by name (negative binomial shape)
        if disp.name != nm.SIGMA and disp.name in post:
            out[disp.name] = (dims, post[disp.name].values)
    return xr.Dataset(out, coords={"chain": post["chain"].values, "draw": post["draw"].values})


def summary_table(fit: FitLike, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """``fit.summary()``: see :meth:`bayesglmm.GLMMFit.summary`."""
    if fit.ml is None:
        ds = parameter_draws(fit)
        kind = "all" if fit.method == "nuts" else "stats"
        import arviz_stats as azs

        table = azs.summary(ds, kind=kind, ci_kind="eti", ci_prob=ci_prob)
        return pd.DataFrame(table)
    est = fit.fixef()
    se = fit.se()
    z = est / se
    fam = fit.design.family
    if fam.is_linear:
        # lmer's table: a t value and no p-value (its reference distribution needs
        # denominator degrees of freedom, which lme4 leaves to lmerTest)
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": z}, index=est.index)
    # glmer's: a Wald z test; "t value" for a family with an estimated scale (lme4's Gamma,
    # whose p-value is still the normal one, Pr(>|z|))
    p = special.erfc(np.abs(z) / math.sqrt(2.0))
    zname = "t value" if fam.has_dispersion and not fam.spec.wald_z else "z value"
    return pd.DataFrame(
        {"Estimate": est, "Std. Error": se, zname: z, "Pr(>|z|)": p}, index=est.index
    )
