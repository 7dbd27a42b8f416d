"""Speed against the peers, measured side by side in one run (``make bench``).

Prints one table (work, ours, peer, ratio = peer time / our time, largest estimate
difference) and writes it, with the machine and the date, to ``benchmarks/README.md``.
Peers: the ``glmm`` package (Laplace/AGQ) and bambi for NUTS when installed; R's ``glmer``
(every ML row) and rstanarm's ``stan_glmer`` (toenail NUTS) when ``Rscript`` with lme4 /
rstanarm is present (:mod:`r_peers`).  Without them their rows say why (``R unavailable (no
Rscript)``) and the run goes on.  ``--sizes`` sets the simulated sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from ml_structures import structure_rows
from r_peers import glmer_row, rstanarm_row
from scipy.special import expit

import bayesglmm as bg

HERE = Path(__file__).parent


def simulate(n: int, groups: int, seed: int = 1) -> pd.DataFrame:
    """Seeded Bernoulli random-intercept data with 3 covariates."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    X = rng.normal(size=(n, 3))
    y = rng.binomial(1, expit(-0.5 + X @ [0.5, -0.3, 0.2] + rng.normal(0, 1.0, groups)[g]))
    return pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "g": g})


def timed(fn, reps: int = 1):  # noqa: ANN001, ANN201
    """``(fn(), seconds)``, the best of ``reps`` runs (timeit's rule, applied to us and peers
    alike); the lambdas passed here run at once, so late binding is moot."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def blas_info() -> str:
    """The BLAS libraries loaded in this process (NumPy's, SciPy's)."""
    try:
        from threadpoolctl import threadpool_info

        libs = {f"{i['internal_api']} {i['version']}" for i in threadpool_info()}
        return ", ".join(sorted(libs)) or "unknown"
    except ImportError:
        return "unknown (threadpoolctl not installed)"


def plot_scaling(rows: list[dict], path: Path) -> None:
    """Log-log plot of Laplace ML fit time against rows, ours and glmm's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sim = [r for r in rows if r["work"].startswith("sim ") and r.get("peer") == "glmm"]
    if not sim:
        return
    n = [float(r["work"].split()[1]) for r in sim]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(n, [r["ours_s"] for r in sim], "o-", label="bayesglmm Laplace ML")
    ax.loglog(n, [r["peer_s"] for r in sim], "s--", label="glmm (Rust) Laplace")
    ax.set_xlabel("rows (groups = rows / 20)")
    ax.set_ylabel("seconds, DataFrame to fit")
    ax.set_title("Bernoulli random intercept, 3 covariates")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def ml_rows(sizes: list[int]) -> list[dict]:
    import glmm

    tn = bg.datasets.load("toenail")
    tn["y"] = (tn["outcome"] == "moderate or severe").astype(int)
    tn["trt"] = (tn["treatment"] == "terbinafine").astype(int)
    hdp = bg.datasets.load("hdp")
    work = [
        ("toenail Laplace", tn, "y ~ trt * time + (1 | patientID)", 1),
        ("toenail AGQ-25", tn, "y ~ trt * time + (1 | patientID)", 25),
        ("hdp remission Laplace", hdp, "remission ~ Age + Married + IL6 + (1 | DID)", 1),
    ]
    work += [
        (
            f"sim {n:.0e} rows Laplace",
            simulate(n, max(n // 20, 10)),
            "y ~ x1 + x2 + x3 + (1 | g)",
            1,
        )
        for n in sizes
    ]
    rows = []
    for name, df, formula, q in work:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reps = 3 if len(df) <= 100_000 else 1  # best of 3 for both, on small data
            ours, t_ours = timed(
                lambda: bg.GLMM(formula, df, "bernoulli").fit(method="ml", nagq=q),  # noqa: B023
                reps,
            )
            peer, t_peer = timed(
                reps=reps,
                fn=lambda: glmm.fit(df, formula, family="binomial", nagq=q),  # noqa: B023
            )
        diff = float(np.max(np.abs(ours.fixef().to_numpy() - np.asarray(peer.beta, dtype=float))))
        rows.append(
            {
                "work": name,
                "ours_s": t_ours,
                "peer": "glmm",
                "peer_s": t_peer,
                "ratio": t_peer / t_ours,
                "max_fixef_diff": diff,
                "loglik_diff": float(ours.loglik - peer.loglik),
            }
        )
        rows.append(_with_ours(glmer_row(name, df, formula, nagq=q), ours, t_ours))
        print(rows[-2:], flush=True)
    return rows


def _with_ours(row: dict, ours: bg.GLMMFit, t_ours: float) -> dict:
    """An R peer's row with our time, the ratio and the differences filled in (when it ran)."""
    peer_fixef = row.pop("peer_fixef", None)
    peer_loglik = row.pop("peer_loglik", None)
    row["ours_s"] = t_ours
    if "peer_s" in row:
        row["ratio"] = row["peer_s"] / t_ours
    if peer_fixef:
        fx = ours.fixef()
        common = [k for k in fx.index if k in peer_fixef]
        row["max_fixef_diff"] = float(max(abs(fx[k] - peer_fixef[k]) for k in common))
    if peer_loglik is not None and ours.ml is not None:
        row["loglik_diff"] = float(ours.loglik - peer_loglik)
    return row


def _bambi_ess_per_s(
    df: pd.DataFrame, formula: str, inference_method: str = "pymc"
) -> tuple[float, float]:
    """bambi: (wall seconds, min bulk ESS / s), DataFrame to draws.

    ``inference_method="pymc"`` is bambi's default (it calls ``pm.sample`` with
    ``nuts_sampler="pymc"``, PyMC's own NUTS, even when nutpie is installed); "nutpie" is
    bambi's nutpie backend.  A short untimed fit first warms PyTensor's disk cache for this
    graph, as the issue's protocol ("warm disk cache") asks; ours gets the same warm-up.
    """
    import arviz as az
    import bambi as bmb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bmb.Model(formula, df, family="bernoulli").fit(
            draws=20, tune=20, chains=1, random_seed=1, inference_method=inference_method
        )
    t0 = time.perf_counter()
    idata = bmb.Model(formula, df, family="bernoulli").fit(
        draws=1000, tune=1000, chains=2, random_seed=1, inference_method=inference_method
    )
    wall = time.perf_counter() - t0
    ess = az.ess(idata, method="bulk")
    ds = ess.to_dataset() if hasattr(ess, "to_dataset") else ess
    vals = [float(v.min()) for k, v in ds.data_vars.items() if "|" not in k or "sigma" in k]
    return wall, min(vals) / wall


def _sampling_time(fit: bg.GLMMFit) -> float:
    for group in ("sample_stats", "posterior"):
        val = fit.idata[group].attrs.get("sampling_time")
        if val is not None:
            return float(val)
    return float("nan")


def refit_rows(
    name: str, model: bg.GLMM, fit: bg.GLMMFit, df: pd.DataFrame, n_refits: int = 5
) -> list[dict]:
    """Overhead beyond sampling of refits to new data of the same shape (target 0.5 s).

    The responses are simulated from the fitted model (posterior means), as in SBC or a
    parametric bootstrap. Three ways to refit, each timed by the wall clock around the whole
    call minus the sampler's own time: ``model.with_response(y).fit(...)``; a new
    ``bg.GLMM(formula, new_df)`` on a copy of the DataFrame with the new response (formula
    parsing and design included), as a hand-written bootstrap loop would do; and the same
    with ``log_likelihood=False``, as SBC runs (the pointwise log-likelihood for LOO is
    one pass over rows x draws).
    """
    rng = np.random.default_rng(7)
    n = model.design.n
    mu = np.asarray(fit.predict(kind="response"), dtype=float).reshape(-1, n).mean(axis=0)
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=2)
    ways = {
        "with_response": lambda y: model.with_response(y).fit(**kw),
        "new GLMM on a new DataFrame": lambda y: bg.GLMM(
            model.design.formula, df.assign(**{model.design.response_name: y}), "bernoulli"
        ).fit(**kw),
        "new GLMM, log_likelihood=False": lambda y: bg.GLMM(
            model.design.formula, df.assign(**{model.design.response_name: y}), "bernoulli"
        ).fit(log_likelihood=False, **kw),
    }
    over: dict[str, list[float]] = {how: [] for how in ways}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_refits):
            y = rng.binomial(1, mu)
            for how, refit_fn in ways.items():
                refit, wall = timed(lambda: refit_fn(y))  # noqa: B023
                over[how].append(wall - _sampling_time(refit))
    return [
        {
            "work": f"{name} NUTS refit overhead beyond sampling, {how} (mean of {n_refits})",
            "ours_s": float(np.mean(v)),
            "peer": "target 0.5 s",
            "peer_s": 0.5,
            "ratio": 0.5 / float(np.mean(v)),
        }
        for how, v in over.items()
    ]


