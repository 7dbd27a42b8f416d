"""One SBC simulation: simulate, refit, and rank the truth among the posterior draws; a
failure becomes its reason (a string), so a run keeps the simulations that finished."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bayesglmm.calibration.prior_simulation import simulate_from_prior
from bayesglmm.engines.registry import bayesian_methods
from bayesglmm.errors import BayesGLMMError
from bayesglmm.quiet import ignoring_warnings

_HEALTH_KEYS = ("divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "ebfmi")


def fit_one(
    model: Any, seed: Any, method: str, fit_kwargs: dict[str, Any], n_draws: int
) -> dict[str, Any]:
    """Simulate from the prior with ``seed``, refit by ``method`` and rank the truth among
    ``n_draws`` thinned draws: ``{"ranks": {name: rank}, "diagnostics": {...}}``."""
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


def failure_reason(exc: BaseException) -> str:
    """``Type: message (at file:line in function)``, the innermost frame of the traceback."""
    msg = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        f = frames[-1]
        msg += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    return msg


def fit_one_safely(
    model: Any, seed: Any, method: str, fit_kwargs: dict[str, Any], n_draws: int
) -> dict[str, Any] | str:
    """:func:`fit_one`, or the reason it failed (a string)."""
    try:
        return fit_one(model, seed, method, fit_kwargs, n_draws)
    except Exception as exc:  # noqa: BLE001 - a failed simulation is listed, not lost
        return failure_reason(exc)
