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


HEAVY = (
    "pymc",
    "pytensor",
    "arviz",
    "arviz_plots",
    "arviz_stats",
    "matplotlib",
    "scipy.stats",
    "dask",
    "distributed",
    "numba",
    "nutpie",
)


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_loads_no_heavy_module():
    """``import bayesglmm`` loads none of the heavy dependencies (issue: import < 0.5 s);
    they load when first used.  ``benchmarks/fresh_process.py`` times the import."""
    assert _loaded_after("import bayesglmm") == []


def test_building_a_model_loads_no_engine_or_plotting_module():
    """Formula, design and priors need pandas and formulaic only: PyMC, ArviZ, matplotlib,
    SciPy's stats, Dask and Numba load when a fit or a plot asks for them."""
    code = (
        "import bayesglmm as bg\n"
        "df = bg.datasets.load('rikz')\n"
        "bg.GLMM('Richness ~ NAP + (1 | Beach)', df, family='poisson')"
    )
    assert _loaded_after(code) == []


def test_lazy_names_resolve_and_unknown_names_raise():
    import pytest

    import bayesglmm as bg

    for name in bg.__all__:
        assert getattr(bg, name) is not None, name
    assert "GLMM" in dir(bg)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bg.nope  # noqa: B018


def test_sbc_stays_the_function_after_its_module_loads():
    """``bg.sbc`` is the function: its module is ``bayesglmm.calibration``, so importing
    it (``with_response`` does) cannot rebind the package attribute to a module."""
    import bayesglmm as bg
    import bayesglmm.calibration  # noqa: F401

    assert callable(bg.sbc) and bg.sbc.__module__ == "bayesglmm.calibration"