def backend_rows(name: str, model: bg.GLMM) -> list[dict]:
    """Our NUTS on the other installed backends (PyMC's NUTS, nutpie compiling the PyMC
    model, numpyro): wall time split into compile and sampling, min bulk ESS/s."""
    import importlib.util

    rows = []
    for sampler in ("pymc", "nutpie", "numpyro"):
        if importlib.util.find_spec(sampler) is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit, t = timed(
                lambda: model.fit(draws=1000, tune=1000, chains=2, random_seed=1, sampler=sampler)  # noqa: B023
            )
        sampling = _sampling_time(fit)
        rows.append(
            {
                "work": f"{name} NUTS 2x(1000+1000), sampler={sampler}",
                "ours_s": t,
                "compile_s": t - sampling,
                "sample_s": sampling,
                "ours_ess_per_s": fit.health["min_ess_bulk"] / t,
            }
        )
    return rows


_MEMORY_SCRIPT = """
import pickle, resource, sys, warnings
warnings.simplefilter("ignore")
def peak_mb():
    # VmHWM: this process's own peak RSS (ru_maxrss also counts the parent's RSS at fork,
    # which Linux carries across exec, so a large parent would hide the child's peak)
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if {ours}:
    import bayesglmm as bg
else:
    import glmm
with open({path!r}, "rb") as f:
    df = pickle.load(f)
print(peak_mb())
if {ours}:
    bg.GLMM("y ~ x1 + x2 + x3 + (1 | g)", df, "bernoulli").fit(method="ml")
else:
    glmm.fit(df, "y ~ x1 + x2 + x3 + (1 | g)", family="binomial", nagq=1)
print(peak_mb())
"""


