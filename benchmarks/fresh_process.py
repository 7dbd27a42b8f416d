"""NUTS as a user sees it: each tool in its own fresh Python process, from interpreter start
to a fit object (issue "Speed as a user sees it").

Protocol, per data set and tool:

* the tool runs in a new interpreter (``python -c``) that imports it, loads the data,
  builds the model and fits 2 chains x (1000 tuning + 1000 draws) with ``random_seed=1``
  and the tool's defaults (ours: ``bg.GLMM(...).fit()``; bambi: ``bmb.Model(...).fit()``,
  whose default is PyMC's NUTS);
* each process runs twice and the second run is timed, so disk caches (Numba, PyTensor)
  are warm, as a user's second script run or kernel restart;
* the wall time runs from just before the process is started to the moment the child
  has its fit object (the child prints a timestamp then; import, data loading, design,
  compile and sampling all count, the ESS computation after it does not);
* min bulk ESS is over the fixed effects (ours: every fixed effect; bambi: every
  non-group variable), and ESS/s is that over the wall time;
* toenail gets one more row, ours refitted with bambi's default priors
  (:data:`BAMBI_PRIORS`; its ratio is against the same bambi run): the tools' default
  priors differ, and bambi's tighter ones give a posterior that is easier per draw, so
  only that row compares the samplers and the wall time on one posterior
  (``benchmarks/README.md``, session 6).

Run alone: ``python benchmarks/fresh_process.py``; ``benchmarks/run.py`` calls
:func:`fresh_rows`.  Also times ``make demo``'s job (``python -m bayesglmm demo``) in a
fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

WORK = {
    "toenail": ("y ~ treatment * time + (1 | patientID)", "toenail"),
    "hdp": ("remission ~ Age + Married + IL6 + (1 | DID)", "hdp"),
}

_LOAD = """
import bayesglmm.datasets as _ds
df = _ds.load({data!r})
if {data!r} == "toenail":
    df["y"] = (df["outcome"] == "moderate or severe").astype(int)
"""

#: bambi 0.21's default priors for toenail (as ``print(bmb.Model(formula, df, family="bernoulli"))``
#: shows them), in our prior keys: the "same priors" row fits our model with them, so that row
#: compares the samplers and the wall time on one posterior.  Our defaults (rstanarm's: intercept
#: Normal(-1.3, 2.5), treatment Normal(0, 5), SD HalfStudentT(3, 2.5)) are wider on the two
#: parameters that mix worst (Intercept, treatment), and their posterior is harder per draw.
BAMBI_PRIORS = {
    "toenail": """{
        "intercept": bg.Prior("Normal", mu=0, sigma=1.5),
        "fixed:treatmentterbinafine": bg.Prior("Normal", mu=0, sigma=1.0),
        "fixed:time": bg.Prior("Normal", mu=0, sigma=0.2327),
        "fixed:treatmentterbinafine:time": bg.Prior("Normal", mu=0, sigma=0.2605),
        "sd": bg.Prior("HalfNormal", sigma=2.843),
    }""",
}

OURS = """
import time, json
import bayesglmm as bg
{load}
fit = bg.GLMM({formula!r}, df, "bernoulli", priors={priors}).fit(
    draws=1000, tune=1000, chains=2, random_seed=1)
t_fit = time.time()
import arviz as az
ess = az.ess(fit.idata, method="bulk", var_names=["Intercept", "beta"])
ds = ess.to_dataset() if hasattr(ess, "to_dataset") else ess
m = min(float(v.min()) for v in ds.data_vars.values())
print("RESULT" + json.dumps({{"t_fit": t_fit, "min_ess": m,
                             "divergences": int(fit.health["divergences"])}}))
"""

BAMBI = """
import time, json, warnings
warnings.simplefilter("ignore")
import bambi as bmb
{load}
idata = bmb.Model({formula!r}, df, family="bernoulli").fit(
    draws=1000, tune=1000, chains=2, random_seed=1, progressbar=False)
