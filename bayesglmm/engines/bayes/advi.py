"""ADVI through PyMC (mean-field or full-rank), with settings that converge on the course
examples.

PyMC's defaults (``pm.fit()`` from the prior's initial point, learning rate by adagrad_window)
return NaN on toenail.  Here:

* the optimization starts at the Laplace ML mode when an ML engine fit is cheap (fixed
  effects, log SDs and standardized random effects ``z = mode / sd``), else at PyMC's
  initial point;
* Adam with a small learning rate (``learning_rate=0.01``) and gradient-norm clipping;
* convergence is declared when the median losses (negative ELBO) of the last three windows
  of ``every`` iterations lie within ``tolerance`` (relative) of each other, or within the
  loss's Monte Carlo noise if that is larger (:class:`LossPlateau`);
  ``fit.options["convergence"]`` says so;
* non-finite losses or draws raise :class:`~bayesglmm.errors.InferenceError`, never NaN draws.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pymc as pm
from pymc.variational.callbacks import Callback

from bayesglmm import posterior_names as nm
from bayesglmm.engines.bayes.pymc_nuts import InterruptGuard, interactive
from bayesglmm.engines.pytensor_lock import PYTENSOR_LOCK
from bayesglmm.errors import ConvergenceWarning, InferenceError, PartialFitWarning
from bayesglmm.quiet import ignoring_warnings

if TYPE_CHECKING:
    from bayesglmm.design.types import Design
    from bayesglmm.priors import PriorSet

_quiet = threading.local()


class _DropInterruptedLine(logging.Filter):
    """PyMC logs "Interrupted at 1,999 [6%]" when a callback stops a converged run: drop
    it while one of our fits runs in this thread (other users of ``pm.fit`` still see it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(_quiet, "active", False) and "Interrupted at" in record.getMessage())


_PYMC_VI_LOGGER = logging.getLogger("pymc.variational.inference")
if not any(isinstance(f, _DropInterruptedLine) for f in _PYMC_VI_LOGGER.filters):
    _PYMC_VI_LOGGER.addFilter(_DropInterruptedLine())


