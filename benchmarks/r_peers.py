"""R peers for the benchmark: lme4's ``glmer`` and rstanarm's ``stan_glmer``, through Rscript.

Each function writes the data to a temporary CSV, runs a short R script with ``Rscript``,
times the fit inside R (``system.time``, so R's start-up and ``library()`` are not counted)
and reads the numbers back from tab-separated lines on stdout.  Without ``Rscript`` or the
R package, or when the R script fails or times out, the row says so in its ``peer`` column
(``"R unavailable (no Rscript)"``, ``"R unavailable (lme4 not installed)"``,
``"R glmer failed (...)"``) and has no timings: the benchmark runs without R.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["glmer_row", "r_missing", "rstanarm_row"]

_R_FAMILY = {"bernoulli": "binomial", "binomial": "binomial", "poisson": "poisson"}

# Every script: load the package, read the CSV and the formula, fit (timing it in `t`), then
# print the elapsed time, the fixed effects and the package version, one tab-separated line
# each; a script's own extra lines go between.
_HEAD = r"""
suppressPackageStartupMessages(library(PKG))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
f <- as.formula(args[2])
fam <- get(args[3])
"""
_TAIL = r"""
cat(sprintf("elapsed\t-\t%.17g\n", t[["elapsed"]]))
b <- fixef(fit)
for (i in seq_along(b)) cat(sprintf("fixef\t%s\t%.17g\n", names(b)[i], b[[i]]))
cat(sprintf("version\t-\t%s\n", as.character(packageVersion("PKG"))))
"""


def _script(package: str, body: str) -> str:
    return (_HEAD + body + _TAIL).replace("PKG", package)


_GLMER = _script(
    "lme4",
    r"""
t <- system.time(fit <- glmer(f, data = d, family = fam, nAGQ = as.integer(args[4])))
cat(sprintf("loglik\t-\t%.17g\n", as.numeric(logLik(fit))))
""",
)

# min bulk ESS over the fixed effects and the covariance parameters (not the per-level
# effects b[...]), as the bambi and bayesglmm rows count it
_STAN_GLMER = _script(
    "rstanarm",
    r"""
chains <- as.integer(args[4])
t <- system.time(fit <- stan_glmer(
  f, data = d, family = fam(), chains = chains, cores = chains,
  iter = as.integer(args[5]) + as.integer(args[6]), warmup = as.integer(args[6]),
  seed = 1, refresh = 0
))
arr <- as.array(fit)
keep <- !grepl("^b\\[|^mean_PPD$|^log-posterior$", dimnames(arr)[[3]])
arr <- arr[, , keep, drop = FALSE]
if (requireNamespace("posterior", quietly = TRUE)) {
  ess <- posterior::summarise_draws(posterior::as_draws_array(arr), "ess_bulk")$ess_bulk
} else {
  ess <- rstan::monitor(arr, warmup = 0, print = FALSE)[, "Bulk_ESS"]
}
cat(sprintf("min_ess_bulk\t-\t%.17g\n", min(ess)))
""",
)


@functools.cache
def _has_package(rscript: str, package: str) -> bool:
    code = f'quit(status = !requireNamespace("{package}", quietly = TRUE))'
    try:
        return (
            subprocess.run([rscript, "-e", code], capture_output=True, timeout=120).returncode == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def r_missing(*packages: str) -> str | None:
    """Why R cannot be used (``"no Rscript"``, ``"lme4 not installed"``), or None."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "no Rscript"
    for p in packages:
        if not _has_package(rscript, p):
            return f"{p} not installed"
    return None


def _run(script: str, df: pd.DataFrame, args: list[str], timeout: float) -> dict[str, Any]:
    """Run an R script on ``df`` (as CSV); parse its ``key<TAB>name<TAB>value`` lines."""
    rscript = shutil.which("Rscript") or "Rscript"
    with tempfile.TemporaryDirectory(prefix="bayesglmm-r-") as tmp:
        data, code = Path(tmp) / "data.csv", Path(tmp) / "fit.R"
        df.to_csv(data, index=False)
        code.write_text(script)
        proc = subprocess.run(
            [rscript, str(code), str(data), *args], capture_output=True, text=True, timeout=timeout
        )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else f"Rscript exit status {proc.returncode}")
    out: dict[str, Any] = {"fixef": {}}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue  # anything else R printed
        key, name, value = parts
        if key == "fixef":
            out["fixef"][name] = float(value)
        elif key == "version":
            out["version"] = value
        else:
            out[key] = float(value)
    if "elapsed" not in out:
        raise RuntimeError("no timing in Rscript's output")
    return out


def _fit_in_r(
    work: str,
    package: str,
    peer: str,
    script: str,
    df: pd.DataFrame,
    args: list[str],
    timeout: float,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """``(parsed output, {})`` when the script ran; ``(None, row saying why not)`` otherwise."""
    why = r_missing(package)
    if why is not None:
        return None, {"work": work, "peer": f"R unavailable ({why})"}
    try:
        return _run(script, df, args, timeout), {}
    except subprocess.TimeoutExpired as exc:
        why = f"timed out after {exc.timeout:g} s"
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        why = str(exc).strip() or type(exc).__name__
    return None, {"work": work, "peer": f"R {peer} failed ({why[:120]})"}


def glmer_row(
    work: str,
    df: pd.DataFrame,
    formula: str,
    nagq: int = 1,
    family: str = "bernoulli",
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Time ``lme4::glmer(formula, nAGQ = nagq)`` on ``df``.

    Returns
    -------
    dict
        ``work``, ``peer`` (``"lme4 glmer <version>"`` or why R is unavailable or failed) and,
        when it ran, ``peer_s`` (glmer's own elapsed time), ``peer_fixef`` (name -> estimate)
        and ``peer_loglik``.
    """
    args = [formula, _R_FAMILY[family], str(int(nagq))]
    out, failed = _fit_in_r(work, "lme4", "glmer", _GLMER, df, args, timeout)
    if out is None:
        return failed
    return {
        "work": work,
        "peer": f"lme4 glmer {out.get('version', '')}".strip(),
        "peer_s": out["elapsed"],
        "peer_fixef": out["fixef"],
        "peer_loglik": out.get("loglik", float("nan")),
    }


def rstanarm_row(
    work: str,
    df: pd.DataFrame,
    formula: str,
    family: str = "bernoulli",
    chains: int = 2,
    draws: int = 1000,
    tune: int = 1000,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Time ``rstanarm::stan_glmer`` (default priors; ``chains`` chains in parallel, each
    ``tune`` warm-up + ``draws`` draws) and its min bulk ESS per second.

    Returns
    -------
    dict
        ``work``, ``peer`` (``"rstanarm <version>"`` or why R is unavailable or failed) and,
        when it ran, ``peer_s`` (stan_glmer's elapsed time), ``peer_ess_per_s`` and
        ``peer_fixef`` (posterior medians, as rstanarm reports them).
    """
    args = [formula, _R_FAMILY[family], str(int(chains)), str(int(draws)), str(int(tune))]
    out, failed = _fit_in_r(work, "rstanarm", "rstanarm", _STAN_GLMER, df, args, timeout)
    if out is None:
        return failed
    return {
        "work": work,
        "peer": f"rstanarm {out.get('version', '')}".strip(),
        "peer_s": out["elapsed"],
        "peer_ess_per_s": out.get("min_ess_bulk", float("nan")) / out["elapsed"],
        "peer_fixef": out["fixef"],
    }
