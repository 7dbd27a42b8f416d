"""Execute the teaching notebooks in place, so they are stored with their outputs.

A repository browser shows a notebook's stored outputs: the figures and tables are the
teaching.  This script runs every ``notebooks/*.ipynb`` (or the ones named) top to bottom
in a kernel that runs *this* interpreter, with the notebooks' own draw counts, and writes
the outputs back.  ``make notebooks`` calls it; ``make test`` executes the notebooks again
with tiny draw counts (``tests/test_notebooks.py``) without writing them.

Usage: ``.venv/bin/python scripts/execute_notebooks.py [notebooks/01_beaches.ipynb ...]``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
KERNEL_NAME = "bayesglmm-execute"
CELL_TIMEOUT = 1800


def _kernel_dir(root: Path) -> Path:
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"bayesglmm ({sys.executable})",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return root / "kernels"


def execute(path: Path, kernels: Path) -> float:
    """Run one notebook and store it with its outputs; returns the seconds it took."""
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(path, as_version=4)
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    t0 = time.perf_counter()
    client.execute()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    for key in ("BAYESGLMM_NB_DRAWS", "BAYESGLMM_NB_TUNE", "BAYESGLMM_NB_CHAINS"):
        os.environ.pop(key, None)  # the notebooks' own (full) draw counts
    with tempfile.TemporaryDirectory() as tmp:
        kernels = _kernel_dir(Path(tmp))
        for path in paths:
            print(f"{path.name}: executing ...", flush=True)
            print(f"{path.name}: done in {execute(path, kernels):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
