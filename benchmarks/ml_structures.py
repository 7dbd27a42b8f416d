"""Laplace ML beyond one random intercept, against ``glmm`` in the same run (issue 14).

Structures: a correlated random slope ``(1 + x1 | g)``; crossed ``(1 | g) + (1 | h)``;
nested ``(1 | a / b)``; a three-factor Poisson model (simulated at 1e5 rows, and the
grouseticks data of lme4's elston.R); crossed subject x item (316 x 24, VerbAgg's shape).
Simulated Bernoulli/Poisson data, seeded; 1e5 rows and 5,000 groups unless said.

Run alone (``python benchmarks/ml_structures.py``) or from ``benchmarks/run.py``; each row
gives our time and glmm's (DataFrame to fit, after a warm-up of both; best of 3 on data of
at most 1e4 rows), the ratio glmm / ours (> 1: we are faster; ``cpu_ratio``: the same in
CPU time of the process, the steadier figure on a shared machine) and our log-likelihood
minus glmm's (>= -1e-4: we reach glmm's optimum or a higher one) and the largest
fixed-effect difference.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

import bayesglmm as bg

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "tests" / "fixtures"


def _timed(fn, reps: int):  # noqa: ANN001, ANN202
    """``(result, best wall seconds, best CPU seconds of this process)``."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return out, best, best_cpu


def correlated_slope(n: int = 100_000, groups: int = 5000, seed: int = 1) -> pd.DataFrame:
    """Bernoulli, ``(1 + x1 | g)`` with SDs 0.8 / 0.4 and correlation 0.3."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=(n, 2))
    C = np.array([[0.64, 0.096], [0.096, 0.16]])
    b = rng.multivariate_normal([0, 0], C, groups)
    eta = -0.3 + 0.5 * x[:, 0] - 0.2 * x[:, 1] + b[g, 0] + b[g, 1] * x[:, 0]
    y = rng.binomial(1, expit(eta))
    return pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1], "g": np.char.mod("g%d", g)})


def crossed(n: int = 100_000, groups: int = 5000, h_levels: int = 50, seed: int = 2):  # noqa: ANN201
    """Bernoulli, ``(1 | g) + (1 | h)``, SDs 0.8 and 0.5."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    h = rng.integers(0, h_levels, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.4 * x + 0.8 * rng.normal(size=groups)[g] + 0.5 * rng.normal(size=h_levels)[h]
    y = rng.binomial(1, expit(eta))
    return pd.DataFrame({"y": y, "x1": x, "g": np.char.mod("g%d", g), "h": np.char.mod("h%d", h)})


