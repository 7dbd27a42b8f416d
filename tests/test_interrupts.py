"""Ctrl-C during a fit (issue 13): KeyboardInterrupt promptly, or with
``allow_partial=True`` a fit of the draws that exist, never NaN estimates.

A SIGINT is sent to this process from a ``threading.Timer``.  A process started in the
background ignores SIGINT, so the fixture installs Python's default handler first (and
puts the old one back, after cancelling any timer that has not fired).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesglmm as bg
from bayesglmm.engines.bayes import pymc_nuts as mcmc
from bayesglmm.engines.bayes.advi import LossPlateau
from bayesglmm.engines.bayes.pymc_nuts import keep_finished_draws


@pytest.fixture
def sigint():
    """``sigint(delay)`` sends SIGINT to this process after ``delay`` seconds."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    timers: list[threading.Timer] = []

    def send(delay: float) -> threading.Timer:
        t = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        t.daemon = True
        timers.append(t)
        t.start()
        return t

    yield send
    for t in timers:
        t.cancel()
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(10), 6)
    df = pd.DataFrame({"y": rng.poisson(2.0, g.size), "g": g})
    m = bg.GLMM("y ~ 1 + (1 | g)", df, "poisson")
    with warnings.catch_warnings():  # compile once: the timed fits then start sampling at once
        warnings.simplefilter("ignore")
        m.fit(draws=20, tune=20, chains=1, random_seed=1, log_likelihood=False)
    return m


def _assert_partial(fit, requested_draws: int):
    post = fit.idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    assert 0 < n_draw < requested_draws
    for name, var in post.data_vars.items():
        assert np.isfinite(var.values).all(), name
    assert np.isfinite(fit.fixef().to_numpy()).all()
    assert np.isfinite(fit.summary()["mean"].to_numpy()).all()
    part = fit.options["partial"]
    assert part["interrupted"] is True and part["draws_requested"] == requested_draws
    assert (part["draws_kept"], part["chains_kept"]) == (n_draw, n_chain)
    assert (fit.options["draws"], fit.options["chains"]) == (n_draw, n_chain)


def _start_timer_at_first_call(monkeypatch, cls, name, sigint, delay, after: int = 0):
    """Send SIGINT ``delay`` s after call number ``after + 1`` of ``cls.name`` (sampling has
    begun; with ``after = tune`` the draws have begun), so compile and tuning times on a
    busy machine do not move the interrupt out of the phase under test."""
    original = getattr(cls, name)
    started = []
    calls = [0]

    def wrapped(self, *args, **kwargs):
        calls[0] += 1
        if not started and calls[0] > after:
            started.append(sigint(delay))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapped)


# ---------------------------------------------------------------- default (kernel) NUTS
def test_kernel_nuts_ctrl_c_raises_keyboard_interrupt(model, sigint):
    sigint(1.5)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        model.fit(draws=2_000_000, tune=100, chains=2, cores=1, random_seed=3)
    assert time.perf_counter() - t0 < 6.5


def test_kernel_nuts_allow_partial_keeps_finished_draws(model, sigint):
    sigint(1.5)
    with pytest.warns(bg.PartialFitWarning, match="NUTS was interrupted: returning the"):
        fit = model.fit(
            draws=2_000_000, tune=50, chains=2, cores=1, random_seed=3, allow_partial=True
        )
    assert fit.options["sampler"] == "kernel"
    _assert_partial(fit, 2_000_000)


def test_kernel_nuts_interrupt_during_tuning_is_an_error(model, sigint):
    sigint(1.0)
    with pytest.raises(bg.InferenceError, match="interrupted before any posterior draw"):
        model.fit(draws=100, tune=5_000_000, chains=2, cores=1, random_seed=3, allow_partial=True)


# ---------------------------------------------------------------- PyMC's NUTS
def test_pymc_nuts_ctrl_c_raises_and_does_not_start_the_next_chain(model, sigint, monkeypatch):
    """PyMC swallows the interrupt of the running chain; sampling chains one after another
    it used to go on with the next chain (here 20,000 more draws)."""
    _start_timer_at_first_call(monkeypatch, mcmc.InterruptGuard, "check", sigint, 1.0)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        model.fit(draws=20_000, tune=50, chains=2, cores=1, sampler="pymc", random_seed=3)
    assert time.perf_counter() - t0 < 30  # compile (~2-10 s) + 1 s; not the second chain


def test_pymc_nuts_allow_partial_keeps_finished_draws(model, sigint, monkeypatch):
    # the guard is checked once per tuning step and draw: start the timer at the first draw
    # (on a loaded machine 50 tuning steps took over a second and the test then got the
    # "interrupted during tuning" error instead)
    _start_timer_at_first_call(monkeypatch, mcmc.InterruptGuard, "check", sigint, 0.5, after=50)
    with pytest.warns(bg.PartialFitWarning, match=r"NUTS \(pymc\) was interrupted"):
        fit = model.fit(
            draws=20_000, tune=50, chains=2, cores=1, sampler="pymc", random_seed=3,
            allow_partial=True,
        )  # fmt: skip
    _assert_partial(fit, 20_000)
    assert fit.options["partial"]["chains_kept"] == 1  # the second chain never sampled


