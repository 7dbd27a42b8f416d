"""Pointwise log-likelihood, PSIS-LOO and WAIC of a fit with draws."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesglmm.errors import BayesGLMMError
from bayesglmm.fit.posterior import posterior_dataset, stack_draws

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike


def attach_log_likelihood(fit: FitLike) -> None:
    """Store the pointwise log-likelihood in ``fit.idata["log_likelihood"]`` (variable ``y``)."""
    post = posterior_dataset(fit.idata)
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    ll = fit.log_likelihood().reshape(nc, nd, -1)
    fit.idata["log_likelihood"] = xr.Dataset(
        {"y": (("chain", "draw", "obs"), ll)},
        coords={"chain": post["chain"].values, "draw": post["draw"].values},
    )


def require_draws(fit: FitLike, what: str) -> None:
    """Raise unless ``fit`` carries posterior draws."""
    if not fit.is_bayesian:
        raise BayesGLMMError(f"`{what}` needs posterior draws (method nuts, laplace or advi)")


def loo(fit: FitLike, group: str | None = None) -> Any:
    """``fit.loo()``: see :meth:`bayesglmm.GLMMFit.loo`."""
    require_draws(fit, "loo")
    if "log_likelihood" not in fit.idata.children:  # fitted with log_likelihood=False
        attach_log_likelihood(fit)
    tree = fit.idata
    w = fit.design.weights
    if w is not None and np.any(np.asarray(w) == 0):
        tree = tree.copy()
        keep = np.flatnonzero(np.asarray(w) > 0)
        tree["log_likelihood"] = tree["log_likelihood"].to_dataset().isel(obs=keep)
    if group is not None:
        blk = next((b for b in fit.design.blocks if b.group == group), None)
        if blk is None:
            raise BayesGLMMError(f"unknown group `{group}`; have {list(fit.design.groups)}")
        ll = tree["log_likelihood"]["y"]
        ll = ll.assign_coords(grp=("obs", np.asarray(blk.levels)[blk.index]))
        tree = tree.copy()
        tree["log_likelihood"] = xr.Dataset({"y": ll.groupby("grp").sum().rename(grp="obs")})
    import arviz_stats as azs

    return azs.loo(tree)


def waic(fit: FitLike) -> pd.Series:
    """``fit.waic()``: see :meth:`bayesglmm.GLMMFit.waic`."""
    require_draws(fit, "waic")
    ll = (
        fit.log_likelihood()
        if "log_likelihood" not in fit.idata.children
        else stack_draws(fit.idata["log_likelihood"]["y"])
    )
    m = ll.max(axis=0)
    lppd_i = m + np.log(np.mean(np.exp(ll - m), axis=0))
    p_i = ll.var(axis=0, ddof=1)
    elpd_i = lppd_i - p_i
    n = elpd_i.size
    return pd.Series(
        {
            "elpd_waic": elpd_i.sum(),
            "se": float(np.sqrt(n * elpd_i.var())),
            "p_waic": p_i.sum(),
            "waic": -2 * elpd_i.sum(),
            "n_high_p": int((p_i > 0.4).sum()),
        }
    )