t_fit = time.time()
import arviz as az
ess = az.ess(idata, method="bulk")
ds = ess.to_dataset() if hasattr(ess, "to_dataset") else ess
m = min(float(v.min()) for k, v in ds.data_vars.items() if "|" not in k)
print("RESULT" + json.dumps({{"t_fit": t_fit, "min_ess": m}}))
"""


def _run(code: str) -> dict:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    res = json.loads(line[len("RESULT") :])
    res["wall"] = res["t_fit"] - t0
    return res


def _twice(code: str) -> dict:
    _run(code)  # warms the disk caches; untimed
    return _run(code)


def demo_row() -> dict:
    """``python -m bayesglmm demo`` (the job of ``make demo``), fresh process, warm caches."""
    cmd = [sys.executable, "-m", "bayesglmm", "demo"]
    subprocess.run(cmd, capture_output=True, check=False)
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.time() - t0
    warned = [ln for ln in (out.stdout + out.stderr).splitlines() if "Warning" in ln]
    return {
        "work": "make demo (python -m bayesglmm demo), fresh process",
        "ours_s": wall,
        "note": f"exit {out.returncode}; {len(warned)} warning lines",
        "target": "< 30 s",
    }


def import_row(reps: int = 5) -> dict:
    """``import bayesglmm`` in a fresh interpreter (best of ``reps``, after one warm-up)."""
    code = "import time; t=time.perf_counter(); import bayesglmm; print(time.perf_counter()-t)"
    cmd = [sys.executable, "-c", code]
    subprocess.run(cmd, capture_output=True, check=True)
    times = [
        float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        for _ in range(reps)
    ]
    return {
        "work": "import bayesglmm, fresh process (best of 5)",
        "ours_s": min(times),
        "target": "< 0.5 s",
    }


def fresh_rows(*, with_bambi: bool = True) -> list[dict]:
    """One row per data set: ours and bambi's default, each in fresh processes."""
    rows = []
    for name, (formula, data) in WORK.items():
        load = _LOAD.format(data=data)
        ours = _twice(OURS.format(load=load, formula=formula, priors=None))
        row = {
            "work": f"{name} NUTS 2x(1000+1000), fresh process, interpreter start to fit",
            "ours_s": ours["wall"],
            "ours_min_ess": ours["min_ess"],
            "ours_ess_per_s": ours["min_ess"] / ours["wall"],
            "target": ">= 2x bambi",
        }
        if with_bambi:
            try:
                peer = _twice(BAMBI.format(load=load, formula=formula))
                row.update(
                    peer="bambi (default: PyMC NUTS)",
                    peer_s=peer["wall"],
                    peer_min_ess=peer["min_ess"],
                    peer_ess_per_s=peer["min_ess"] / peer["wall"],
                )
                row["ratio"] = row["ours_ess_per_s"] / row["peer_ess_per_s"]
            except Exception as exc:  # noqa: BLE001 - the peer is optional; say why it is missing
                row["peer"] = f"bambi unavailable ({exc})"
        rows.append(row)
        print(row, flush=True)
        if name in BAMBI_PRIORS:  # same posterior as the peer: samplers and wall time only
            same = _twice(OURS.format(load=load, formula=formula, priors=BAMBI_PRIORS[name]))
            rows.append(
                {
                    **row,
                    "work": f"{name} NUTS, same priors as bambi's defaults (ours refitted)",
                    "ours_s": same["wall"],
                    "ours_min_ess": same["min_ess"],
                    "ours_ess_per_s": same["min_ess"] / same["wall"],
                    "target": "information",
                }
            )
            if "peer_ess_per_s" in row:
                rows[-1]["ratio"] = rows[-1]["ours_ess_per_s"] / row["peer_ess_per_s"]
            print(rows[-1], flush=True)
    rows.append(demo_row())
    print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    import pandas as pd

    print(pd.DataFrame([import_row(), *fresh_rows()]).round(3).to_string(index=False))