# ---------------------------------------------------------------- ADVI
def test_advi_ctrl_c_raises_keyboard_interrupt(model, sigint, monkeypatch):
    """PyMC's ``fit`` catches the KeyboardInterrupt and returns the approximation so far.

    ``every`` beyond ``n`` switches the plateau check off: with ``tolerance=1e-12`` a noisy
    window that got worse counted as a plateau, ADVI stopped within the timer's 0.5 s, and
    the SIGINT then landed outside the fit (and aborted the test session)."""
    _start_timer_at_first_call(monkeypatch, LossPlateau, "__call__", sigint, 0.5)
    with pytest.raises(KeyboardInterrupt):
        model.fit(method="advi", n=5_000_000, every=10_000_000, random_seed=3)


def test_advi_allow_partial_returns_the_approximation_so_far(model, sigint, monkeypatch):
    _start_timer_at_first_call(monkeypatch, LossPlateau, "__call__", sigint, 0.5)
    with pytest.warns(bg.PartialFitWarning, match="advi was interrupted after"):
        fit = model.fit(
            method="advi", n=5_000_000, every=10_000_000, random_seed=3, draws=100,
            allow_partial=True,
        )  # fmt: skip
    part = fit.options["partial"]
    assert 0 < part["iterations_kept"] == fit.options["iterations"] < 5_000_000
    assert fit.options["converged"] is False
    assert np.isfinite(fit.fixef().to_numpy()).all()


# ---------------------------------------------------------------- pieces
def _padded_tree(lengths: list[int], n_draw: int) -> xr.DataTree:
    """Posterior and stats as nutpie returns them after an abort: NaN past each chain's end."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(len(lengths), n_draw))
    b = rng.normal(size=(len(lengths), n_draw, 3))
    lp = rng.normal(size=(len(lengths), n_draw))
    for c, n in enumerate(lengths):
        a[c, n:] = b[c, n:] = lp[c, n:] = np.nan
    post = xr.Dataset({"a": (("chain", "draw"), a), "b": (("chain", "draw", "k"), b)})
    stats = xr.Dataset({"logp": (("chain", "draw"), lp)})
    obs = xr.Dataset({"y": ("obs", np.arange(4.0))})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats, "observed_data": obs})


@pytest.mark.parametrize(
    ("lengths", "kept"),
    [
        ([50, 30, 40, 45], (4, 30)),  # 4 x 30 = 120 beats 3 x 40 and 2 x 45
        ([100, 10, 90, 0], (2, 90)),  # a chain still in tuning is dropped
        ([60, 60], (2, 60)),  # interrupted just as both finished
    ],
)
def test_keep_finished_draws_equal_length_chains_without_nan(lengths, kept):
    tree = _padded_tree(lengths, max(lengths))
    with pytest.warns(bg.PartialFitWarning):
        out, info = keep_finished_draws(tree, draws=1000, chains=len(lengths))
    post = out["posterior"].to_dataset()
    assert (post.sizes["chain"], post.sizes["draw"]) == kept
    assert out["sample_stats"].to_dataset().sizes["draw"] == kept[1]
    assert np.isfinite(post["a"].values).all() and np.isfinite(post["b"].values).all()
    assert list(post["chain"].values) == list(range(kept[0]))
    assert (info["chains_kept"], info["draws_kept"]) == kept
    assert "observed_data" in out.children


def test_keep_finished_draws_raises_when_only_tuning_ran():
    with pytest.raises(bg.InferenceError, match="before any posterior draw"):
        keep_finished_draws(_padded_tree([0, 0], 0), draws=10, chains=2)


@pytest.mark.parametrize("cores", [0, -1, 1.5, True, "2"])
@pytest.mark.parametrize("sampler", ["auto", "pymc"])
def test_invalid_cores_is_a_named_error_not_a_hang(model, cores, sampler):
    with pytest.raises(bg.BayesGLMMError, match=r"`cores` must be None or an integer >= 1"):
        model.fit(draws=10, tune=10, chains=2, cores=cores, sampler=sampler)


@pytest.mark.parametrize("cores", [0, -1, 1.5, True, "2"])
def test_samplers_called_directly_check_cores(model, cores):
    from bayesglmm.engines.bayes.nuts import sample_kernel_nuts

    with pytest.raises(bg.BayesGLMMError, match=r"cores=.* is not valid: give a whole number >= 1"):
        sample_kernel_nuts(model.design, model.kernel_layout(), draws=10, tune=10, cores=cores)
    with pytest.raises(bg.BayesGLMMError, match=r"cores=.* is not valid: give a whole number >= 1"):
        mcmc.sample_nuts(model.build(), draws=10, tune=10, cores=cores)
