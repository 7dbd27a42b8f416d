"""ADVI against default NUTS on every course spec (writes ``advi_vs_nuts.md``).

For each spec in ``models/``: mean-field ADVI (``method="advi"``) and NUTS, each with the
package's defaults and the same seed, warm (a short untimed fit per method first, so the
Numba / PyTensor compile caches are loaded), then one timed fit each (NUTS, ADVI, ADVI
with the previous stopping rule), wall clock around ``model.fit``.  The table gives both wall times, their ratio, ADVI's iterations, whether it
converged and by which criterion, and ``max dist``: the largest
``|ADVI mean - NUTS mean| / NUTS posterior SD`` over the fixed effects and group SDs
(:func:`bayesglmm.interpret.compare.param_draws`).

Usage::

    python benchmarks/advi_vs_nuts.py [--out FILE] [--seed N] [SPEC_NAME ...]
    python benchmarks/advi_vs_nuts.py --interleave SPEC_NAME ...   # old vs new rule only

Wall times depend on the machine's load; the ratio within one row is the number to read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import warnings
from pathlib import Path

import numpy as np

import bayesglmm as bg
import bayesglmm.engines.bayes.advi as advi_module
from bayesglmm.interpret.compare import param_draws

ROOT = Path(__file__).resolve().parents[1]


def _timed(model: bg.GLMM, **kw: object) -> tuple[object, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(**kw)
    return fit, time.perf_counter() - t0


def max_dist(fit, ref) -> tuple[float, str]:  # noqa: ANN001
    """Largest |mean difference| / reference posterior SD over fixed effects and SDs."""
    p, r = param_draws(fit, extras=False), param_draws(ref, extras=False)
    worst, name = 0.0, ""
    for k, v in p.items():
        if k in r and np.std(r[k]) > 0:
            d = abs(float(np.mean(v) - np.mean(r[k]))) / float(np.std(r[k], ddof=1))
            if d > worst:
                worst, name = d, k
    return worst, name


class OldLossPlateau(advi_module.LossPlateau):
    """The stopping rule before this benchmark (for the same-run comparison): stop when the
    mean loss of the last ``every`` (500) iterations improves on the previous window's by
    less than ``tolerance`` relative, a window that got worse counting as a plateau."""

    def __call__(self, approx, loss_hist, i) -> None:  # noqa: ANN001, D102
        if self.guard is not None and self.guard.interrupted:
            raise StopIteration(f"interrupted after {i} iterations")
        if i % self.every or i < 2 * self.every:
            return
        last = float(np.mean(loss_hist[-self.every :]))
        gain = float(np.mean(loss_hist[-2 * self.every : -self.every])) - last
        if np.isfinite(last) and gain < self.tolerance * abs(last):
            self.converged, self.reason = True, "old rule"
            raise StopIteration


def _fit_old_rule(model: bg.GLMM, seed: int) -> tuple[object, float]:
    new = advi_module.LossPlateau
    advi_module.LossPlateau = OldLossPlateau
    try:
        return _timed(model, method="advi", random_seed=seed, every=500)
    finally:
        advi_module.LossPlateau = new


def run_spec(spec: bg.ModelSpec, seed: int, old_rule: bool = True) -> dict[str, object]:
    """Warm-up and timed ADVI and NUTS fits of one spec; one row of the table.

    The warm-ups (untimed) are short runs (ADVI 200 iterations, NUTS 20 + 20 draws) that
    load the compile caches; then NUTS, ADVI and (``old_rule``) ADVI with the previous
    stopping rule, each timed once.
    """
    model = spec.model()
    row: dict[str, object] = {"spec": spec.name}
    _timed(model, method="advi", random_seed=seed + 1, n=200, draws=50)
    _timed(model, random_seed=seed + 1, draws=20, tune=20)
    fits = {}
    fits["nuts"], row["nuts_s"] = _timed(model, random_seed=seed)
    fits["advi"], row["advi_s"] = _timed(model, method="advi", random_seed=seed)
    advi = fits["advi"]
    row["iterations"] = advi.options.get("iterations")
    row["converged"] = bool(advi.options.get("converged"))
    row["criterion"] = advi.options.get("convergence", "")
    row["max_dist"], row["worst"] = max_dist(advi, fits["nuts"])
    if old_rule:
        old, row["old_s"] = _fit_old_rule(model, seed)
        row["old_iterations"] = old.options.get("iterations")
        row["old_max_dist"], _ = max_dist(old, fits["nuts"])
    return row


def interleaved(spec: bg.ModelSpec, seed: int, reps: int = 2) -> str:
    """ADVI with the old and the new stopping rule, alternating, ``reps`` times each after
    one full untimed warm-up: a same-run check free of the order effect of ``run_spec``
    (where the first timed ADVI fit of a row ran right after NUTS)."""
    model = spec.model()
    _timed(model, method="advi", random_seed=seed + 1)
    old_t, new_t, old_it, new_it = [], [], 0, 0
    for _ in range(reps):
        f, t = _fit_old_rule(model, seed)
        old_t.append(t)
        old_it = f.options.get("iterations")
        g, t = _timed(model, method="advi", random_seed=seed)
        new_t.append(t)
        new_it = g.options.get("iterations")
    return (
        f"| {spec.name} | {', '.join(f'{t:.1f}' for t in old_t)} ({old_it:,} it.) | "
        f"{', '.join(f'{t:.1f}' for t in new_t)} ({new_it:,} it.) |"
    )


def to_markdown(rows: list[dict[str, object]], seed: int) -> str:
    """The Markdown report."""
    head = (
        "| spec | NUTS s | ADVI s | ADVI / NUTS | ADVI iterations | converged | "
        "max dist (worst parameter) | old rule: s, iterations, max dist |\n"
        "|---|---:|---:|---:|---:|---|---|---|\n"
    )
    body = []
    for r in rows:
        if "error" in r:
            body.append(f"| {r['spec']} | | | | | error: {r['error']} | |")
            continue
        body.append(
            f"| {r['spec']} | {r['nuts_s']:.1f} | {r['advi_s']:.1f} | "
            f"{r['advi_s'] / r['nuts_s']:.2f} | {r['iterations']:,} | "
            f"{'yes' if r['converged'] else 'NO'} | {r['max_dist']:.2f} ({r['worst']}) | "
            + (
                f"{r['old_s']:.1f} s, {r['old_iterations']:,}, {r['old_max_dist']:.2f} |"
                if "old_s" in r
                else " |"
            )
        )
    return (
        "# ADVI vs NUTS on the course specs\n\n"
        f"Generated by `benchmarks/advi_vs_nuts.py` on {dt.date.today()} (seed {seed}, "
        f"{os.cpu_count()} cores, shared with other jobs: wall times are noisy, the ratio "
        "within a row is what to read). Both methods with the package defaults (NUTS: 4 "
        "chains x 1000 draws after 1000 tuning; ADVI: mean-field, stopping rule "
        "`LossPlateau`), warm (a short untimed fit of each first, loading the compile "
        "caches). The last column is ADVI with the previous stopping rule (mean of 500 "
        "iterations, a worse window counted as a plateau), timed in the same run. "
        "`max dist` = max over fixed effects and group SDs of "
        "|ADVI mean - NUTS mean| / NUTS posterior SD; mean-field ADVI is known to "
        "understate SDs and correlations, so its distances are larger where the posterior "
        "of the random effects is correlated with their SD.\n\n" + head + "\n".join(body) + "\n"
    )


def main() -> None:  # noqa: D103
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*", help="spec names (default: every spec in models/)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("advi_vs_nuts.md")))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--interleave",
        action="store_true",
        help="only time ADVI with the old and new stopping rules, alternating; print rows",
    )
    args = ap.parse_args()
    if args.interleave:
        for name in args.specs:
            print(interleaved(bg.load_spec(ROOT / "models" / f"{name}.toml"), args.seed))
        return
    specs = {s.name: s for s in map(bg.load_spec, sorted((ROOT / "models").glob("*.toml")))}
    rows = []
    for name in args.specs or list(specs):  # in the order given
        spec = specs[name]
        try:
            row = run_spec(spec, args.seed)
        except Exception as exc:  # noqa: BLE001 - one failing spec is reported, not fatal
            row = {"spec": spec.name, "error": f"{type(exc).__name__}: {exc}"[:200]}
        print(row, flush=True)
        rows.append(row)
        Path(args.out).write_text(to_markdown(rows, args.seed))  # after each spec


if __name__ == "__main__":
    main()
