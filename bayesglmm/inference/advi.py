"""ADVI through PyMC (mean-field or full-rank), with settings that converge on the course
examples.

PyMC's defaults (``pm.fit()`` from the prior's initial point, learning rate by adagrad_window)
return NaN on toenail.  Here:

* the optimization starts at the Laplace ML mode when an ML engine fit is cheap (fixed
  effects, log SDs and standardized random effects ``z = mode / sd``), else at PyMC's
  initial point;
* Adam with a small learning rate (``learning_rate=0.01``) and gradient-norm clipping;
* convergence is declared when the mean loss (negative ELBO) over the last ``every``
  iterations improves on the previous window's by less than ``tolerance`` (relative), a
  stable test under the Monte Carlo noise of the loss (parameter-change tests either stop
  at once or never);
* non-finite losses or draws raise :class:`~bayesglmm.errors.InferenceError`, never NaN draws.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pymc as pm
from pymc.variational.callbacks import Callback

from bayesglmm.errors import ConvergenceWarning, InferenceError, PartialFitWarning
from bayesglmm.inference.mcmc import InterruptGuard, interactive
from bayesglmm.inference.pytensor_lock import PYTENSOR_LOCK
from bayesglmm.quiet import ignoring_warnings


class LossPlateau(Callback):
    """Stop when the windowed mean loss stops improving (relative change < ``tolerance``)."""

    def __init__(self, every: int = 500, tolerance: float = 1e-3) -> None:
        self.every = every
        self.tolerance = tolerance
        self.converged = False

    def __call__(self, approx: Any, loss_hist: np.ndarray, i: int) -> None:
        if i < 2 * self.every or i % self.every:
            return
        last = float(np.mean(loss_hist[-self.every :]))
        prev = float(np.mean(loss_hist[-2 * self.every : -self.every]))
        if np.isfinite(last) and (prev - last) < self.tolerance * abs(last):
            self.converged = True
            raise StopIteration(f"loss plateaued at {last:.6g} after {i} iterations")


def _ml_start(model: Any) -> dict[str, np.ndarray] | None:
    """Unconstrained start point from the Laplace ML fit (uncorrelated blocks only)."""
    try:
        from bayesglmm.inference.laplace import fit_ml
    except ImportError:
        return None
    d = model.design
    if any(b.correlated for b in d.blocks) or d.family.has_dispersion:
        return None
    try:
        with ignoring_warnings():
            est = fit_ml(d)
    except Exception:  # noqa: BLE001 - a start value is optional
        return None
    from bayesglmm.priors import block_labels

    beta = np.asarray(est.beta, dtype=float)
    start: dict[str, np.ndarray] = {}
    slope_idx = [i for i, n in enumerate(d.x_names) if n != "(Intercept)"]
    if slope_idx:
        from bayesglmm.pymc_model import slope_scales

        start["beta_scaled"] = beta[slope_idx] * slope_scales(d)  # the model's free slopes
    if "(Intercept)" in d.x_names:
        means = d.X[:, slope_idx].mean(axis=0) if slope_idx else np.zeros(0)
        b0 = beta[d.x_names.index("(Intercept)")]
        start["Intercept_centered"] = np.asarray(b0 + means @ beta[slope_idx])
    for label, _b, cov, mode in zip(
        block_labels(d), d.blocks, est.covariances, est.modes, strict=True
    ):
        sd = np.sqrt(np.maximum(np.diag(np.asarray(cov)), 1e-3))
        start[f"sd_{label}_log__"] = np.log(sd)
        start[f"z_{label}"] = np.asarray(mode) / sd[None, :]
    return start


def fit_advi(
    model: Any,
    *,
    method: str = "advi",
    n: int = 30_000,
    learning_rate: float = 0.01,
    draws: int = 1000,
    random_seed: int | None = None,
    tolerance: float = 1e-3,
    every: int = 500,
    start: str | dict[str, Any] | None = "ml",
    progressbar: bool | None = None,
    allow_partial: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Fit by ADVI and return (DataTree with one chain of draws, info dict).

    Parameters
    ----------
    model : GLMM
    method : {"advi", "fullrank_advi"}
    n : int
        Maximum number of iterations.
    learning_rate : float
        Adam learning rate.
    draws : int
        Draws from the fitted approximation.
    random_seed : int, optional
        Seeds both the optimization and the draws.
    tolerance, every : float, int
        Convergence: the mean loss over ``every`` steps improves by less than ``tolerance``
        (relative) on the previous window.
    start : "ml", dict or None
        Start at the Laplace ML mode (default), at a user point, or at PyMC's initial point.
    allow_partial : bool
        Ctrl-C raises KeyboardInterrupt (PyMC's ``fit`` would swallow it and return the
        approximation so far); with True, that approximation is returned instead, with a
        :class:`~bayesglmm.errors.PartialFitWarning` and ``interrupted=True`` in the info.
    """
    if method not in ("advi", "fullrank_advi"):
        raise InferenceError(f"method must be 'advi' or 'fullrank_advi', not {method!r}")
    pm_model = model.build()
    start_point = _ml_start(model) if start == "ml" else (start or None)
    conv = LossPlateau(every=every, tolerance=tolerance)
    if progressbar is None:
        progressbar = interactive()
    with InterruptGuard() as guard, pm_model, PYTENSOR_LOCK:  # compile flags are process-wide
        try:
            approx = pm.fit(
                n=n,
                method=method,
                start=start_point,
                obj_optimizer=pm.adam(learning_rate=learning_rate),
                total_grad_norm_constraint=100.0,
                callbacks=[conv],
                random_seed=random_seed,
                progressbar=progressbar,
            )
        except Exception as exc:
            if guard.interrupted:
                raise KeyboardInterrupt from exc
            raise
    hist = np.asarray(approx.hist, dtype=float)
    iters = int(hist.size)
    if guard.interrupted and not allow_partial:
        raise KeyboardInterrupt
    if guard.interrupted and iters == 0:
        raise InferenceError(
            f"{method} was interrupted before its first iteration: there is nothing to "
            "return; run the fit again"
        )
    if hist.size == 0 or not np.isfinite(hist[-min(every, hist.size) :]).all():
        raise InferenceError(
            f"{method} diverged (non-finite loss after {iters} iterations); lower "
            "learning_rate, or rescale the predictors"
        )
    converged = conv.converged
    if guard.interrupted:
        converged = False
        warnings.warn(
            f"{method} was interrupted after {iters} of at most {n} iterations: returning "
            "the approximation at that point, which has not converged",
            PartialFitWarning,
            stacklevel=3,
        )
    elif not converged:
        warnings.warn(
            f"{method} did not converge in {n} iterations (relative tolerance {tolerance}); "
            "raise n or lower learning_rate",
            ConvergenceWarning,
            stacklevel=3,
        )
    with PYTENSOR_LOCK:
        idata = approx.sample(draws, random_seed=random_seed)
    post = idata["posterior"].to_dataset()
    for name, var in post.data_vars.items():
        if not np.isfinite(var.values).all():
            raise InferenceError(f"{method} produced non-finite draws for `{name}`")
    info = {
        "iterations": iters,
        "converged": converged,
        "final_loss": float(np.mean(hist[-every:])),
        "learning_rate": learning_rate,
        "started_at": "ml" if isinstance(start_point, dict) and start == "ml" else "initial point",
    }
    if guard.interrupted:
        info["partial"] = {"interrupted": True, "iterations_requested": n, "iterations_kept": iters}
    return idata, info
