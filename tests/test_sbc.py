"""Simulation-based calibration on a dask LocalCluster with 2 workers."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg


@pytest.fixture(scope="module")
def small_poisson():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(12), 5)
    df = pd.DataFrame({"y": rng.poisson(2, g.size), "x": rng.normal(size=g.size), "g": g})
    return bg.GLMM(
        "y ~ x + (1 | g)", df, "poisson", priors={"sd": {"dist": "HalfNormal", "sigma": 1}}
    )


def test_sbc_nuts_localcluster(small_poisson, tmp_path):
    res = bg.sbc(
        small_poisson,
        n_sims=20,
        method="nuts",
        fit_kwargs=dict(draws=100, tune=200, chains=1),
        random_seed=1,
    )
    assert list(res.ranks.index) == list(range(20))  # order kept
    assert set(res.ranks.columns) == {"(Intercept)", "x", "sd(g: (Intercept))"}
    assert res.ranks.to_numpy().min() >= 0 and res.ranks.to_numpy().max() <= res.n_draws
    assert not res.failures
    assert list(res.diagnostics.index) == list(range(20))
    assert {"elapsed_s", "divergences", "max_rhat"} <= set(res.diagnostics.columns)
    uni = res.uniformity()
    assert list(uni.columns) == ["chi2", "df", "p_chi2", "gamma", "p_gamma"]
    # 20 sims: only gross miscalibration rejects
    assert (uni[["p_chi2", "p_gamma"]] > 0.001).all().all(), uni
    assert uni.equals(res.uniformity())  # seeded null: same p-values on every call
    fig = res.plot()
    fig.savefig(tmp_path / "sbc.png")
    assert (tmp_path / "sbc.png").stat().st_size > 1000


def test_sbc_failures_counted_not_lost(small_poisson):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.sbc(small_poisson, n_sims=3, method="no_such_method")
    assert len(res.failures) == 3 and len(res.ranks) == 0
    assert all("unknown method `no_such_method`" in msg for msg in res.failures.values())


def test_prior_simulation_seeded(small_poisson):
    from bayesglmm.calibration.prior_simulation import simulate_from_prior

    y1, t1 = simulate_from_prior(small_poisson, np.random.default_rng(5))
    y2, t2 = simulate_from_prior(small_poisson, np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)
    assert t1 == t2 and y1.shape == (60,)


def test_lkj_draw_is_correlation_matrix():
    from bayesglmm.calibration.prior_simulation import draw_lkj

    C = draw_lkj(4, 2.0, np.random.default_rng(0))
    np.testing.assert_allclose(np.diag(C), 1.0)
    assert np.all(np.linalg.eigvalsh(C) > 0)


def test_result_plot_without_dask(tmp_path):
    from bayesglmm.calibration.sbc_result import SBCResult

    rng = np.random.default_rng(0)
    ranks = pd.DataFrame({"a": rng.integers(0, 100, 60), "b": rng.integers(0, 100, 60)})
    res = SBCResult(ranks=ranks, n_draws=99, method="test")
    fig = res.plot(alpha=0.01)
    assert len(fig.axes) == 4
    assert "p(ECDF)" in fig.axes[0].get_title()
    fig.savefig(tmp_path / "r.png")


# ------------------------------------------------------------------ failures and threads (#13)
def _sim_seed(i: int, random_seed: int, n_sims: int):
    return np.random.SeedSequence(random_seed).spawn(n_sims)[i]


def test_sbc_keeps_finished_simulations_and_lists_failures(small_poisson, monkeypatch):
    """Simulations 1 and 3 raise inside the fit: the other four are kept, and the two are
    listed with the error and where it was raised (in the result and the warning)."""
    from dask.distributed import Client

    from bayesglmm.calibration.prior_simulation import simulate_from_prior
    from bayesglmm.model import GLMM

    original_fit = GLMM.fit
    bad_y = {
        tuple(simulate_from_prior(small_poisson, np.random.default_rng(_sim_seed(i, 4, 6)))[0])
        for i in (1, 3)
    }

    def failing_fit(self, *args, **kwargs):
        if tuple(self.design.y) in bad_y:
            raise bg.InferenceError("injected failure")
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(GLMM, "fit", failing_fit)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        with pytest.warns(bg.SBCFailureWarning) as rec:
            res = bg.sbc(small_poisson, n_sims=6, method="laplace", client=c, random_seed=4)
    assert list(res.ranks.index) == [0, 2, 4, 5] == list(res.diagnostics.index)
    assert sorted(res.failures) == [1, 3] and res.n_sims == 6
    for msg in res.failures.values():
        assert msg.startswith("InferenceError: injected failure (at test_sbc.py:")
    text = str(rec[0].message)
    assert text.startswith("2 of 6 SBC simulations failed (4 finished, kept):")
    assert "simulation 1: InferenceError: injected failure" in text
    assert "simulation 3: InferenceError: injected failure" in text
    assert "2 of 6 SBC simulations failed" in repr(res)


def test_sbc_keeps_finished_simulations_when_a_worker_dies(small_poisson):
    """A worker process dies in simulation 2 (os._exit, as an out-of-memory kill would):
    the simulations that finish are kept (``client.gather`` lost them all), and simulation
    2 is listed as a dead worker."""
    import copy
    import os

    import dask
    from dask.distributed import Client, LocalCluster

    from bayesglmm.calibration.prior_simulation import simulate_from_prior
    from bayesglmm.model import GLMM

    y_kill = simulate_from_prior(small_poisson, np.random.default_rng(_sim_seed(2, 8, 5)))[0]

    class DyingGLMM(GLMM):  # local class: pickled by value, so the workers get it
        def with_response(self, y):
            if np.array_equal(y, y_kill):
                os._exit(1)
            return super().with_response(y)

    model = copy.copy(small_poisson)
    model.__class__ = DyingGLMM
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        with cluster, Client(cluster) as c:
            with pytest.warns(bg.SBCFailureWarning, match="simulation 2: the worker died"):
                res = bg.sbc(model, n_sims=5, method="laplace", client=c, random_seed=8)
    # a simulation queued on the dying worker may die with it (no retries here)
    assert sorted([*res.ranks.index, *res.failures]) == list(range(5))
    assert 2 in res.failures and len(res.ranks) >= 2
    assert all(
        m.startswith("the worker died while running it (KilledWorker")
        for m in res.failures.values()
    )


@pytest.mark.slow
def test_sbc_threaded_client_gives_the_ranks_of_a_serial_run(small_poisson):
    """The default NUTS in two threads at once gives, simulation by simulation, exactly the
    ranks of a one-thread run (the with_response models once shared one PyMC model and
    swapped its data, so threaded fits saw each other's y).  PyMC's NUTS in threads agrees
    only up to rounding (about 3e-4 on an intercept; cause not found, see
    tests/test_threads.py), so this test pins the default sampler, bit for bit."""
    from dask.distributed import Client

    kw = dict(
        n_sims=4,
        method="nuts",
        random_seed=3,
        fit_kwargs=dict(draws=100, tune=100, chains=1),
    )
    runs = []
    for threads in (2, 1):
        with Client(
            processes=False, n_workers=1, threads_per_worker=threads, dashboard_address=None
        ) as c:
            runs.append(bg.sbc(small_poisson, client=c, **kw))
    threaded, serial = runs
    assert not threaded.failures and not serial.failures
    assert threaded.ranks.index.equals(serial.ranks.index)
    pd.testing.assert_frame_equal(threaded.ranks, serial.ranks[threaded.ranks.columns])


_SCRIPT = """
import numpy as np, pandas as pd, warnings
import bayesglmm as bg
rng = np.random.default_rng(1)
g = np.repeat(np.arange(8), 5)
df = pd.DataFrame({"y": rng.poisson(2, g.size), "g": g})
m = bg.GLMM("y ~ 1 + (1 | g)", df, "poisson", priors={"sd": {"dist": "HalfNormal", "sigma": 1}})
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    {call}
print("RANKS", len(res.ranks), len(res.failures))
print("NOTES", sum(issubclass(w.category, bg.SBCNote) for w in seen))
"""
_CALL = 'res = bg.sbc(m, n_sims=4, method="laplace", random_seed=2, fit_kwargs={"draws": 100})'


@pytest.mark.parametrize("guarded", [False, True])
def test_sbc_in_a_plain_script(tmp_path, guarded):
    """A plain script without ``if __name__ == "__main__":`` used to die with "Nanny failed
    to start" and pages of Dask tracebacks (issue 18): the spawned workers re-ran it."""
    import subprocess
    import sys
    import textwrap

    call = f'if __name__ == "__main__":\n        {_CALL}' if guarded else _CALL
    body = textwrap.dedent(_SCRIPT).replace("{call}", call)
    if guarded:  # the whole tail belongs under the guard
        head, tail = body.split("with warnings", 1)
        tail = "with warnings" + tail
        body = head + 'if __name__ == "__main__":\n' + textwrap.indent(tail, "    ")
        body = body.replace(f'if __name__ == "__main__":\n            {_CALL}', _CALL)
    script = tmp_path / "run_sbc.py"
    script.write_text(body)
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])  # this checkout's bayesglmm
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RANKS 4 0" in out.stdout
    assert f"NOTES {0 if guarded else 1}" in out.stdout
    assert "Nanny failed" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "SBC: 4/4 simulations done" in out.stderr  # the progress line


def test_unguarded_call_detection(tmp_path):
    import ast

    from bayesglmm.calibration.dask_runner import is_main_guard

    assert is_main_guard(ast.parse('__name__ == "__main__"', mode="eval").body)
    assert is_main_guard(ast.parse('"__main__" == __name__', mode="eval").body)
    assert not is_main_guard(ast.parse('__name__ != "__main__"', mode="eval").body)
