"""NUTS through PyMC: sampler choice, seeding, log-likelihood, and health warnings."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from typing import Any, Literal

import numpy as np
import pymc as pm

from bayesglmm.errors import BayesGLMMError, InferenceError

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

    ``kernel`` is nutpie's Rust NUTS on :mod:`bayesglmm.inference.nuts_kernel` (no
    PyTensor compile, refits reuse it); ``nutpie`` compiles the PyMC model for nutpie
    (any model, 15-20 s compile); ``pymc`` is PyMC's own NUTS.
    """
    check_sampler(sampler)
    if sampler == "auto":
        return "kernel" if kernel_available and _has("nutpie") else "pymc"
    if sampler == "kernel" and not kernel_available:
        raise BayesGLMMError(
            "sampler='kernel' covers non-centred models with logit, log or identity links; "
            "use sampler='pymc' or 'nutpie' for this model"
        )
    return sampler


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


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
        factor has at least 50 levels (:func:`bayesglmm.model.default_target_accept`).
        Raise towards 0.99 when there are divergences.
    progressbar : bool, optional
        Default: shown on a terminal or in a notebook, silent in tests and CI.
    """
    check_sampler(sampler)
    if progressbar is None:
        progressbar = interactive()
    if cores is None:
        cores = min(chains, os.cpu_count() or 1)
    with warnings.catch_warnings():
        # PyMC's own convergence messages are replaced by ours (see results.check_health)
        warnings.filterwarnings("ignore", message=".*rhat.*|.*effective sample size.*")
        warnings.filterwarnings("ignore", message=".*We recommend running at least 4 chains.*")
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
    post = idata["posterior"].to_dataset()
    for name, var in post.data_vars.items():
        if not np.isfinite(var.values).all():
            raise InferenceError(f"NUTS produced non-finite draws for `{name}`")
    return idata
