"""The benchmark's R peers (benchmarks/r_peers.py) run, and say why not, without R.

R is not needed: ``shutil.which`` is patched to find no ``Rscript``, or a stand-in shell
script that answers like Rscript would.
"""

from __future__ import annotations

import importlib.util
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


r_peers = _load("r_peers")


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"y": rng.integers(0, 2, 40), "x": rng.normal(size=40), "g": np.repeat(range(8), 5)}
    )


def _fake_rscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put an executable stand-in for Rscript where ``shutil.which`` will find it."""
    path = tmp_path / "Rscript"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(shutil, "which", lambda name: str(path) if name == "Rscript" else None)


def test_no_rscript_gives_unavailable_rows(df, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert r_peers.r_missing("lme4") == "no Rscript"
    row = r_peers.glmer_row("toenail Laplace", df, "y ~ x + (1 | g)", nagq=25)
    assert row == {"work": "toenail Laplace", "peer": "R unavailable (no Rscript)"}
    row = r_peers.rstanarm_row("toenail NUTS", df, "y ~ x + (1 | g)")
    assert row == {"work": "toenail NUTS", "peer": "R unavailable (no Rscript)"}


def test_missing_r_package(df, tmp_path, monkeypatch):
    _fake_rscript(tmp_path, monkeypatch, "exit 1")  # requireNamespace() is FALSE
    row = r_peers.glmer_row("hdp", df, "y ~ x + (1 | g)")
    assert row == {"work": "hdp", "peer": "R unavailable (lme4 not installed)"}
    row = r_peers.rstanarm_row("toenail NUTS", df, "y ~ x + (1 | g)")
    assert row == {"work": "toenail NUTS", "peer": "R unavailable (rstanarm not installed)"}


def test_r_error_is_a_row_not_a_crash(df, tmp_path, monkeypatch):
    _fake_rscript(
        tmp_path,
        monkeypatch,
        'if [ "$1" = "-e" ]; then exit 0; fi\necho "Error in glmer: boom" >&2\nexit 1',
    )
    row = r_peers.glmer_row("sim", df, "y ~ x + (1 | g)")
    assert row == {"work": "sim", "peer": "R glmer failed (Error in glmer: boom)"}


def test_numbers_are_parsed_back(df, tmp_path, monkeypatch):
    """The stand-in checks it got the data as a CSV, then answers as the R scripts do."""
    lines = [
        "elapsed\t-\t0.25",
        "loglik\t-\t-12.5",
        "min_ess_bulk\t-\t500",
        "fixef\t(Intercept)\t-0.5",
        "fixef\tx\t1.25",
        "version\t-\t1.1-35",
        "some other line R printed",
    ]
    printf = "printf '" + "\\n".join(lines).replace("\t", "\\t") + "\\n'"
    _fake_rscript(
        tmp_path,
        monkeypatch,
        f'if [ "$1" = "-e" ]; then exit 0; fi\nhead -1 "$2" | grep -q "^y,x,g$" || exit 3\n{printf}',
    )
    row = r_peers.glmer_row("toenail AGQ-25", df, "y ~ x + (1 | g)", nagq=25)
    assert row == {
        "work": "toenail AGQ-25",
        "peer": "lme4 glmer 1.1-35",
        "peer_s": 0.25,
        "peer_fixef": {"(Intercept)": -0.5, "x": 1.25},
        "peer_loglik": -12.5,
    }
    row = r_peers.rstanarm_row("toenail NUTS", df, "y ~ x + (1 | g)")
    assert row["peer"] == "rstanarm 1.1-35" and row["peer_ess_per_s"] == pytest.approx(2000.0)


def test_run_py_imports_the_r_peers(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.delitem(sys.modules, "r_peers", raising=False)
    run = _load("run")
    row = run._with_ours({"work": "w", "peer": "R unavailable (no Rscript)"}, None, 2.0)
    assert row == {"work": "w", "peer": "R unavailable (no Rscript)", "ours_s": 2.0}
