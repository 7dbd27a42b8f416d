"""Sampler and optimizer health: the checks, their one set of thresholds, the advice.

:func:`check_health` measures a NUTS run (divergences, R-hat, bulk and tail ESS, E-BFMI,
tree-depth saturation), :func:`health_messages` turns failed checks into the
``SamplerWarning`` texts, and :func:`diagnostics_table` is ``fit.diagnostics()``.  Both the
warnings and the table judge by the thresholds below, so they never disagree.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesglmm.design.separation import ML_UNRELIABLE
from bayesglmm.engines.registry import bayesian_methods
from bayesglmm.errors import SamplerWarning
from bayesglmm.fit.posterior import posterior_dataset

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike

#: R-hat above this: the chains disagree (Vehtari et al. 2021).
MAX_RHAT = 1.01
#: Bulk and tail ESS wanted: 400 (100 per chain for 4 chains), lowered for short runs to
#: 10% of the draws + 100, so a deliberately short run is not flagged for its length alone.
ESS_TARGET = 400.0
#: E-BFMI below this: the sampler explores the energy poorly (Betancourt 2016).
MIN_EBFMI = 0.3
#: Share of transitions at the maximum tree depth above which to warn.
MAX_TREEDEPTH_SATURATION = 0.01
#: Gradient norm of an ML optimum above which lme4 would say "Model failed to converge".
MAX_GRADIENT_NORM = 1e-3


def min_ess(n_draws: int) -> float:
    """The ESS below which bulk or tail ESS is flagged, for a run of ``n_draws`` draws."""
    return min(ESS_TARGET, 0.1 * max(n_draws, 1) + 100)


def _finite(x: float) -> bool:
    return bool(np.isfinite(x))


def _aggregate(node: Any, fn: Any) -> float:
    """``fn`` (min or max) over every finite value of every variable of ``node``."""
    ds = node.to_dataset() if hasattr(node, "to_dataset") else node
    vals = [np.asarray(v.values, dtype=float).ravel() for v in ds.data_vars.values()]
    arr = np.concatenate(vals) if vals else np.array([np.nan])
    arr = arr[np.isfinite(arr)]
    return float(fn(arr)) if arr.size else float("nan")


def check_health(idata: Any, *, emit: bool = True) -> dict[str, Any]:
    """Sampler health: divergences, max R-hat, min bulk/tail ESS, E-BFMI, tree-depth saturation.

    Warns with advice (``SamplerWarning``) when ``emit`` and something is off.
    """
    post = posterior_dataset(idata)
    # latent effects and Cholesky factors are not judged; correlation diagonals are constant 1
    names = [v for v in map(str, post.data_vars) if not v.startswith(("z_", "r_", "chol", "cor_"))]
    sub = post[names]
    out: dict[str, Any] = {}
    nchain = post.sizes.get("chain", 1)
    ndraw = post.sizes.get("draw", 0)
    stats_ds = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else None
    div = 0
    depth_sat = 0.0
    bfmi = float("nan")
    if stats_ds is not None:
        if "diverging" in stats_ds:
            div = int(stats_ds["diverging"].sum())
        for key in ("reached_max_treedepth", "maxdepth_reached"):
            if key in stats_ds:
                depth_sat = float(stats_ds[key].mean())
        if "energy" in stats_ds:
            e = np.asarray(stats_ds["energy"].values, dtype=float)
            bfmi = float(np.min(np.mean(np.diff(e, axis=1) ** 2, axis=1) / np.var(e, axis=1)))
    if nchain >= 2 and ndraw >= 4:
        tree = xr.DataTree.from_dict({"posterior": sub})
        import arviz_stats as azs

        out["max_rhat"] = _aggregate(azs.rhat(tree), np.max)
        out["min_ess_bulk"] = _aggregate(azs.ess(tree, method="bulk"), np.min)
        out["min_ess_tail"] = _aggregate(azs.ess(tree, method="tail"), np.min)
    else:
        out["max_rhat"] = out["min_ess_bulk"] = out["min_ess_tail"] = float("nan")
    out.update(divergences=div, ebfmi=bfmi, treedepth_saturation=depth_sat)
    out["n_draws"] = int(nchain * ndraw)
    if emit:
        for msg in health_messages(out):
            warnings.warn(msg, SamplerWarning, stacklevel=3)
    return out


def health_messages(h: dict[str, Any]) -> list[str]:
    """Plain-language advice for each failed health check."""
    msgs = []
    if h.get("divergences", 0) > 0:
        msgs.append(
            f"{h['divergences']} divergent transitions after tuning: the posterior geometry is "
            "hard for NUTS. Raise target_accept (e.g. 0.95-0.99); if they persist, switch the "
            "random-effect parameterization (centered=True for groups with many observations, "
            "the default non-centred one for few), or use more informative SD priors"
        )
    r = h.get("max_rhat", float("nan"))
    if _finite(r) and r > MAX_RHAT:
        msgs.append(
            f"max R-hat is {r:.4f} (> {MAX_RHAT}): chains disagree. Run longer (more tune and "
            "draws) and check the trace plots"
        )
    e = h.get("min_ess_bulk", float("nan"))
    if _finite(e) and e < min_ess(h.get("n_draws", 0)):
        msgs.append(
            f"minimum bulk ESS is {e:.0f}: posterior means and intervals are noisy. Run more "
            "draws (predictors are standardized internally, so their scale is not the cause)"
        )
    b = h.get("ebfmi", float("nan"))
    if _finite(b) and b < MIN_EBFMI:
        msgs.append(
            f"E-BFMI is {b:.2f} (< {MIN_EBFMI}): the sampler explores the energy poorly; "
            "reparameterize (centred vs non-centred) or use more informative SD priors"
        )
    if h.get("treedepth_saturation", 0.0) > MAX_TREEDEPTH_SATURATION:
        msgs.append(
            f"{100 * h['treedepth_saturation']:.1f}% of transitions hit the maximum tree depth: "
            "reparameterize (centered=) or raise max_treedepth"
        )
    return msgs


def diagnostics_table(fit: FitLike) -> pd.DataFrame:
    """``fit.diagnostics()``: one row per check with its value, threshold, status
    (``ok``/``warn``/``n/a``) and advice."""
    rows: list[tuple[str, Any, str, str, str]] = []

    def add(name: str, value: Any, thresh: str, bad: bool | None, advice: str = "") -> None:
        status = "n/a" if bad is None else ("warn" if bad else "ok")
        rows.append((name, value, thresh, status, advice if bad else ""))

    def below(x: float, low: float) -> bool | None:
        return None if not _finite(x) else x < low

    if fit.method == "nuts" and fit.idata is not None:
        h = fit.health or check_health(fit.idata, emit=False)
        ess = min_ess(h["n_draws"])
        more_draws = "run more draws"
        add(
            "divergences",
            h["divergences"],
            "0",
            h["divergences"] > 0,
            "raise target_accept (0.95-0.99) or switch centring (centered=True/False)",
        )
        rhat = h["max_rhat"]
        add(
            "max_rhat",
            rhat,
            f"<= {MAX_RHAT}",
            None if not _finite(rhat) else rhat > MAX_RHAT,
            "run more tuning and draws",
        )
        add(
            "min_ess_bulk",
            h["min_ess_bulk"],
            f">= {ess:g}",
            below(h["min_ess_bulk"], ess),
            more_draws,
        )
        add(
            "min_ess_tail",
            h["min_ess_tail"],
            f">= {ess:g}",
            below(h["min_ess_tail"], ess),
            more_draws,
        )
        add(
            "ebfmi",
            h["ebfmi"],
            f">= {MIN_EBFMI}",
            below(h["ebfmi"], MIN_EBFMI),
            "reparameterize (centring) or tighten the SD priors",
        )
        add(
            "treedepth_saturation",
            h["treedepth_saturation"],
            f"<= {100 * MAX_TREEDEPTH_SATURATION:g}%",
            h["treedepth_saturation"] > MAX_TREEDEPTH_SATURATION,
            "reparameterize (centered=) or raise max_treedepth",
        )
    if fit.ml is not None:
        ml = fit.ml
        add(
            "optimizer_converged",
            bool(ml.converged),
            "True",
            not ml.converged,
            "check for separation; simplify the random effects; try another start",
        )
        add(
            "gradient_norm",
            float(ml.grad_norm),
            "< 1e-3",
            float(ml.grad_norm) > MAX_GRADIENT_NORM,
            "simplify the model or try another start (lme4: 'Model failed to converge')",
        )
        add(
            "singular",
            bool(ml.singular),
            "False",
            bool(ml.singular),
            "a variance is 0: simplify the random-effect structure",
        )
        if fit.method == "ml" and fit.design.family.is_binomial:
            sep = [m for m in ml.messages if m.startswith(ML_UNRELIABLE)]
            add(
                "separation",
                bool(sep),
                "False",
                bool(sep),
                "ML estimates are unreliable (infinite): fit with a Bayesian method (the "
                "priors keep the posterior proper) or merge the separating levels",
            )
    if fit.method != "nuts" and fit.method in bayesian_methods():
        conv = fit.options.get("converged")
        add(
            "optimizer_converged",
            conv,
            "True",
            None if conv is None else not conv,
            "raise the iteration count or lower the learning rate",
        )
    return pd.DataFrame(rows, columns=["check", "value", "threshold", "status", "advice"])
