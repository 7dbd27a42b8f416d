"""Simulation-based calibration of NUTS, the Bayesian Laplace and ADVI (writes sbc.md).

Three random-intercept models, ``y ~ x + (1 | g)`` with a Poisson, a Bernoulli and a
negative binomial (NB2) response, on seeded simulated covariates and groups, with explicit
proper priors (SBC draws the true parameters from the prior, so the data-scaled defaults,
which depend on ``y``, are not used; the negative binomial's shape has the informative
``Gamma(4, 1)``: the default ``Gamma(0.01, 0.01)`` puts most of its mass on shapes that give
all-zero or astronomically large counts).  A method a family does not support (listed in
its ``unsupported``) is skipped with a note.  Each method refits the same simulated data
sets (same seeds) on a
dask ``LocalCluster`` with 2 single-threaded workers (``bg.sbc``'s default); ranks are
taken among 99 evenly thinned posterior draws (100 possible ranks).

Run ``make sbc`` or ``python benchmarks/sbc.py [--n-sims 200] [--methods nuts,laplace,advi]``.
Ranks, per-simulation diagnostics and plots go to ``benchmarks/sbc/``; the part of
``benchmarks/sbc.md`` after ``<!-- results -->`` is rewritten, the notes above it kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesglmm as bg

HERE = Path(__file__).resolve().parent
OUT = HERE / "sbc"
MARKER = "<!-- results -->"
ALPHA = 0.01  # the issue's level: no test may reject at 1% for NUTS

N_GROUPS, N_PER_GROUP = 25, 8
PRIORS = {
    "intercept": {"dist": "Normal", "mu": 0, "sigma": 1},
    "fixed": {"dist": "Normal", "mu": 0, "sigma": 1},
    "sd": {"dist": "HalfNormal", "sigma": 1},
}
#: extra priors per family (its dispersion)
FAMILY_PRIORS = {"negativebinomial": {"shape": {"dist": "Gamma", "alpha": 4, "beta": 1}}}
FIT_KWARGS = {
    # 4000 draws thinned to 99: with informative groups the non-centred Poisson model mixes
    # slowly (bulk ESS of the intercept and SD ~5% of the draws), and 2 x 500 + 500 left
    # ESS < 99 in a fifth of the pilot fits, i.e. autocorrelated thinned draws
    "nuts": {"draws": 2000, "tune": 1000, "chains": 2},
    "laplace": {"draws": 200},
    "advi": {"draws": 200},
}


def make_model(family: str, seed: int = 20240601) -> bg.GLMM:
    """The template model: covariate ``x ~ N(0, 1)``, 25 groups x 8 rows (seeded).

    The response column is a placeholder: SBC replaces it by prior-predictive draws.
    With these priors the linear predictor has prior SD ``sqrt(1 + 1 + 1) ~ 1.7``, so
    Poisson means above ``e^8`` (about 3000) have prior probability below 1e-5.
    """
    rng = np.random.default_rng(seed)
    n = N_GROUPS * N_PER_GROUP
    df = pd.DataFrame(
        {
            "y": np.arange(n) % 2,
            "x": rng.normal(size=n),
            "g": np.repeat([f"g{i:02d}" for i in range(N_GROUPS)], N_PER_GROUP),
        }
    )
    return bg.GLMM(
        "y ~ x + (1 | g)", df, family, priors={**PRIORS, **FAMILY_PRIORS.get(family, {})}
    )


def _fmt_p(p: float, floor: float = 0.0) -> str:
    if p <= floor * (1 + 1e-9):
        return f"<= {p:.1e}"  # no null draw as extreme: the Monte Carlo floor
    return f"{p:.1e}" if p < 0.01 else f"{p:.3f}"


def machine() -> str:
    """CPU, cores, versions and the git commit, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import dask
    import nutpie
    import pymc

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=HERE,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"PyMC {pymc.__version__}, nutpie {nutpie.__version__}, dask {dask.__version__}, "
        f"bayesglmm at {commit}"
    )


