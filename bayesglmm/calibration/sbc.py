"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023) on Dask.

For each simulation: draw parameters from the prior, random effects and a response from the
model (same covariates and groups as the given model), refit by the chosen method, and
record the rank of each true parameter among the (thinned) posterior draws.  With a
calibrated method the ranks are uniform.  Work runs on ``dask.distributed``: a
:class:`~dask.distributed.LocalCluster` by default, or any ``Client`` the user passes.
Results come back in simulation order.  A simulation that raises, or whose worker dies, is
listed with the reason in :attr:`SBCResult.failures` and in an
:class:`~bayesglmm.errors.SBCFailureWarning`; the simulations that finished are kept.
Fits share no mutable state (``GLMM.with_response``), so a threaded client
(``Client(processes=False)``) gives the same ranks as worker processes for the same seeds.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayesglmm.calibration.uniformity import (
    bin_counts,
    bin_edges,
    chi2_test,
    ecdf_band,
    ecdf_counts,
    gamma_test,
)
from bayesglmm.engines.registry import bayesian_methods
from bayesglmm.errors import BayesGLMMError, SBCFailureWarning, SBCNote
from bayesglmm.quiet import ignoring_warnings


@dataclass
class SBCResult:
    """Ranks, per-simulation diagnostics and uniformity tests of an SBC run.

    Attributes
    ----------
    ranks : DataFrame
        One row per successful simulation (index = simulation id), one column per parameter.
    n_draws : int
        Posterior draws the ranks are taken among (ranks lie in ``0 .. n_draws``).
    method : str
        The fitting method.
    failures : dict
        Simulation id -> why it failed: the error (type, message and where it was raised),
        or that its worker died.  The simulation is reproduced by ``sbc(..., n_sims=id + 1,
        random_seed=same)``: simulation ``i`` always uses the ``i``-th spawned seed.
    diagnostics : DataFrame
        Per successful simulation: ``elapsed_s`` and the fit's health (NUTS: divergences,
        ``max_rhat``, ``min_ess_bulk``, ...; Laplace/ADVI: ``converged``).
    """

    ranks: pd.DataFrame
    n_draws: int
    method: str
    failures: dict[int, str] = field(default_factory=dict)
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_ranks(self) -> int:
        """Number of possible rank values, ``n_draws + 1``."""
        return self.n_draws + 1

    @property
    def n_sims(self) -> int:
        """Simulations run: the finished ones (rows of ``ranks``) and the failed ones."""
        return len(self.ranks) + len(self.failures)

    def failure_report(self, limit: int | None = 10) -> str:
        """One line per failed simulation (at most ``limit``; None for all): id and reason."""
        if not self.failures:
            return f"all {self.n_sims} simulations finished"
        items = sorted(self.failures.items())
        shown = items if limit is None else items[:limit]
        lines = [
            f"{len(self.failures)} of {self.n_sims} SBC simulations failed "
            f"({len(self.ranks)} finished, kept):"
        ]
        lines += [f"  simulation {i}: {msg}" for i, msg in shown]
        if len(shown) < len(items):
            lines.append(f"  ... and {len(items) - len(shown)} more (see SBCResult.failures)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        failed = f"; {self.failure_report(limit=5)}" if self.failures else ""
        return (
            f"SBCResult(method={self.method!r}, {len(self.ranks)} of {self.n_sims} "
            f"simulations finished, n_draws={self.n_draws}, parameters="
            f"{list(self.ranks.columns)}{failed})"
        )

    def _bins(self, bins: int | None) -> int:
        return bins or max(2, min(20, len(self.ranks) // 5))

    def uniformity(
        self, bins: int | None = None, *, n_null: int = 10_000, seed: int = 0
    ) -> pd.DataFrame:
        """Tests of rank uniformity per parameter.

        Parameters
        ----------
        bins : int, optional
            Bins of whole rank values for the chi-square test (default ``n // 5``, at most
            20, so about 10 ranks are expected per bin at 200 simulations).
        n_null, seed : int
            Null draws of the ECDF statistic (seeded: repeated calls give the same p-values).

        Returns
        -------
        DataFrame
            Rows: parameters.  Columns: ``chi2``, ``df``, ``p_chi2`` (Pearson chi-square on
            binned ranks, Talts et al. 2018) and ``gamma``, ``p_gamma`` (the ECDF test of
            Säilynoja et al. 2022, as Modrák et al. 2023; sensitive to small shifts and to
            over-/under-dispersion that binning hides); see :mod:`bayesglmm.calibration.uniformity`.
        """
        bins = self._bins(bins)
        rows = {}
        for col in self.ranks:
            r = self.ranks[col].to_numpy(dtype=np.int64)
            chi2, df, p_chi2 = chi2_test(r, self.n_ranks, bins)
            g, p_gamma = gamma_test(r, self.n_ranks, n_null=n_null, seed=seed)
            rows[col] = {"chi2": chi2, "df": df, "p_chi2": p_chi2, "gamma": g, "p_gamma": p_gamma}
        return pd.DataFrame(rows, index=["chi2", "df", "p_chi2", "gamma", "p_gamma"]).T

    def plot(self, bins: int | None = None, *, alpha: float = 0.05, title: str | None = None):  # noqa: ANN201
        """Rank histograms (top) and ECDF-difference plots (bottom), one column per parameter.

        Histograms carry the pointwise ``1 - alpha`` binomial band per bin; the ECDF
        difference ``F(z) - z`` carries the *simultaneous* ``1 - alpha`` band of Säilynoja
        et al. (2022), which an ECDF of uniform ranks leaves anywhere with probability
        ``alpha``.  Column titles give both uniformity p-values.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        params = list(self.ranks.columns)
        n = len(self.ranks)
        bins = self._bins(bins)
        uni = self.uniformity(bins) if n else None
        ncol = max(1, len(params))
        fig, axes = plt.subplots(2, ncol, figsize=(3.3 * ncol, 5.6), squeeze=False)
        edges = bin_edges(self.n_ranks, bins)
        if n:
            z, lo_band, hi_band = ecdf_band(n, self.n_ranks, alpha)
        for j, p in enumerate(params):
            r = self.ranks[p].to_numpy(dtype=np.int64)
            counts, probs = bin_counts(r, self.n_ranks, bins)
            ax = axes[0, j]
            lo, hi = stats.binom.ppf([[alpha / 2], [1 - alpha / 2]], n, probs[None, :])
            ax.stairs(hi, edges, baseline=lo, fill=True, color="C0", alpha=0.2, lw=0)
            ax.stairs(counts, edges, fill=True, color="0.45", alpha=0.75)
            ax.stairs(n * probs, edges, color="C0", lw=0.8)
            ax.set_xlim(0, 1)
            ax.set_title(
                f"{p}\np(chi2) = {_fmt_p(uni.loc[p, 'p_chi2'])}, "
                f"p(ECDF) = {_fmt_p(uni.loc[p, 'p_gamma'], floor=1 / 10_001)}",
                fontsize="small",
            )
            ax.set_xlabel("normalized rank")
            ax.set_ylabel("count")
            _, below = ecdf_counts(r, self.n_ranks)
            zz = np.concatenate([[0.0], z, [1.0]])
            ax = axes[1, j]
            ax.fill_between(
                zz,
                np.concatenate([[0.0], lo_band - z, [0.0]]),
                np.concatenate([[0.0], hi_band - z, [0.0]]),
                step="post",
                color="C0",
                alpha=0.2,
                lw=0,
            )
            diff = np.concatenate([[0.0], below / n - z, [0.0]])
            ax.step(zz, diff, where="post", color="C3", lw=1.2)
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xlim(0, 1)
            ax.set_xlabel("normalized rank z")
            ax.set_ylabel("ECDF(z) - z")
        fig.suptitle(
            title
            or f"SBC: {self.method}, {n} simulations, {len(self.failures)} failed "
            f"(bands: {100 * (1 - alpha):.0f}%; ECDF band simultaneous)",
            fontsize="medium",
        )
        fig.tight_layout()
        return fig


def _fmt_p(p: float, floor: float = 0.0) -> str:
    """Two significant digits below 0.01 (``3.2e-04``), else two decimals; ``<=`` at the
    Monte Carlo floor of a simulated p-value."""
    if p <= floor * (1 + 1e-9):
        return f"<= {p:.1e}"
    return f"{p:.1e}" if p < 0.01 else f"{p:.2f}"


def _draw_lkj(p: int, eta: float, rng: np.random.Generator) -> np.ndarray:
    """A correlation matrix from LKJ(eta) by the onion method (Lewandowski et al. 2009)."""
    if p == 1:
        return np.ones((1, 1))
    beta = eta + (p - 2) / 2
    r12 = 2 * rng.beta(beta, beta) - 1
    C = np.array([[1.0, r12], [r12, 1.0]])
    for k in range(2, p):
        beta -= 0.5
        y = rng.beta(k / 2, beta)
        u = rng.standard_normal(k)
        u /= np.linalg.norm(u)
        w = math.sqrt(y) * u
        A = np.linalg.cholesky(C)
        z = A @ w
        C = np.block([[C, z[:, None]], [z[None, :], np.ones((1, 1))]])
    return C


def simulate_from_prior(
    model: Any, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """Draw parameters from the priors and a response; returns (y, true parameter values)."""
    d = model.design
    pri = model.priors
    slope_idx = [i for i, n in enumerate(d.x_names) if n != "(Intercept)"]
    beta = np.zeros(d.k)
    truth: dict[str, float] = {}
    for i, (name, p) in zip(slope_idx, pri.fixed.items(), strict=True):
        beta[i] = float(p.rvs(None, rng))
        truth[name] = beta[i]
    if pri.intercept is not None:
        b0c = float(pri.intercept.rvs(None, rng))
        means = d.row_mean(d.X[:, slope_idx]) if slope_idx else np.zeros(0)  # as the model
        j = d.x_names.index("(Intercept)")
        beta[j] = b0c - means @ beta[slope_idx]
        truth["(Intercept)"] = beta[j]
    eta = d.X @ beta + d.offset
    for label, b in zip(pri.sd, d.blocks, strict=True):
        sd = np.array([float(p.rvs(None, rng)) for p in pri.sd[label]])
        for t, s in zip(b.terms, sd, strict=True):
            truth[f"sd({b.group}: {t})"] = s
        if b.correlated:
            C = _draw_lkj(b.n_terms, pri.cor[label].params["eta"], rng)
            for j in range(b.n_terms):
                for k in range(j + 1, b.n_terms):
                    truth[f"cor({b.group}: {b.terms[j]}, {b.terms[k]})"] = C[j, k]
            L = np.linalg.cholesky(C * sd[:, None] * sd[None, :])
        else:
            L = np.diag(sd)
        r = rng.standard_normal((b.n_levels, b.n_terms)) @ L.T
        eta = eta + np.einsum("np,np->n", b.Z, r[b.index])
    fam = d.family
    eta = np.clip(eta, -30, 20)
    disp = {}
    for dp in fam.dispersion:  # the family's dispersion parameters, drawn from their priors
        disp[dp.name] = float(pri.dispersion(dp.name).rvs(None, rng))
        truth[dp.name] = disp[dp.name]
    y = fam.simulate(rng, eta, d.trials, disp, d.weights)
    return y, truth


_HEALTH_KEYS = ("divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "ebfmi")


def _one(
    model: Any, seed: Any, method: str, fit_kwargs: dict[str, Any], n_draws: int
) -> dict[str, Any]:
    from bayesglmm.interpret.compare import param_draws

    rng = np.random.default_rng(seed)
    y, truth = simulate_from_prior(model, rng)
    sim_model = model.with_response(y)
    kwargs = dict(fit_kwargs)
    kwargs.setdefault("random_seed", int(rng.integers(2**31 - 1)))
    if method in bayesian_methods():
        kwargs.setdefault("log_likelihood", False)  # ranks need no pointwise log-likelihood
    with ignoring_warnings():  # thread-safe: a threaded client runs several at once
        fit = sim_model.fit(method=method, **kwargs)
    draws = param_draws(fit, extras=False, dispersion=True)
    ranks = {}
    for name, true in truth.items():
        dr = np.asarray(draws[name])
        if dr.size < n_draws:
            raise BayesGLMMError(
                f"the fit returned {dr.size} draws of `{name}`, fewer than n_draws={n_draws}"
            )
        if dr.size > n_draws:
            dr = dr[np.linspace(0, dr.size - 1, n_draws).astype(int)]
        ranks[name] = int((dr < true).sum())
    diag: dict[str, float] = {"elapsed_s": float(fit.elapsed)}
    health = fit.health or {}
    diag.update({k: float(health[k]) for k in _HEALTH_KEYS if k in health})
    if "converged" in fit.options:
        diag["converged"] = float(bool(fit.options["converged"]))
    return {"ranks": ranks, "diagnostics": diag}


def _reason(exc: BaseException) -> str:
    """``Type: message (at file:line in function)``, the innermost frame of the traceback."""
    msg = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        f = frames[-1]
        msg += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    return msg


def _safe(model: Any, seed: Any, method: str, fit_kwargs: dict[str, Any], n_draws: int) -> Any:
    try:
        return _one(model, seed, method, fit_kwargs, n_draws)
    except Exception as exc:  # noqa: BLE001 - a failed simulation is listed, not lost
        return _reason(exc)


class _Progress:
    """A plain progress line on stderr: done/total, failures, elapsed and time left.

    On a terminal the line is rewritten in place; otherwise (a log file, a notebook's
    captured stream) a line is written at every tenth of the run.
    """

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled and total > 0
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def update(self, done: int, failed: int) -> None:
        if not self.enabled:
            return
        tenth = 10 * done // self.total
        if not self.tty and tenth == self.shown:
            return
        self.shown = tenth
        el = time.perf_counter() - self.start
        left = el / done * (self.total - done) if done else float("nan")
        msg = (
            f"SBC: {done}/{self.total} simulations done"
            + (f" ({failed} failed)" if failed else "")
            + f", {el:.0f} s"
            + (f", about {left:.0f} s left" if done < self.total else "")
        )
        end = "\n" if (not self.tty or done == self.total) else ""
        print(("\r" if self.tty else "") + msg, end=end, file=sys.stderr, flush=True)


def _collect(futures: list[Any], progress: _Progress | None = None) -> dict[int, Any]:
    """Each simulation's result, or why it has none, as soon as it is done.

    ``client.gather`` raises on the first task whose worker died (``KilledWorker``) and so
    loses every finished simulation; here each future is read on its own.
    """
    from dask.distributed import as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    results: dict[int, Any] = {}
    failed = 0
    for fut in as_completed(futures):
        i = index[fut.key]
        try:
            results[i] = fut.result()
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
            name = type(exc).__name__
            if name == "KilledWorker":
                results[i] = f"the worker died while running it ({name}: {exc})"
            else:
                results[i] = f"it did not run to the end on the cluster ({_reason(exc)})"
        failed += not isinstance(results[i], dict)
        if progress is not None:
            progress.update(len(results), failed)
    return results


def unguarded_script_call() -> str | None:
    """The script that calls us at its top level outside ``if __name__ == "__main__":``.

    Dask starts worker processes with ``spawn``, which imports the main script again in each
    worker; an unguarded ``sbc()`` there starts a cluster inside every worker and fails with
    "Nanny failed to start".  Returns the script's path when that would happen, else None
    (a guarded call, a notebook or an interactive session, or a call from a function).
    """
    import ast
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        g = frame.f_globals
        if g.get("__name__") == "__main__" and frame.f_code.co_name == "<module>":
            path = g.get("__file__")
            if not path or not Path(path).is_file():
                return None  # interactive: nothing is re-imported
            try:
                tree = ast.parse(Path(path).read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError):
                return None
            line = frame.f_lineno
            for node in ast.walk(tree):
                if isinstance(node, ast.If) and _is_main_guard(node.test):
                    end = node.end_lineno or node.lineno
                    if node.lineno <= line <= end:
                        return None
            return str(path)
        frame = frame.f_back
    return None


def _is_main_guard(test: Any) -> bool:
    """``__name__ == "__main__"`` (either order)."""
    import ast

    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return isinstance(test.ops[0], ast.Eq) and bool(names) and bool(consts)


def sbc(
    model_spec: Any,
    n_sims: int = 100,
    method: str = "nuts",
    client: Any = None,
    *,
    n_draws: int = 99,
    random_seed: int = 0,
    fit_kwargs: dict[str, Any] | None = None,
    n_workers: int = 2,
    progressbar: bool = True,
) -> SBCResult:
    """Simulation-based calibration of a fitting method.

    Parameters
    ----------
    model_spec : GLMM or spec
        The model whose covariates, groups and priors are used (a spec from
        :func:`bayesglmm.spec.load_spec` is turned into its model).
    n_sims : int
        Number of simulations.
    method : str
        Any ``GLMM.fit`` method (``nuts``, ``laplace``, ``advi``, ...).
    client : dask.distributed.Client, optional
        Where to run; default a LocalCluster with ``n_workers`` single-threaded workers,
        closed afterwards.
    n_draws : int
        Posterior draws the ranks are taken among (thinned evenly from the fit's draws,
        which must be at least as many; thinning also cuts MCMC autocorrelation, which
        would otherwise make calibrated ranks look non-uniform).
    random_seed : int
        Seeds every simulation (independent streams via ``SeedSequence.spawn``): the prior
        draw, the response and, unless ``fit_kwargs`` sets one, the fit's ``random_seed``.
    fit_kwargs : dict, optional
        Options for ``fit`` (e.g. ``draws``, ``tune``, ``chains``).
    n_workers : int
        Workers of the default LocalCluster.  Called at the top level of a script without
        ``if __name__ == "__main__":`` (where worker processes would re-run the script), the
        default cluster uses threads instead, with an :class:`SBCNote` saying so: the ranks
        are the same.
    progressbar : bool
        Print a progress line (simulations done, failed, time left) on stderr.

    Returns
    -------
    SBCResult
    """
    model = (
        model_spec.model()
        if hasattr(model_spec, "model") and callable(model_spec.model)
        else model_spec
    )
    if not hasattr(model, "with_response"):
        raise BayesGLMMError("sbc() needs a GLMM or a model spec")
    fit_kwargs = dict(fit_kwargs or {})
    if method == "nuts":
        fit_kwargs.setdefault("cores", 1)
        fit_kwargs.setdefault("progressbar", False)
    seeds = np.random.SeedSequence(random_seed).spawn(n_sims)
    from dask.distributed import Client, LocalCluster

    own = client is None
    if own:
        script = unguarded_script_call()
        if script is not None:
            warnings.warn(
                f"sbc() is called at the top level of {script} without "
                '`if __name__ == "__main__":`; worker processes would run the script again, '
                "so the simulations run in threads of this process instead (the same ranks). "
                'Put the call under `if __name__ == "__main__":` to run them in processes.',
                SBCNote,
                stacklevel=2,
            )
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=script is None,
            dashboard_address=None,
        )
        client = Client(cluster)
    if method == "nuts":
        model.kernel_layout()  # computed once here, shipped with the model, shared by refits
    try:
        shipped = client.scatter(model, broadcast=True)
        futures = [
            client.submit(_safe, shipped, s, method, fit_kwargs, n_draws, pure=False) for s in seeds
        ]
        results = _collect(futures, _Progress(n_sims, progressbar))
    finally:
        if own:
            client.close()
            cluster.close()
    ok = {i: r for i, r in sorted(results.items()) if isinstance(r, dict)}
    failures = {i: str(r) for i, r in sorted(results.items()) if not isinstance(r, dict)}
    ranks = pd.DataFrame.from_dict({i: r["ranks"] for i, r in ok.items()}, orient="index")
    diagnostics = pd.DataFrame.from_dict(
        {i: r["diagnostics"] for i, r in ok.items()}, orient="index"
    )
    result = SBCResult(
        ranks=ranks.sort_index(),
        n_draws=n_draws,
        method=method,
        failures=failures,
        diagnostics=diagnostics.sort_index(),
    )
    if failures:
        warnings.warn(result.failure_report(), SBCFailureWarning, stacklevel=2)
    return result
