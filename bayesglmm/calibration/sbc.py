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

import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.calibration.dask_runner import (
    Progress,
    collect,
    unguarded_script_call,
)
from bayesglmm.calibration.sbc_fit import fit_one_safely
from bayesglmm.calibration.sbc_result import SBCResult
from bayesglmm.errors import BayesGLMMError, SBCFailureWarning, SBCNote


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
            client.submit(fit_one_safely, shipped, s, method, fit_kwargs, n_draws, pure=False)
            for s in seeds
        ]
        results = collect(futures, Progress(n_sims, progressbar))
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