class LossPlateau(Callback):
    """Stop when the windowed median loss has stopped moving; optionally print progress.

    Every ``every`` iterations the median loss (negative ELBO) of the last ``every``
    iterations is recorded.  ADVI has converged when the last ``patience + 1`` window
    medians (default 3) all lie within a band of width

        ``max(tolerance * |median|, 2 * sqrt(2) * SE)``,

    where ``SE`` is the largest of those windows' standard errors of the median
    (``1.253 * 1.4826 * MAD / sqrt(every)``): a relative tolerance, or the Monte Carlo
    noise of the loss if that is larger.

    Why this rule: the loss is a one-sample Monte Carlo estimate with heavy right tails in
    the first windows, so medians and the MAD, not means and SDs (an earlier noise test on
    means and batch-means SEs stopped the epilepsy model after 1,000 iterations, 0.17 from
    NUTS's intercept, because outliers inflated the SE).  The previous rule, one window
    pair whose mean "gain" was below the tolerance, counted any window that got *worse* as
    a plateau and so stopped on one noisy window; and on small data sets (rikz, 45 rows,
    loss ~121) its tolerance (0.12 nats) was far below the noise of a window mean, so it
    ran on until a lucky window.  Requiring three medians in one band stops neither on one
    lucky window nor during a slow drift (a drift of one band per window fails it).
    """

    def __init__(
        self, every: int = 200, tolerance: float = 1e-3, *, label: str = "ADVI", n: int = 0,
        progress: bool = False, guard: Any = None, patience: int = 2,
    ) -> None:  # fmt: skip
        self.guard = guard
        self.every = every
        self.tolerance = tolerance
        self.patience = max(int(patience), 1)
        self.medians: list[float] = []
        self.ses: list[float] = []
        self.converged = False
        self.reason = ""
        self.label, self.n, self.progress = label, n, progress
        self.last_loss = float("nan")

    def __call__(self, approx: Any, loss_hist: np.ndarray, i: int) -> None:
        if self.guard is not None and self.guard.interrupted:
            raise StopIteration(f"interrupted after {i} iterations")
        if i % self.every or i < self.every:
            return
        window = np.asarray(loss_hist[-self.every :], dtype=float)
        med = float(np.median(window))
        mad = float(np.median(np.abs(window - med)))
        self.medians.append(med)
        self.ses.append(1.2533 * 1.4826 * mad / np.sqrt(window.size))
        self.last_loss = med
        k = self.patience + 1
        if len(self.medians) < k:
            self._show(i, med, None)
            return
        recent = self.medians[-k:]
        spread = max(recent) - min(recent)
        band = max(self.tolerance * abs(med), 2.0 * np.sqrt(2.0) * max(self.ses[-k:]))
        self._show(i, med, spread)
        if not (np.all(np.isfinite(recent)) and spread < band):
            return
        self.reason = (
            f"the median loss of the last {k} windows of {self.every} iterations lies within "
            f"{spread:.3g} (< {band:.3g} = max(tolerance {self.tolerance:g} x |loss|, "
            "2 sqrt(2) x its Monte Carlo SE))"
        )
        self.converged = True
        raise StopIteration(f"loss plateaued at {med:.6g} after {i} iterations")

    def _show(self, i: int, loss: float, gain: float | None) -> None:
        if not self.progress:
            return
        change = "" if gain is None else f", spread of the last windows {gain:.4g}"
        print(
            f"\r{self.label}: iteration {i:,} of at most {self.n:,}, loss {loss:.6g}{change}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )


def _ml_start(d: Design, priors: PriorSet) -> dict[str, np.ndarray] | None:
    """Unconstrained start point from the Laplace ML fit (non-gaussian families).

    An SD estimated at 0 starts at 1% of the typical value of its prior (autoscaled to its
    term's column, so a slope SD on any scale starts on that scale); a correlated block's
    correlations are shrunk by 10% towards 0 so that its Cholesky factor exists."""
    try:
        from bayesglmm.engines.ml.laplace import fit_ml
    except ImportError:
        return None
    if d.family.has_dispersion and d.blocks:
        return None  # (a gaussian GLM is fine: its start adds sigma below)
    try:
        with ignoring_warnings():
            est = fit_ml(d)
    except Exception:  # noqa: BLE001 - a start value is optional
        return None
    from bayesglmm.priors import block_labels, term_scales

    beta = np.asarray(est.beta, dtype=float)
    start: dict[str, np.ndarray] = {}
    slope_idx = [i for i, n in enumerate(d.x_names) if n != "(Intercept)"]
    if slope_idx:
        from bayesglmm.engines.bayes.pymc_model import slope_scales

        start[nm.BETA_SCALED] = beta[slope_idx] * slope_scales(d)  # the model's free slopes
    if "(Intercept)" in d.x_names:
        means = d.row_mean(d.X[:, slope_idx]) if slope_idx else np.zeros(0)
        b0 = beta[d.x_names.index("(Intercept)")]
        start[nm.INTERCEPT_CENTERED] = np.asarray(b0 + means @ beta[slope_idx])
    if d.family.has_dispersion and est.sigma:
        start[nm.log_value(nm.SIGMA)] = np.asarray(np.log(float(est.sigma)))
    for label, b, cov, mode in zip(
        block_labels(d), d.blocks, est.covariances, est.modes, strict=True
    ):
        cov = np.asarray(cov, dtype=float)
        raw = np.sqrt(np.maximum(np.diag(cov), 0.0))
        typical = np.array([_typical(p) for p in priors.sd[label]])
        sd = np.maximum(raw, 1e-2 * typical)
        if b.correlated and b.n_terms > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                C = cov / np.outer(raw, raw)
            C = np.where(np.isfinite(C), C, 0.0)
            C = 0.9 * C + 0.1 * np.eye(b.n_terms)
            np.fill_diagonal(C, 1.0)
            L = np.linalg.cholesky(C * np.outer(sd, sd))
            # the model's factor is for the columns divided by their units (term_scales); on
            # the constrained scale, by the variable's name (PyMC's backward transform of a
            # value given for the packed value variable fails on a NumPy array)
            units = term_scales(b, d.weights)
            start[nm.chol_cov(label)] = (L * units[:, None])[np.tril_indices(b.n_terms)]
            start[nm.z(label)] = np.linalg.solve(L, np.asarray(mode, dtype=float).T).T
        else:
            start[nm.log_value(nm.sd(label))] = np.log(sd)
            start[nm.z(label)] = np.asarray(mode) / sd[None, :]
    return start


def _typical(prior: Any) -> float:
    """A typical value of a positive prior (its scale; the mean of an Exponential or Gamma)."""
    p = prior.params
    if prior.dist in ("HalfNormal", "HalfStudentT"):
        return float(p["sigma"])
    if prior.dist == "HalfCauchy":
        return float(p["beta"])
    if prior.dist == "Exponential":
        return 1.0 / float(p["lam"])
    if prior.dist == "Gamma":
        return float(p["alpha"]) / float(p["beta"])
    return 1.0


def fit_advi(
    design: Design,
    priors: PriorSet,
    pm_model: Any,
    *,
    method: str = "advi",
    n: int = 30_000,
    learning_rate: float = 0.01,
    draws: int = 1000,
    random_seed: int | None = None,
    tolerance: float = 1e-3,
    every: int = 200,
    start: str | dict[str, Any] | None = "ml",
    progressbar: bool | None = None,
    allow_partial: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Fit by ADVI and return (DataTree with one chain of draws, info dict).

    Parameters
    ----------
    design : Design
        The model design.
    priors : PriorSet
        Its priors (the ML start point's floor for an SD estimated at 0).
    pm_model : pymc.Model
        The model's PyMC model (:meth:`bayesglmm.GLMM.build`).
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
        Convergence: the median losses of the last three windows of ``every`` steps lie
        within ``tolerance`` (relative), or within their Monte Carlo noise if larger.
    start : "ml", dict or None
        Start at the Laplace ML mode (default), at a user point, or at PyMC's initial point.
    allow_partial : bool
        Ctrl-C raises KeyboardInterrupt (PyMC's ``fit`` would swallow it and return the
        approximation so far); with True, that approximation is returned instead, with a
        :class:`~bayesglmm.errors.PartialFitWarning` and ``interrupted=True`` in the info.
    """
    if method not in ("advi", "fullrank_advi"):
        raise InferenceError(f"method must be 'advi' or 'fullrank_advi', not {method!r}")
    start_point = _ml_start(design, priors) if start == "ml" else (start or None)
    if progressbar is None:
        progressbar = interactive()
    # PyMC's own bar ends a normal, converged run with "Interrupted at 1,999 [6%]": ours
    # prints a plain line per window instead, and how the run ended
    guard = InterruptGuard(soft=True)
    conv = LossPlateau(
        every=every, tolerance=tolerance, label=method, n=n, progress=progressbar, guard=guard
    )
    _quiet.active = True
    with guard, pm_model, PYTENSOR_LOCK:  # compile flags are process-wide
        try:
            approx = pm.fit(
                n=n,
                method=method,
                start=start_point,
                obj_optimizer=pm.adam(learning_rate=learning_rate),
                total_grad_norm_constraint=100.0,
                callbacks=[conv],
                random_seed=random_seed,
                progressbar=False,
            )
        except Exception as exc:
            if guard.interrupted:
                raise KeyboardInterrupt from exc
            raise
        finally:
            _quiet.active = False
    hist = np.asarray(approx.hist, dtype=float)
    iters = int(hist.size)
    if progressbar:
        end = f"converged ({conv.reason})" if conv.converged else "stopped"
        print(f"\r{method}: {end} after {iters:,} iterations", file=sys.stderr, flush=True)
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
        "convergence": conv.reason if converged else "",
        "final_loss": float(np.mean(hist[-every:])),
        "learning_rate": learning_rate,
        "started_at": "ml" if isinstance(start_point, dict) and start == "ml" else "initial point",
    }
    if guard.interrupted:
        info["partial"] = {"interrupted": True, "iterations_requested": n, "iterations_kept": iters}
    return idata, info