def summarize(model: str, method: str, res: bg.SBCResult, wall: float) -> list[dict]:
    """One row per parameter: both p-values, rank mean/SD, and the run's totals."""
    uni = res.uniformity()
    d = res.diagnostics
    rows = []
    for p in res.ranks.columns:
        u = (res.ranks[p].to_numpy() + 0.5) / res.n_ranks
        rows.append(
            {
                "model": model,
                "method": method,
                "parameter": p,
                "sims": len(res.ranks),
                "failed": len(res.failures),
                "p_chi2": float(uni.loc[p, "p_chi2"]),
                "p_ecdf": float(uni.loc[p, "p_gamma"]),
                "reject_1pct": bool(min(uni.loc[p, "p_chi2"], uni.loc[p, "p_gamma"]) < ALPHA),
                "rank_mean": float(u.mean()),
                "rank_sd": float(u.std()),
                "wall_s": wall,
                "fit_s": float(d["elapsed_s"].mean()) if "elapsed_s" in d else float("nan"),
            }
        )
    return rows


def nuts_health(res: bg.SBCResult) -> str:
    """One line on the NUTS fits' health across simulations."""
    d = res.diagnostics
    if d.empty or "divergences" not in d:
        return ""
    div = d["divergences"]
    return (
        f"{int((div > 0).sum())} of {len(d)} fits with divergences ({int(div.sum())} in all); "
        f"R-hat max {d['max_rhat'].max():.3f} (> 1.01 in {int((d['max_rhat'] > 1.01).sum())}); "
        f"bulk ESS min {d['min_ess_bulk'].min():.0f}, median {d['min_ess_bulk'].median():.0f}; "
        f"tail ESS min {d['min_ess_tail'].min():.0f}"
    )


def save_plot(res: bg.SBCResult, family: str, n_failed: int) -> None:
    """Rank histograms and ECDF differences at the 1% level, as ``sbc/<model>_<method>.png``."""
    fig = res.plot(
        alpha=ALPHA,
        title=f"{family} random intercept: {res.method}, {len(res.ranks)} simulations, "
        f"{n_failed} failed (99% bands; ECDF band simultaneous)",
    )
    fig.savefig(OUT / f"{family}_{res.method}.png", dpi=80)
    plt.close(fig)


def replot() -> None:
    """Redraw the PNGs from the saved ranks (no refits)."""
    summary = pd.read_csv(OUT / "summary.csv").drop_duplicates(["model", "method"])
    for _, row in summary.iterrows():
        stem = f"{row['model']}_{row['method']}"
        ranks = pd.read_csv(OUT / f"{stem}_ranks.csv", index_col="sim")
        res = bg.SBCResult(ranks=ranks, n_draws=99, method=row["method"])
        save_plot(res, row["model"], int(row["failed"]))


def run(models: list[str], methods: list[str], n_sims: int, seed: int) -> tuple[list, list]:
    """Run every model x method; save ranks, diagnostics and plots; return rows and notes."""
    OUT.mkdir(exist_ok=True)
    rows: list[dict] = []
    notes: list[str] = []
    for family in models:
        model = make_model(family)
        for method in methods:
            if method in model.design.family.spec.unsupported:
                notes.append(f"* {family} / {method}: not run (the family does not support it)")
                continue
            print(f"{family} / {method}: {n_sims} simulations ...", flush=True)
            t0 = time.perf_counter()
            if method in ("advi", "fullrank_advi"):
                # ship a built PyMC model: each refit swaps y with pm.set_data instead of
                # rebuilding it (safe: the default LocalCluster has 1 thread per worker)
                model.build()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = bg.sbc(
                    model,
                    n_sims=n_sims,
                    method=method,
                    n_draws=99,
                    random_seed=seed,
                    fit_kwargs=FIT_KWARGS.get(method, {}),
                )
            wall = time.perf_counter() - t0
            stem = f"{family}_{method}"
            res.ranks.to_csv(OUT / f"{stem}_ranks.csv", index_label="sim")
            res.diagnostics.round(4).to_csv(OUT / f"{stem}_diagnostics.csv", index_label="sim")
            save_plot(res, family, len(res.failures))
            new = summarize(family, method, res, wall)
            rows += new
            print(pd.DataFrame(new).round(4).to_string(index=False), flush=True)
            if method == "nuts":
                notes.append(f"* {family} / nuts: {nuts_health(res)}")
            if res.failures:
                msgs = pd.Series(res.failures).value_counts()
                for msg, k in msgs.items():
                    notes.append(f"* {family} / {method}: {k} failed: `{msg[:200]}`")
            if "converged" in res.diagnostics:
                nc = int((res.diagnostics["converged"] == 0).sum())
                notes.append(f"* {family} / {method}: {nc} of {len(res.ranks)} fits not converged")
    return rows, notes


