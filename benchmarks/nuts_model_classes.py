"""Per-draw mixing of the default NUTS sampler against PyMC's NUTS, per model class (issue 14).

Four model classes, each on seeded simulated data: a Poisson observation-level effect
(lme4 glmer-1.R's ``rPoisGLMMi(12, 20)``), crossed ``(1 | g) + (1 | h)``, nested
``(1 | a / b)`` with few rows per inner group, and a correlated random slope
``(1 + x | g)``.  For every class and sampler seed, the default sampler (nutpie on the
fused kernel) and ``sampler="pymc"`` run at the same draws, tune, chains and
target_accept; the row gives both minimum bulk ESS (over the parameters the health check
judges: intercept, slopes, SDs, dispersion, not the latent effects), the parameter that
attains it, and the ratio default / pymc.  The summary gives the mean, median and minimum
ratio per class (the issue's target: at least 0.8).

Run alone: ``python benchmarks/nuts_model_classes.py [--seeds 1 2 3 4] [--classes nested]``;
``benchmarks/run.py`` adds the summary rows (:func:`summary_rows`, 2 seeds per class).
ESS does not depend on the machine's load, so the figures are comparable across runs.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

import bayesglmm as bg

#: draws, tune and chains of every fit (both samplers)
SETTINGS = {"draws": 1000, "tune": 1000, "chains": 2}


def observation_level(seed: int = 20) -> pd.DataFrame:
    """Poisson, ``rPoisGLMMi(ng=12, nr=20, sd=c(f=1, ind=0.5), b=c(1, 2))``: 240 rows."""
    rng = np.random.default_rng(seed)
    ng, nr = 12, 20
    n = ng * nr
    g = np.repeat(np.arange(ng), nr)
    x = rng.uniform(size=n)
    eta = 1 + 2 * x + rng.normal(0, 1.0, ng)[g] + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "y": rng.poisson(np.exp(eta)),
            "x": x,
            "f": np.char.mod("g%d", g),
            "obs": np.char.mod("o%d", np.arange(n)),
        }
    )


def crossed(seed: int = 21) -> pd.DataFrame:
    """Bernoulli, ``(1 | g) + (1 | h)``: 40 x 15 levels, every pair once (600 rows), SDs 1 / 0.5."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(40), 15)
    h = np.tile(np.arange(15), 40)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.5 * x + 1.0 * rng.normal(size=40)[g] + 0.5 * rng.normal(size=15)[h]
    return pd.DataFrame(
        {
            "y": rng.binomial(1, expit(eta)),
            "x": x,
            "g": np.char.mod("g%d", g),
            "h": np.char.mod("h%d", h),
        }
    )


def nested(seed: int = 22) -> pd.DataFrame:
    """Bernoulli, ``(1 | a / b)``: 30 ``a`` x 5 ``b`` x 4 rows (600 rows), SDs 0.8 / 0.5."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(30), 20)
    b = np.tile(np.repeat(np.arange(5), 4), 30)
    x = rng.normal(size=a.size)
    eta = 0.2 + 0.5 * x + 0.8 * rng.normal(size=30)[a] + 0.5 * rng.normal(size=(30, 5))[a, b]
    return pd.DataFrame(
        {
            "y": rng.binomial(1, expit(eta)),
            "x": x,
            "a": np.char.mod("a%d", a),
            "b": np.char.mod("b%d", b),
        }
    )


def random_slope(seed: int = 23) -> pd.DataFrame:
    """Bernoulli, ``(1 + x | g)``: 40 groups x 15 rows, SDs 0.8 / 0.4, correlation 0.3."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(40), 15)
    x = rng.normal(size=g.size)
    C = np.array([[0.64, 0.096], [0.096, 0.16]])
    r = rng.multivariate_normal([0.0, 0.0], C, 40)
    eta = -0.2 + 0.5 * x + r[g, 0] + r[g, 1] * x
    return pd.DataFrame({"y": rng.binomial(1, expit(eta)), "x": x, "g": np.char.mod("g%d", g)})


#: class -> (data, formula, family)
CLASSES: dict[str, tuple[Callable[[], pd.DataFrame], str, str]] = {
    "observation-level": (observation_level, "y ~ x + (1 | f) + (1 | obs)", "poisson"),
    "crossed": (crossed, "y ~ x + (1 | g) + (1 | h)", "bernoulli"),
    "nested": (nested, "y ~ x + (1 | a / b)", "bernoulli"),
    "random slope": (random_slope, "y ~ x + (1 + x | g)", "bernoulli"),
}


