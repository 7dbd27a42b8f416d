"""NUTS through PyMC: sampler choice, seeding, log-likelihood, and health warnings."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
import warnings
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from bayesglmm.engines.pytensor_lock import PYTENSOR_LOCK
from bayesglmm.errors import BayesGLMMError, InferenceError, PartialFitWarning
from bayesglmm.quiet import ignoring_warnings

if TYPE_CHECKING:  # PyMC loads only when its sampler runs (the default kernel needs none)
    import pymc as pm

Sampler = Literal["auto", "kernel", "pymc", "nutpie", "numpyro"]
_SAMPLER_MODULES = {
    "auto": "pymc",
    "kernel": "nutpie",
    "pymc": "pymc",
    "nutpie": "nutpie",
    "numpyro": "numpyro",
}


def interactive() -> bool:
    """True when progress bars should show: a terminal or a notebook, not pytest or CI."""
    if os.environ.get("PYTEST_CURRENT_TEST") or os.environ.get("CI"):
        return False
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def check_sampler(sampler: str) -> str:
    """Validate the sampler name and that its package is installed."""
    if sampler not in _SAMPLER_MODULES:
        raise BayesGLMMError(
            f"unknown sampler `{sampler}`; choose one of {', '.join(_SAMPLER_MODULES)}"
        )
    if importlib.util.find_spec(_SAMPLER_MODULES[sampler]) is None:
        raise BayesGLMMError(
            f"sampler `{sampler}` is not installed; `pip install bayesglmm[{sampler}]`"
        )
    return sampler


def resolve_sampler(sampler: str, kernel_available: bool) -> str:
    """``auto`` -> ``kernel`` when the fused kernel covers the model, else ``pymc``.

    ``kernel`` is nutpie's Rust NUTS on :mod:`bayesglmm.engines.bayes.log_density` (no
    PyTensor compile, refits reuse it); ``nutpie`` compiles the PyMC model for nutpie
    (any model, 15-20 s compile); ``pymc`` is PyMC's own NUTS.
    """
    check_sampler(sampler)
    if sampler == "auto":
        return "kernel" if kernel_available and _has("nutpie") else "pymc"
    if sampler == "kernel" and not kernel_available:
        raise BayesGLMMError(
            "sampler='kernel' covers models with logit, log or identity links; "
            "use sampler='pymc' or 'nutpie' for this model"
        )
    return sampler


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_cores(cores: Any) -> None:
    """``cores`` must be None or a whole number >= 1 (0 made nutpie wait forever)."""
    if cores is None:
        return
    if isinstance(cores, bool) or not isinstance(cores, int | np.integer) or cores < 1:
        raise BayesGLMMError(
            f"cores={cores!r} is not valid: give a whole number >= 1 (chains run in "
            "parallel), or leave it out for one core per chain up to the CPU count"
        )


class InterruptGuard:
    """Notes a Ctrl-C (SIGINT) during a fit, for samplers that swallow KeyboardInterrupt.

    PyMC's samplers and ``pm.fit`` catch the KeyboardInterrupt and return what they have;
    this context manager wraps the current SIGINT handler (main thread only, and only when
    it is a Python callable: a process started in the background ignores SIGINT) so that
    the fit can tell an interrupted run from a finished one.  The wrapped handler still
    runs, so the KeyboardInterrupt is raised as usual; with ``soft=True`` only from the
    second Ctrl-C on (the fit polls :attr:`interrupted` and stops itself).
    """

    def __init__(self, *, soft: bool = False) -> None:
        self.interrupted = False
        self.soft = soft
        self._previous: Any = None

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous = previous
                signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        # soft: the first Ctrl-C only sets the flag, and the fit's per-step callback stops
        # the loop where it can stop cleanly (a KeyboardInterrupt raised at an arbitrary
        # bytecode could land outside PyMC's handler); a second Ctrl-C interrupts at once
        first = not self.interrupted
        self.interrupted = True
        if not (self.soft and first):
            self._previous(signum, frame)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def check(self) -> None:
        """Raise KeyboardInterrupt if interrupted (from a per-draw callback, so a sequential
        sampler does not go on to its next chain)."""
        if self.interrupted:
            raise KeyboardInterrupt


def _finished_lengths(post: xr.Dataset) -> np.ndarray:
    """Per chain, the number of leading draws where every variable is finite (an
    interrupted nutpie run pads the unfinished draws of each chain with NaN)."""
    ok = np.ones((post.sizes["chain"], post.sizes["draw"]), dtype=bool)
    if not ok.size:
        return np.zeros(ok.shape[0], dtype=int)
    for var in post.data_vars.values():
        vals = var.transpose("chain", "draw", ...).values
        if vals.dtype.kind in "fc":
            ok &= np.isfinite(vals.reshape(vals.shape[0], vals.shape[1], -1)).all(axis=2)
    return np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1))


def keep_finished_draws(
    tree: xr.DataTree, *, draws: int, chains: int, what: str = "NUTS"
) -> tuple[xr.DataTree, dict[str, Any]]:
    """The draws of an interrupted run that exist, as equal-length chains, and a record.

    As PyMC after a KeyboardInterrupt: keep the chains and the common length that keep the
    most draws (every kept chain truncated to the shortest kept one); unfinished (NaN) draws
    are never kept.  Raises :class:`~bayesglmm.errors.InferenceError` when no chain has a
    posterior draw (interrupted during tuning); warns :class:`PartialFitWarning` otherwise.

    Returns
    -------
    (DataTree, dict)
        The trimmed tree, and ``{"interrupted": True, "draws_requested", "chains_requested",
        "draws_kept", "chains_kept"}`` (draws per chain).
    """
    post = tree["posterior"].to_dataset() if "posterior" in tree.children else None
    lengths = (
        _finished_lengths(post)
        if post is not None and {"chain", "draw"} <= set(post.sizes)
        else np.zeros(0, dtype=int)
    )
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    kept_total = sorted_len * np.arange(sorted_len.size, 0, -1)
    if not sorted_len.size or kept_total.max() == 0:
        raise InferenceError(
            f"{what} was interrupted before any posterior draw (during tuning): there is "
            "nothing to return; run the fit again (fewer draws, or without interrupting)"
        )
    best = int(np.argmax(kept_total))
    length = int(sorted_len[best])
    keep = np.sort(order[best:])
    out = xr.DataTree()
    for name, node in tree.children.items():
        ds = node.to_dataset()
        if {"chain", "draw"} <= set(ds.sizes):
            ds = ds.isel(chain=keep, draw=slice(0, length))
            ds = ds.assign_coords(chain=np.arange(keep.size), draw=np.arange(length))
        out[name] = xr.DataTree(ds)
    out.attrs.update(tree.attrs)
    info = {
        "interrupted": True,
        "draws_requested": int(draws),
        "chains_requested": int(chains),
        "draws_kept": length,
        "chains_kept": int(keep.size),
    }
    out["sample_stats"].attrs.update({f"partial_{k}": int(v) for k, v in info.items()})
    warnings.warn(
        f"{what} was interrupted: returning the {length} draws x {keep.size} chains that "
        f"finished ({draws} x {chains} were asked for); estimates and diagnostics rest on "
        "these draws only",
        PartialFitWarning,
        stacklevel=3,
    )
    return out, info


def partial_info(tree: Any) -> dict[str, Any]:
    """The record :func:`keep_finished_draws` left on a tree, or {} for a complete run."""
    try:
        attrs = tree["sample_stats"].attrs
    except KeyError:
        return {}
    if not attrs.get("partial_interrupted"):
        return {}
    keys = ("interrupted", "draws_requested", "chains_requested", "draws_kept", "chains_kept")
    info: dict[str, Any] = {k: int(attrs[f"partial_{k}"]) for k in keys}
    info["interrupted"] = True
    return info


def default_target_accept(design: Any) -> float:
    """NUTS ``target_accept``: 0.8 (Stan, brms, bambi, nutpie) when every grouping factor
    has at least 50 levels, else 0.95 (rstanarm's choice for glmer models).

    With few groups the SDs are weakly identified and the posterior has a funnel that
    diverges at 0.8 (RIKZ, 9 beaches: 25 divergences at 0.8, none at 0.9 or 0.95); with
    many groups 0.8 halves the leapfrog steps per draw for the same effective sample size
    (toenail, hdp).  Divergences are always reported, with advice to raise it.
    """
    levels = [b.n_levels for b in design.blocks]
    return 0.8 if levels and min(levels) >= 50 else 0.95


def sample_nuts(
    model: pm.Model,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    random_seed: int | None = None,
    sampler: str = "pymc",
    target_accept: float = 0.95,
    progressbar: bool | None = None,
    init: str = "auto",
    allow_partial: bool = False,
    **kwargs: Any,
) -> Any:
    """Run NUTS and return a DataTree with posterior, sample_stats, observed_data.

    Parameters
    ----------
    model : pymc.Model
    draws, tune, chains : int
        Draws kept per chain, tuning steps per chain, number of chains.
    cores : int, optional
        Parallel chains (default: ``min(chains, os.cpu_count())``).
    random_seed : int, optional
        The same seed gives identical draws.
    sampler : {"pymc", "nutpie", "numpyro"}
        NUTS implementation for the PyMC model (see :func:`resolve_sampler`).
    target_accept : float
        0.95 here, as rstanarm's stan_glmer; ``GLMM.fit`` picks 0.8 when every grouping
        factor has at least 50 levels (:func:`default_target_accept`).
        Raise towards 0.99 when there are divergences.
    progressbar : bool, optional
        Default: shown on a terminal or in a notebook, silent in tests and CI.
    allow_partial : bool
        On Ctrl-C, return the draws made so far (see :func:`keep_finished_draws`) with a
        :class:`~bayesglmm.errors.PartialFitWarning`, instead of raising KeyboardInterrupt
        (the default).
    """
    import pymc as pm

    check_sampler(sampler)
    check_cores(cores)
    if progressbar is None:
        progressbar = interactive()
    if cores is None:
        cores = min(chains, os.cpu_count() or 1)
    # PyMC's own convergence messages are replaced by ours (see results.check_health)
    # PyMC sampling chains one after another calls a per-draw callback: there the first
    # Ctrl-C only sets a flag and the callback raises it at a draw boundary
    sequential = sampler == "pymc" and cores == 1 and chains > 1
    with (
        InterruptGuard(soft=sequential) as guard,
        ignoring_warnings(message=".*rhat.*|.*effective sample size.*"),
        ignoring_warnings(message=".*We recommend running at least 4 chains.*"),
    ):
        if sequential:
            # PyMC swallows the KeyboardInterrupt of the running chain and, sampling chains
            # one after another, would start the next one: stop it at its first draw.
            # (Only here: a callback changes PyMC's parallel draws for a given seed.)
            user_callback = kwargs.pop("callback", None)

            def callback(trace: Any, draw: Any) -> None:
                guard.check()
                if user_callback is not None:
                    user_callback(trace=trace, draw=draw)

            kwargs["callback"] = callback
        try:
            with PYTENSOR_LOCK:  # PyTensor's compile flags are process-wide
                idata = pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    cores=cores,
                    random_seed=random_seed,
                    nuts_sampler=sampler,
                    target_accept=target_accept,
                    progressbar=progressbar,
                    init=init,
                    compute_convergence_checks=False,
                    model=model,
                    quiet=not progressbar,
                    **kwargs,
                )
        except (Exception, KeyboardInterrupt) as exc:
            if not guard.interrupted:
                raise
            if not allow_partial:
                raise KeyboardInterrupt from exc
            raise InferenceError(
                f"NUTS ({sampler}) was interrupted before any posterior draw (during "
                "tuning): there is nothing to return; run the fit again"
            ) from exc
    if guard.interrupted:
        if not allow_partial:
            raise KeyboardInterrupt
        idata, _ = keep_finished_draws(idata, draws=draws, chains=chains, what=f"NUTS ({sampler})")
    post = idata["posterior"].to_dataset()
    for name, var in post.data_vars.items():
        if not np.isfinite(var.values).all():
            raise InferenceError(f"NUTS produced non-finite draws for `{name}`")
    return idata
