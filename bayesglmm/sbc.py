"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023) on Dask.

For each simulation: draw parameters from the prior, random effects and a response from the
model (same covariates and groups as the given model), refit by the chosen method, and
record the rank of each true parameter among the (thinned) posterior draws.  With a
calibrated method the ranks are uniform.  Work runs on ``dask.distributed``: a
:class:`~dask.distributed.LocalCluster` by default, or any ``Client`` the user passes.
Results come back in simulation order; a failed simulation is counted and reported, never
lost.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayesglmm.errors import BayesGLMMError


@dataclass
class SBCResult:
    """Ranks and uniformity tests of an SBC run.

    Attributes
    ----------
    ranks : DataFrame
        One row per successful simulation (index = simulation id), one column per parameter.
    n_draws : int
        Posterior draws the ranks are taken among (ranks lie in 0..n_draws).
    failures : dict
        Simulation id -> error message.
    method : str
    """

    ranks: pd.DataFrame
    n_draws: int
    method: str
    failures: dict[int, str] = field(default_factory=dict)

    def uniformity(self, bins: int | None = None) -> pd.DataFrame:
        """Chi-square test of rank uniformity per parameter (statistic, df, p-value)."""
        n = len(self.ranks)
        bins = bins or max(2, min(20, n // 5))
        rows = {}
        for col in self.ranks:
            r = self.ranks[col].to_numpy()
            counts = np.bincount(
                np.minimum((r * bins) // (self.n_draws + 1), bins - 1), minlength=bins
            )
            exp = n / bins
            chi2 = float(((counts - exp) ** 2 / exp).sum())
            rows[col] = {
                "chi2": chi2,
                "df": bins - 1,
                "p_value": float(stats.chi2.sf(chi2, bins - 1)),
            }
        return pd.DataFrame(rows).T

    def plot(self, bins: int | None = None):  # noqa: ANN201
        """Rank histograms (top) and ECDF-difference plots with 95% bands (bottom)."""
        import matplotlib.pyplot as plt

        params = list(self.ranks.columns)
        n = len(self.ranks)
        bins = bins or max(2, min(20, n // 5))
        fig, axes = plt.subplots(2, len(params), figsize=(3.2 * len(params), 5.5), squeeze=False)
        for j, p in enumerate(params):
            u = (self.ranks[p].to_numpy() + 0.5) / (self.n_draws + 1)
            ax = axes[0, j]
            ax.hist(u, bins=bins, range=(0, 1), color="0.6", edgecolor="white")
            lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
            ax.axhspan(lo, hi, color="C0", alpha=0.15)
            ax.set_title(p, fontsize="small")
            ax.set_xlabel("normalized rank")
            ax.set_ylabel("count")
            grid = np.linspace(0, 1, 101)
            ecdf = (u[:, None] <= grid[None, :]).mean(axis=0)
            band = 1.96 * np.sqrt(grid * (1 - grid) / max(n, 1))
            ax = axes[1, j]
            ax.fill_between(grid, -band, band, color="C0", alpha=0.15)
            ax.plot(grid, ecdf - grid, color="C3")
            ax.axhline(0, color="k", lw=0.7)
            ax.set_xlabel("normalized rank")
            ax.set_ylabel("ECDF - uniform")
        fig.suptitle(f"SBC: {self.method}, {n} simulations, {len(self.failures)} failed")
        fig.tight_layout()
        return fig


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
        means = d.X[:, slope_idx].mean(axis=0) if slope_idx else np.zeros(0)
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
    mu = fam.linkinv(eta)
    if fam.name == "poisson":
        y = rng.poisson(mu).astype(float)
    elif fam.name == "gaussian":
        s = float(pri.sigma.rvs(None, rng))  # type: ignore[union-attr]
        truth["sigma"] = s
        y = rng.normal(mu, s)
    else:
        n = 1 if d.trials is None else d.trials.astype(np.int64)
        y = rng.binomial(n, mu).astype(float)
    return y, truth


_WORKER_CACHE: dict[Any, Any] = {}


def _one(
    model: Any, seed: Any, method: str, fit_kwargs: dict[str, Any], n_draws: int
) -> dict[str, Any]:
    from bayesglmm.compare import param_draws

    rng = np.random.default_rng(seed)
    y, truth = simulate_from_prior(model, rng)
    sim_model = model.with_response(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sim_model.fit(method=method, **fit_kwargs)
    draws = param_draws(fit)
    ranks = {}
    for name, true in truth.items():
        dr = draws[name]
        if dr.size > n_draws:
            dr = dr[np.linspace(0, dr.size - 1, n_draws).astype(int)]
        ranks[name] = int((dr < true).sum())
    return ranks


def _safe(model: Any, seed: Any, method: str, fit_kwargs: dict[str, Any], n_draws: int) -> Any:
    try:
        return _one(model, seed, method, fit_kwargs, n_draws)
    except Exception as exc:  # noqa: BLE001 - a failed simulation is counted, not lost
        return f"{type(exc).__name__}: {exc}"


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
        Posterior draws the ranks are taken among (thinned evenly).
    random_seed : int
        Seeds every simulation (independent streams via ``SeedSequence.spawn``).
    fit_kwargs : dict, optional
        Options for ``fit`` (e.g. ``draws``, ``tune``, ``chains``).

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
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        shipped = client.scatter(model, broadcast=True)
        futures = [
            client.submit(_safe, shipped, s, method, fit_kwargs, n_draws, pure=False) for s in seeds
        ]
        results = client.gather(futures)
    finally:
        if own:
            client.close()
            cluster.close()
    ok = {i: r for i, r in enumerate(results) if isinstance(r, dict)}
    failures = {i: r for i, r in enumerate(results) if not isinstance(r, dict)}
    if failures:
        warnings.warn(f"{len(failures)} of {n_sims} SBC simulations failed", stacklevel=2)
    ranks = pd.DataFrame.from_dict(ok, orient="index").sort_index()
    return SBCResult(ranks=ranks, n_draws=n_draws, method=method, failures=failures)


def _with_response(model: Any, y: np.ndarray) -> Any:
    """A copy of ``model`` with a new response (same design otherwise; compiled model reused)."""
    import copy

    new = copy.copy(model)
    new.design = replace(model.design, y=np.asarray(y, dtype=float))
    if model._pymc_model is not None:
        import pymc as pm

        pm.set_data({"y_obs": new.design.y}, model=model._pymc_model)
        new._pymc_model = model._pymc_model
    return new
