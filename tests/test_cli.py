"""The bayesglmm command: demo methods end to end, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from bayesglmm.cli import main


def test_list_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "bayesglmm", "list"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "toenail" in out.stdout


def test_fit_csv_writes_report(tmp_path, capsys):
    import bayesglmm as bg

    csv = tmp_path / "rikz.csv"
    bg.datasets.load("rikz").to_csv(csv, index=False)
    code = main(
        [
            "fit",
            "--formula",
            "Richness ~ NAP + (1 | Beach)",
            "--data",
            str(csv),
            "--family",
            "poisson",
            "--methods",
            "ml,nuts",
            "--draws",
            "100",
            "--tune",
            "100",
            "--chains",
            "2",
            "--out",
            str(tmp_path / "rep"),
        ]
    )
    assert code == 0
    files = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {
        "comparison.csv",
        "compare_forest.png",
        "ppc_ml.png",
        "caterpillar_nuts.png",
        "fit_nuts",
    } <= files
    assert (tmp_path / "rep" / "fit_nuts" / "posterior.nc").exists()
    table = pd.read_csv(tmp_path / "rep" / "comparison.csv", index_col=0)
    assert {"ml", "nuts"} <= set(table.columns)
    assert "NAP" in capsys.readouterr().out


def test_missing_column_exits_2_with_one_line(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    pd.DataFrame({"y": [1, 2], "g": [1, 2]}).to_csv(csv, index=False)
    code = main(["fit", "--formula", "y ~ xx + (1 | g)", "--data", str(csv), "--family", "poisson"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "unknown column `xx`" in err[0]
