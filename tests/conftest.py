"""Shared fixtures: the packaged datasets, read once per session and copied per test."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pandas as pd
import pytest

import bayesglmm as bg


@cache
def _dataset(name: str) -> pd.DataFrame:
    return bg.datasets.load(name)


@pytest.fixture
def load() -> Callable[[str], pd.DataFrame]:
    """``load("polls")``: a fresh copy of a packaged dataset (read from disk once)."""
    return lambda name: _dataset(name).copy()