def write_report(rows: list[dict], notes: list[str], header: str, started: str) -> None:
    """Rewrite the results part of sbc.md (the notes above the marker are kept)."""
    table = pd.DataFrame(rows)
    path = HERE / "sbc.md"
    text = path.read_text() if path.exists() else ""
    head = text.split(MARKER)[0] if MARKER in text else "# Simulation-based calibration\n\n"
    runs = table.drop_duplicates(["model", "method"])[
        ["model", "method", "sims", "failed", "wall_s", "fit_s"]
    ]
    lines = [
        MARKER,
        "",
        "## Last run",
        "",
        header,
        "",
        f"Started {started}. Level of the tests: {ALPHA:.0%} (a row is flagged when either "
        "test rejects). `rank mean` and `rank sd` are of the normalized ranks (uniform: "
        "0.5 and 0.289); mean > 0.5: the truth tends to lie above the posterior (the method "
        "underestimates), sd > 0.289: ranks pile up at both ends (posterior too narrow).",
        "",
        "| model | method | parameter | sims | failed | p (chi-square) | p (ECDF) | "
        "rejects at 1% | rank mean | rank sd |",
        "|---|---|---|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | `{r['parameter']}` | {r['sims']} | {r['failed']} "
            f"| {_fmt_p(r['p_chi2'])} | {_fmt_p(r['p_ecdf'], floor=1 / 10_001)} | {'**yes**' if r['reject_1pct'] else 'no'} "
            f"| {r['rank_mean']:.3f} | {r['rank_sd']:.3f} |"
        )
    lines += [
        "",
        "Wall time per model x method (2 dask workers, including cluster start-up) and mean "
        "time per fit inside a worker:",
        "",
        "| model | method | sims ok | failed | wall (s) | per fit (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for _, r in runs.iterrows():
        lines.append(
            f"| {r['model']} | {r['method']} | {r['sims']} | {r['failed']} | {r['wall_s']:.0f} "
            f"| {r['fit_s']:.2f} |"
        )
    lines += ["", "Fit health and failures:", "", *notes, "", "## Plots", ""]
    lines += [
        "Top: rank histograms with the pointwise 99% binomial band per bin. Bottom: ECDF of "
        "the normalized ranks minus the uniform CDF, with the simultaneous 99% band "
        "(Säilynoja et al. 2022).",
        "",
    ]
    for _, r in runs.iterrows():
        stem = f"{r['model']}_{r['method']}"
        lines.append(f"![{r['model']} {r['method']}](sbc/{stem}.png)")
        lines.append("")
    path.write_text(head + "\n".join(lines))
    table.round(5).to_csv(OUT / "summary.csv", index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sims", type=int, default=200)
    ap.add_argument("--methods", default="nuts,laplace,advi")
    ap.add_argument("--models", default="poisson,bernoulli,negativebinomial")
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--replot", action="store_true", help="redraw the PNGs from saved ranks")
    args = ap.parse_args()
    if args.replot:
        replot()
        return
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows, notes = run(args.models.split(","), args.methods.split(","), args.n_sims, args.seed)
    total = time.perf_counter() - t0
    header = (
        f"Machine: {machine()}. Total wall time {total / 60:.1f} min; load average "
        f"{load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (other jobs share "
        f"the cores). Seed {args.seed}; {N_GROUPS} groups x {N_PER_GROUP} rows; NUTS "
        f"{FIT_KWARGS['nuts']['chains']} chains x {FIT_KWARGS['nuts']['tune']} tuning + "
        f"{FIT_KWARGS['nuts']['draws']} draws, Laplace and ADVI "
        f"{FIT_KWARGS['laplace']['draws']} draws, all thinned to 99."
    )
    write_report(rows, notes, header, started)
    print(f"total {total:.0f} s; wrote {HERE / 'sbc.md'}")


if __name__ == "__main__":
    main()
