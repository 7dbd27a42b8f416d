"""ADVI's stopping rule (LossPlateau) on synthetic loss histories: it stops on a plateau
within the loss's noise, not on one noisy window and not during a slow drift."""

from __future__ import annotations

import types

import numpy as np
import pytest

from bayesglmm.engines.bayes.advi import LossPlateau


def _run(rule: LossPlateau, hist: np.ndarray) -> int | None:
    """Feed the history to the callback as PyMC does; the iteration it stops at, or None."""
    for i in range(1, hist.size + 1):
        try:
            rule(None, hist[:i], i)
        except StopIteration:
            return i
    return None


def _noise(n: int, sd: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def test_stops_on_a_noisy_plateau_of_a_small_loss():
    # rikz-like: loss ~121, noise SD 3 per iteration; the relative tolerance (0.12 nats) is
    # far below the noise of a window, so the noise band decides: stop after 3 windows
    hist = 121.0 + _noise(5000, 3.0, 1)
    rule = LossPlateau(every=200)
    assert _run(rule, hist) == 600
    assert rule.converged and "Monte Carlo SE" in rule.reason


def test_stops_by_the_relative_tolerance_on_a_large_loss():
    hist = 10_000.0 + _noise(5000, 0.5, 2)
    rule = LossPlateau(every=200, tolerance=1e-3)
    assert _run(rule, hist) == 600
    assert "tolerance 0.001" in rule.reason


def test_one_worse_window_is_not_a_plateau():
    # decreasing by 20 per window, then one window 50 worse (a noise burst), then decreasing
    step = np.repeat(1000.0 - 20.0 * np.arange(10), 200)
    step[600:800] += 70.0
    hist = step + _noise(step.size, 1.0, 3)
    assert _run(LossPlateau(every=200, tolerance=1e-4), hist) is None


def test_a_slow_drift_is_not_a_plateau():
    # each window 1.5 nats lower: three windows span 3 nats, more than the band
    # (max(1e-3 x 995, 2 sqrt(2) x SE ~ 0.25) ~ 1.0), so it never stops
    n = 4000
    hist = 1000.0 - 1.5 * np.arange(n) / 200 + _noise(n, 1.0, 4)
    assert _run(LossPlateau(every=200), hist) is None
    # the same drift flattening out stops once three windows agree
    flat = np.r_[hist, np.full(1000, hist[-200:].mean()) + _noise(1000, 1.0, 5)]
    stop = _run(LossPlateau(every=200), flat)
    assert stop is not None and stop > n


def test_heavy_early_outliers_do_not_stop_a_descent():
    # the first windows carry huge outliers (as ADVI's first iterations do); the median and
    # MAD ignore them, so a descent of 30 per window goes on
    rng = np.random.default_rng(6)
    base = np.repeat(2000.0 - 30.0 * np.arange(8), 200) + rng.normal(0, 2.0, 1600)
    base[rng.choice(600, 40, replace=False)] += rng.exponential(5000.0, 40)
    assert _run(LossPlateau(every=200), base) is None


def test_interrupt_guard_checked_first():
    guard = types.SimpleNamespace(interrupted=True)
    rule = LossPlateau(every=200, guard=guard)
    with pytest.raises(StopIteration, match="interrupted after 3 iterations"):
        rule(None, np.zeros(3), 3)
    assert not rule.converged


def test_progress_line(capsys):
    rule = LossPlateau(every=200, label="advi", n=1000, progress=True)
    _run(rule, 50.0 + _noise(1000, 1.0, 7))
    err = capsys.readouterr().err
    assert "advi: iteration 600 of at most 1,000, loss " in err
    assert "spread of the last windows" in err
