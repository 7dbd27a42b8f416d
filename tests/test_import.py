"""A fresh install imports cleanly (guards against mismatched arviz-base/stats/plots)."""

import subprocess
import sys


def test_package_imports_in_installed_environment():
    code = "import arviz, pymc, bayesglmm; print(bayesglmm.__version__, arviz.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("0.")


def test_public_api_names():
    import bayesglmm as bg

    for name in ("GLMM", "GLMMFit", "datasets", "compare", "plot_compare", "load_fit", "Prior"):
        assert hasattr(bg, name), name
    assert set(bg.datasets.list()["name"]) == {"rikz", "polls", "toenail", "epilepsy", "hdp"}