def memory_row(n: int = 1_000_000) -> dict:
    """Peak resident memory (MB) of a fresh process that loads n simulated rows and fits
    them by Laplace ML: ours against glmm's (target: under 1 GB at 1e6 rows).

    Each process imports only its own library and unpickles the same DataFrame; the row
    reports the whole process's peak, and ``fit_mb`` how far the fit raised it above the
    peak after imports and data (0 when the fit stays below that).
    """
    import pickle
    import subprocess
    import sys
    import tempfile

    peak, rise = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sim.pkl")
        with open(path, "wb") as f:
            pickle.dump(simulate(n, n // 20), f)
        for ours in (True, False):
            code = _MEMORY_SCRIPT.format(path=path, ours=ours)
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=False
            )
            lines = out.stdout.strip().splitlines()
            ok = out.returncode == 0 and len(lines) >= 2
            before = float(lines[-2]) if ok else float("nan")
            peak[ours] = float(lines[-1]) if ok else float("nan")
            rise[ours] = peak[ours] - before
    return {
        "work": f"sim {n:.0e} rows Laplace: peak memory, MB (process, data included)",
        "ours_s": peak[True],
        "peer": "glmm",
        "peer_s": peak[False],
        "ratio": peak[False] / peak[True],
        "ours_fit_mb": rise[True],
        "peer_fit_mb": rise[False],
    }


def nuts_rows() -> list[dict]:
    """NUTS wall time split into compile and sampling, min bulk ESS/s; bambi side by side."""
    rows = []
    tn = bg.datasets.load("toenail")
    tn["y"] = (tn["outcome"] == "moderate or severe").astype(int)
    hdp = bg.datasets.load("hdp")
    work = [
        ("toenail", tn, "y ~ treatment * time + (1 | patientID)"),
        ("hdp remission", hdp, "remission ~ Age + Married + IL6 + (1 | DID)"),
    ]
    for name, df, formula in work:
        first = len(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = bg.GLMM(formula, df, "bernoulli")
            model.fit(draws=20, tune=20, chains=1, random_seed=1)  # warm-up, as for bambi
            model.fit(method="laplace", random_seed=2)  # the same warm-up for the fast path
            # timed end to end: DataFrame -> design -> fit
            fit, t = timed(
                lambda: bg.GLMM(formula, df, "bernoulli").fit(  # noqa: B023
                    draws=1000, tune=1000, chains=2, random_seed=1
                )
            )
            lap, t_lap = timed(
                lambda: bg.GLMM(formula, df, "bernoulli").fit(method="laplace", random_seed=1)  # noqa: B023
            )
        sampling = _sampling_time(fit)
        ess = fit.health["min_ess_bulk"]
        base = {
            "work": f"{name} NUTS 2x(1000+1000), default sampler",
            "ours_s": t,
            "compile_s": t - sampling,
            "sample_s": sampling,
            "ours_ess_per_s": ess / t,
        }
        for label, method in (("bambi (default: PyMC NUTS)", "pymc"), ("bambi (nutpie)", "nutpie")):
            row = dict(base)
            try:
                wall, peer_rate = _bambi_ess_per_s(df, formula, method)
                row.update(
                    peer=label, peer_s=wall, peer_ess_per_s=peer_rate, ratio=(ess / t) / peer_rate
                )
            except Exception as exc:  # noqa: BLE001 - the peer is optional; say why it is missing
                row["peer"] = f"{label} unavailable ({type(exc).__name__})"
            rows.append(row)
        rows += refit_rows(name, model, fit, df)
        rows += backend_rows(name, model)
        if name == "toenail":
            r_row = rstanarm_row(f"{name} NUTS 2x(1000+1000)", df, formula, chains=2)
            r_row = _with_ours(r_row, fit, t)
            r_row["ours_ess_per_s"] = ess / t
            if "peer_ess_per_s" in r_row:
                r_row["ratio"] = (ess / t) / r_row["peer_ess_per_s"]
            rows.append(r_row)
        rows.append(
            {
                "work": f"{name} Bayesian Laplace / NUTS wall time",
                "ours_s": t_lap,
                "ratio": t_lap / t,
            }
        )
        print(rows[first:], flush=True)
    return rows


def slope_nuts_row(n: int = 10_000, groups: int = 500) -> dict:
    """Correlated random slope ``(1 + x1 | g)`` at 1e4 rows (issue 14, item 6): our default
    sampler's min bulk ESS/s against bambi's (PyMC NUTS, its default), target >= 2x.

    bambi's ``(1 + x1 | g)`` has independent intercept and slope priors (no correlation
    parameter), ours the LKJ-correlated covariance: ours does more.  Both warmed up on the
    same data first; timed DataFrame to draws, 2 chains x (1000 + 1000), seed 1.
    """
    from ml_structures import correlated_slope

    df = correlated_slope(n, groups)
    formula = "y ~ x1 + x2 + (1 + x1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bg.GLMM(formula, df, "bernoulli").fit(draws=20, tune=20, chains=1, random_seed=1)
        fit, t = timed(
            lambda: bg.GLMM(formula, df, "bernoulli").fit(
                draws=1000, tune=1000, chains=2, random_seed=1
            )
        )
    ess = float(fit.health["min_ess_bulk"])
    row = {
        "work": f"(1 + x1 | g) correlated NUTS 2x(1000+1000), {n:.0e} rows, {groups} groups",
        "ours_s": t,
        "compile_s": t - _sampling_time(fit),
        "sample_s": _sampling_time(fit),
        "ours_ess_per_s": ess / t,
        "target": ">= 2x bambi",
    }
    label = "bambi (default: PyMC NUTS)"
    try:
        wall, peer_rate = _bambi_ess_per_s(df, formula, "pymc")
        row.update(peer=label, peer_s=wall, peer_ess_per_s=peer_rate, ratio=(ess / t) / peer_rate)
    except Exception as exc:  # noqa: BLE001 - the peer is optional; say why it is missing
        row["peer"] = f"{label} unavailable ({type(exc).__name__})"
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--no-nuts", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = ml_rows(sizes)
    rows += structure_rows()  # crossed, nested, correlated slope, 3 factors (issue 14)
    rows.append(memory_row())
    print(rows[-1], flush=True)
    if not args.no_nuts:
        rows += nuts_rows()
        rows.append(slope_nuts_row())
        from fresh_process import fresh_rows, import_row

        rows.append(import_row())
        rows += fresh_rows()
    table = pd.DataFrame(rows)
    print(table.round(4).to_string(index=False))
    import numpy
    import pymc
    import scipy

    machine = (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, PyMC {pymc.__version__}, "
        f"NumPy {numpy.__version__}, SciPy {scipy.__version__}, BLAS: {blas_info()}, "
        f"{dt.date.today()}"
    )
    plot_scaling(rows, HERE / "ml_scaling.png")
    text = (HERE / "README.md").read_text() if (HERE / "README.md").exists() else ""
    marker = "<!-- results -->"
    head = text.split(marker)[0] if marker in text else text
    (HERE / "README.md").write_text(
        f"{head}{marker}\n\n## Last run\n\n{machine}\n\n```\n{table.round(4).to_string(index=False)}\n```\n\n"
        "![Laplace ML fit time against rows, ours and glmm](ml_scaling.png)\n"
    )


if __name__ == "__main__":
    main()
