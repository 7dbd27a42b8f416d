"""The teaching notebooks: stored with their outputs, and each one runs end to end.

The slow test executes every ``notebooks/*.ipynb`` with nbclient in a kernel that runs
*this* interpreter (``sys.executable``), through a kernelspec written to a temporary
directory, so it works on a fresh clone where only ``.venv`` exists and whatever
``python3`` kernel the user has installed is ignored.  The notebooks read their draw
counts from ``BAYESGLMM_NB_DRAWS`` / ``_TUNE`` / ``_CHAINS``; the test sets tiny values.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "bayesglmm-nbtest"
CELL_TIMEOUT = 600  # seconds per cell
NB_ENV = {
    "BAYESGLMM_NB_DRAWS": "100",
    "BAYESGLMM_NB_TUNE": "100",
    "BAYESGLMM_NB_CHAINS": "2",
    "MPLBACKEND": "Agg",
}


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_notebooks_exist() -> None:
    assert len(NOTEBOOKS) >= 7, f"expected the 7 teaching notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_stored_with_outputs(path: Path) -> None:
    """Stored as ``scripts/execute_notebooks.py`` (``make notebooks``) leaves them: run top to
    bottom in one kernel (execution counts 1, 2, 3, ...), no error output, at least one
    figure, so a repository browser shows the teaching (issue 18)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts}: run `make notebooks` to store it executed"
    )
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], path.name
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure"
    # and the notebook reads its draw counts from the environment
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "BAYESGLMM_NB_DRAWS" in source, f"{path.name} must read BAYESGLMM_NB_DRAWS"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data dir with one kernelspec that runs the current interpreter."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"bayesglmm test ({sys.executable})",
        "language": "python",
        "env": NB_ENV,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path: Path, kernel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    for key, value in NB_ENV.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir / "kernels")])
    assert ksm.get_kernel_spec(KERNEL_NAME).argv[0] == sys.executable
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # cwd = notebooks/
    )
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:  # pragma: no cover - on failure
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: executed in {elapsed:.1f} s")
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: error outputs {errors}"
