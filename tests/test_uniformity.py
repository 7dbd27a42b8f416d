"""Uniformity tests and bands for discrete SBC ranks."""

from __future__ import annotations

import numpy as np
import pytest

from bayesglmm.calibration.uniformity import (
    bin_counts,
    chi2_test,
    ecdf_band,
    ecdf_counts,
    gamma_statistic,
    gamma_test,
)


def test_bins_exact_when_bins_do_not_divide_ranks():
    counts, probs = bin_counts(np.arange(7), 7, 3)
    assert counts.sum() == 7 and probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(counts / 7, probs)  # one of each rank value: exactly expected
    assert chi2_test(np.arange(7), 7, 3)[0] == pytest.approx(0.0)


def test_ecdf_counts():
    z, below = ecdf_counts(np.array([0, 0, 2, 3]), 4)
    np.testing.assert_allclose(z, [0.25, 0.5, 0.75])
    np.testing.assert_array_equal(below, [2, 2, 3])


def test_gamma_extremes():
    assert gamma_statistic(np.zeros(50, dtype=int), 100) < 1e-10  # all ranks 0
    rng = np.random.default_rng(0)
    assert gamma_statistic(rng.integers(0, 100, 200), 100) > 1e-3


@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_tests_hold_their_level_on_uniform_ranks(alpha):
    rng = np.random.default_rng(1)
    ranks = rng.integers(0, 50, size=(800, 100))
    p_gamma = np.array([gamma_test(r, 50, n_null=4000)[1] for r in ranks])
    p_chi2 = np.array([chi2_test(r, 50, 10)[2] for r in ranks])
    se = np.sqrt(alpha * (1 - alpha) / len(ranks))
    assert abs((p_gamma < alpha).mean() - alpha) < 4 * se
    assert abs((p_chi2 < alpha).mean() - alpha) < 4 * se


def test_gamma_detects_too_narrow_posteriors():
    # an under-dispersed posterior (too narrow) piles ranks at both ends
    rng = np.random.default_rng(2)
    u = rng.beta(0.6, 0.6, 200)
    g, p = gamma_test((u * 100).astype(int), 100)
    assert p < 0.01


def test_band_is_simultaneous():
    rng = np.random.default_rng(3)
    z, lo, hi = ecdf_band(100, 40, 0.05, n_null=4000)
    assert np.all(lo <= z) and np.all(z <= hi)
    inside = []
    for r in rng.integers(0, 40, size=(1000, 100)):
        frac = ecdf_counts(r, 40)[1] / 100
        inside.append(np.all((frac >= lo) & (frac <= hi)))
    assert 0.93 < np.mean(inside) < 0.97
