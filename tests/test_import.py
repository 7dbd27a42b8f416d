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
    """``bg.sbc`` is the function: its module is ``bayesglmm.calibration.sbc``, so importing
    it (``with_response`` does) cannot rebind the package attribute to a module."""
    import bayesglmm as bg
    import bayesglmm.calibration.sbc  # noqa: F401

    assert callable(bg.sbc) and bg.sbc.__module__ == "bayesglmm.calibration.sbc"


def test_default_nuts_fit_loads_no_pymc():
    """The default sampler (nutpie on the fused Numba kernel) needs neither PyMC nor
    PyTensor: a fresh process that fits by NUTS does not pay their import."""
    code = (
        "import warnings\n"
        "import bayesglmm as bg\n"
        "df = bg.datasets.load('rikz')\n"
        "m = bg.GLMM('Richness ~ NAP + (1 | Beach)', df, family='poisson')\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    fit = m.fit(draws=20, tune=20, chains=1, random_seed=1)\n"
        "assert fit.options['sampler'] == 'kernel'\n"
    )
    loaded = _loaded_after(code)
    assert "nutpie" in loaded  # the fit ran on the kernel
    assert "pymc" not in loaded and "pytensor" not in loaded, loaded