def min_bulk_ess(fit: Any) -> tuple[float, str]:
    """The minimum bulk ESS over the parameters the health check judges, and its name."""
    import arviz_stats as azs

    post = fit.idata["posterior"].to_dataset()
    names = [v for v in map(str, post.data_vars) if not v.startswith(("z_", "r_", "chol", "cor_"))]
    tree = bg_tree(post[names])
    ess = azs.ess(tree, method="bulk")
    ds = ess.to_dataset() if hasattr(ess, "to_dataset") else ess
    best, arg = float("inf"), ""
    for name, da in ds.data_vars.items():
        vals = np.asarray(da.values, dtype=float).ravel()
        if vals.size and np.nanmin(vals) < best:
            best, arg = float(np.nanmin(vals)), str(name)
    return best, arg


def bg_tree(ds: Any) -> Any:
    """A DataTree with ``ds`` as its posterior group (what arviz-stats reads)."""
    import xarray as xr

    return xr.DataTree.from_dict({"posterior": ds})


def run_one(name: str, seed: int, sampler: str = "auto", **options: Any) -> dict[str, Any]:
    """One fit of class ``name`` at sampler seed ``seed``: min bulk ESS, its parameter,
    mean leapfrog steps per draw and wall seconds."""
    make, formula, family = CLASSES[name]
    model = bg.GLMM(formula, make(), family)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(
            sampler=sampler, random_seed=seed, log_likelihood=False, **SETTINGS, **options
        )
    secs = time.perf_counter() - t0
    ess, arg = min_bulk_ess(fit)
    stats = fit.idata["sample_stats"].to_dataset()
    steps = next((stats[k] for k in ("n_steps", "tree_size") if k in stats), None)
    return {
        "ess": ess,
        "worst": arg,
        "steps": float(steps.mean()) if steps is not None else float("nan"),
        "divergences": int(stats["diverging"].sum()) if "diverging" in stats else 0,
        "seconds": secs,
        "sampler": fit.options.get("sampler"),
    }


def compare(classes: list[str], seeds: list[int], **options: Any) -> pd.DataFrame:
    """Per class and seed: the default sampler's and PyMC's min bulk ESS and their ratio.

    ``options`` go to the default sampler's fit only (PyMC's NUTS is the fixed reference)."""
    rows = []
    for name in classes:
        for seed in seeds:
            ours = run_one(name, seed, **options)
            ref = run_one(name, seed, sampler="pymc")
            rows.append(
                {
                    "class": name,
                    "seed": seed,
                    "ess_default": round(ours["ess"], 1),
                    "worst_default": ours["worst"],
                    "steps_default": round(ours["steps"], 1),
                    "ess_pymc": round(ref["ess"], 1),
                    "worst_pymc": ref["worst"],
                    "steps_pymc": round(ref["steps"], 1),
                    "ratio": round(ours["ess"] / ref["ess"], 3),
                    "div_default": ours["divergences"],
                    "div_pymc": ref["divergences"],
                }
            )
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and minimum ratio per class, with the number of seeds."""
    g = table.groupby("class", sort=False)["ratio"]
    return pd.DataFrame(
        {
            "seeds": g.size(),
            "mean_ratio": g.mean().round(3),
            "median_ratio": g.median().round(3),
            "min_ratio": g.min().round(3),
            "median_ess_default": table.groupby("class", sort=False)["ess_default"].median(),
            "median_ess_pymc": table.groupby("class", sort=False)["ess_pymc"].median(),
        }
    ).reset_index()


def summary_rows(seeds: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    """``make bench`` rows: per class, the median ratio of min bulk ESS, default / PyMC."""
    table = compare(list(CLASSES), list(seeds))
    out = []
    for _, r in summarize(table).iterrows():
        out.append(
            {
                "work": (
                    f"NUTS per draw, {r['class']}: median min bulk ESS default / pymc, "
                    f"{SETTINGS['chains']}x({SETTINGS['tune']}+{SETTINGS['draws']}), "
                    f"seeds {', '.join(map(str, seeds))}"
                ),
                "ours_s": float(r["median_ess_default"]),
                "peer": "sampler=pymc (target ratio 0.8)",
                "peer_s": float(r["median_ess_pymc"]),
                "ratio": float(r["median_ratio"]),
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--classes", nargs="+", default=list(CLASSES), choices=list(CLASSES))
    args = p.parse_args()
    table = compare(args.classes, args.seeds)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
        print(summarize(table).to_string(index=False))


if __name__ == "__main__":
    main()