def nested(n: int = 100_000, outer: int = 500, inner: int = 10, seed: int = 3) -> pd.DataFrame:
    """Bernoulli, ``(1 | a / b)``: 500 ``a`` with 10 ``b`` each (5,000 ``b:a``), SDs 0.6 / 0.5."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, outer, n)
    b = rng.integers(0, inner, n)
    x = rng.normal(size=n)
    eta = (
        0.1
        + 0.4 * x
        + 0.6 * rng.normal(size=outer)[a]
        + 0.5 * rng.normal(size=(outer, inner))[a, b]
    )
    y = rng.binomial(1, expit(eta))
    return pd.DataFrame({"y": y, "x1": x, "a": np.char.mod("a%d", a), "b": np.char.mod("b%d", b)})


def three_factor_poisson(n: int = 100_000, seed: int = 4) -> pd.DataFrame:
    """Poisson with broods (5,000) nested in locations (200) and a crossed year-batch (50)."""
    rng = np.random.default_rng(seed)
    brood = rng.integers(0, 5000, n)
    loc = brood % 200  # each brood in one location
    batch = rng.integers(0, 50, n)
    x = rng.normal(size=n)
    eta = (
        0.2
        + 0.3 * x
        + 0.5 * rng.normal(size=5000)[brood]
        + 0.4 * rng.normal(size=200)[loc]
        + 0.3 * rng.normal(size=50)[batch]
    )
    y = rng.poisson(np.exp(eta))
    return pd.DataFrame(
        {
            "y": y,
            "x1": x,
            "brood": np.char.mod("b%d", brood),
            "loc": np.char.mod("l%d", loc),
            "batch": np.char.mod("t%d", batch),
        }
    )


def subject_item(subjects: int = 316, items: int = 24, seed: int = 5) -> pd.DataFrame:
    """Bernoulli, every subject answers every item once (VerbAgg's 316 x 24 shape)."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(subjects), items)
    it = np.tile(np.arange(items), subjects)
    x = rng.normal(size=s.size)
    eta = -0.3 + 0.5 * x + 1.2 * rng.normal(size=subjects)[s] + 0.6 * rng.normal(size=items)[it]
    y = rng.binomial(1, expit(eta))
    return pd.DataFrame(
        {"y": y, "x1": x, "subj": np.char.mod("s%d", s), "item": np.char.mod("i%d", it)}
    )


def negbin_ri(n: int = 100_000, groups: int = 500, seed: int = 6) -> pd.DataFrame:
    """Negative binomial (NB2, theta 2.5) random intercept: the issue-17 bench row."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    mu = np.exp(0.5 + 0.4 * x + 0.6 * rng.normal(size=groups)[g])
    y = rng.negative_binomial(2.5, 2.5 / (2.5 + mu))
    return pd.DataFrame({"y": y, "x1": x, "g": np.char.mod("g%d", g)})


def grouseticks() -> pd.DataFrame:
    """lme4's grouseticks (tests/fixtures/grouseticks.csv)."""
    df = pd.read_csv(FIXTURES / "grouseticks.csv")
    for c in ("INDEX", "BROOD", "YEAR", "LOCATION"):
        df[c] = df[c].astype(str)
    return df


def work_items(quick: bool = False) -> list[tuple]:
    """``(name, data, our formula, glmm's formula, family)``."""
    m = 10 if quick else 1
    return [
        (
            f"(1 + x1 | g) correlated, {100_000 // m:.0e} rows, {5000 // m} groups",
            correlated_slope(100_000 // m, 5000 // m),
            "y ~ x1 + x2 + (1 + x1 | g)",
            "y ~ x1 + x2 + (1 + x1 | g)",
            "bernoulli",
        ),
        (
            f"(1 | g) + (1 | h) crossed, {100_000 // m:.0e} rows, g {5000 // m}, h 50",
            crossed(100_000 // m, 5000 // m),
            "y ~ x1 + (1 | g) + (1 | h)",
            "y ~ x1 + (1 | g) + (1 | h)",
            "bernoulli",
        ),
        (
            f"(1 | a / b) nested, {100_000 // m:.0e} rows, a {500 // m}, b:a {5000 // m}",
            nested(100_000 // m, 500 // m),
            "y ~ x1 + (1 | a / b)",
            "y ~ x1 + (1 | a) + (1 | a:b)",
            "bernoulli",
        ),
        (
            f"3-factor Poisson, {100_000 // m:.0e} rows, 5000 / 200 / 50 levels",
            three_factor_poisson(100_000 // m),
            "y ~ x1 + (1 | brood) + (1 | loc) + (1 | batch)",
            "y ~ x1 + (1 | brood) + (1 | loc) + (1 | batch)",
            "poisson",
        ),
        (
            "grouseticks Poisson, 403 rows, INDEX / BROOD / LOCATION",
            grouseticks(),
            "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
            "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
            "poisson",
        ),
        (
            f"negative binomial (1 | g), {100_000 // m:.0e} rows, {500 // m} groups",
            negbin_ri(100_000 // m, 500 // m),
            "y ~ x1 + (1 | g)",
            "y ~ x1 + (1 | g)",
            "negativebinomial",
        ),
        (
            "crossed subject x item 316 x 24, 7,584 rows",
            subject_item(),
            "y ~ x1 + (1 | subj) + (1 | item)",
            "y ~ x1 + (1 | subj) + (1 | item)",
            "bernoulli",
        ),
    ]


def structure_rows(quick: bool = False, reps: int = 1) -> list[dict]:
    """One bench row per structure: ours against glmm, same data, same process."""
    import glmm

    # warm-up on small data, both packages: one-time costs (loading Numba's cached kernels,
    # glmm's first call) are not what the rows measure
    small = crossed(2000, 100, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in ("y ~ x1 + (1 | g) + (1 | h)", "y ~ x1 + (1 + x1 | g)"):
            bg.GLMM(f, small, "bernoulli").fit(method="ml")
            glmm.fit(small, f, family="binomial")
    rows = []
    for name, df, formula, peer_formula, family in work_items(quick):
        peer_family = "binomial" if family == "bernoulli" else family
        r = max(reps, 3) if len(df) <= 10_000 else reps  # best of 3 on small data, both
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, t_ours, c_ours = _timed(
                lambda: bg.GLMM(formula, df, family).fit(method="ml"),  # noqa: B023
                r,
            )
            peer, t_peer, c_peer = _timed(
                lambda: glmm.fit(df, peer_formula, family=peer_family),  # noqa: B023
                r,
            )
        fx = np.asarray(ours.fixef().to_numpy(), dtype=float)
        pb = np.asarray(peer.beta, dtype=float)
        rows.append(
            {
                "work": f"ML {name}",
                "ours_s": t_ours,
                "peer": "glmm",
                "peer_s": t_peer,
                "ratio": t_peer / t_ours,
                # CPU time: both engines run on one core (glmm's fit too), so on a shared
                # machine, where wall times depend on the share of a core each one got,
                # this ratio is the steadier one
                "cpu_ratio": c_peer / c_ours,
                "max_fixef_diff": float(np.max(np.abs(fx - pb)))
                if fx.shape == pb.shape
                else np.nan,
                "loglik_diff": float(ours.loglik - peer.loglik),
            }
        )
        print(rows[-1], flush=True)
    return rows


def optimizer_rows(quick: bool = True) -> list[dict]:
    """Issue 14 item 3: the L-BFGS-B stage of the Laplace fit with the analytic gradient,
    with central differences of the deviance, and a derivative-free search (SciPy's Powell,
    bounded), from the same start: deviance evaluations, seconds, deviance reached."""
    from scipy import optimize

    from bayesglmm.design.build import build_design
    from bayesglmm.engines.blas_threads import one_blas_thread
    from bayesglmm.engines.ml.laplace import LaplaceObjective
    from bayesglmm.engines.ml.pirls import glm_start
    from bayesglmm.errors import InferenceError

    rows = []
    for name, df, formula, _, family in work_items(quick):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = build_design(formula, df, family)
        if d.family.has_dispersion:  # its ML is over [theta, beta, dispersion]: not this study
            continue
        for how in ("analytic", "differences", "powell"):
            obj = LaplaceObjective(d)
            obj.analytic = how == "analytic"
            x0 = np.concatenate([obj.layout.default(), glm_start(d)])
            bounds = [(lo if np.isfinite(lo) else None, None) for lo in obj.lower]

            def dev(x, obj=obj):  # noqa: ANN001, ANN202
                try:
                    return obj.deviance(x)
                except InferenceError:
                    return np.inf

            t0 = time.perf_counter()
            with one_blas_thread(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if how == "powell":
                    opts = {"xtol": 1e-6, "ftol": 1e-10, "maxfev": 20000}
                    r = optimize.minimize(dev, x0, method="Powell", bounds=bounds, options=opts)
                else:
                    opts = {"maxiter": 500, "ftol": 1e-10, "gtol": 1e-6, "maxcor": 20}
                    r = optimize.minimize(
                        obj.deviance_grad,
                        x0,
                        jac=True,
                        method="L-BFGS-B",
                        bounds=bounds,
                        options=opts,
                    )
            rows.append(
                {
                    "work": name,
                    "outer": how,
                    "seconds": time.perf_counter() - t0,
                    "deviance_evals": obj.n_evals,
                    "deviance": float(r.fun),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1/10 of the sizes")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument(
        "--optimizers",
        action="store_true",
        help="compare the outer search (analytic gradient, differences, Powell) instead",
    )
    args = ap.parse_args()
    if args.optimizers:
        table = pd.DataFrame(optimizer_rows(args.quick))
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            print(table.round(4).to_string(index=False))
        return
    table = pd.DataFrame(structure_rows(args.quick, args.reps))
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(table.round(5).to_string(index=False))


if __name__ == "__main__":
    main()
