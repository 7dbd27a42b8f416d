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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``bench`` (benchmark-grade, minutes each) run only on demand:
    ``pytest -m bench`` (or any ``-m`` expression naming it)."""
    if "bench" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark-grade check: run with `pytest -m bench`")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)
