"""Save/load round trip and ADVI sanity."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import bayesglmm as bg


@pytest.fixture(scope="module")
def rikz_fit():
    m = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(draws=200, tune=300, chains=2, random_seed=4)


def test_save_load_round_trip(tmp_path, rikz_fit):
    new = bg.datasets.load("rikz").head(6)
    new["Beach"] = [1, 2, 99, 99, 3, 100]
    before = rikz_fit.predict(new, random_seed=5)
    rikz_fit.save(tmp_path / "fit")
    assert {"fit.json", "data.npz", "posterior.nc"} <= {
        p.name for p in (tmp_path / "fit").iterdir()
    }
    loaded = bg.load_fit(tmp_path / "fit")
    np.testing.assert_array_equal(loaded.predict(new, random_seed=5).values, before.values)
    assert loaded.method == "nuts" and loaded.design.formula == rikz_fit.design.formula
    np.testing.assert_array_equal(loaded.fixef().values, rikz_fit.fixef().values)
    meta = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert meta["package_version"] == bg.__version__


def test_load_refuses_incompatible_version(tmp_path, rikz_fit):
    rikz_fit.save(tmp_path / "fit")
    meta_path = tmp_path / "fit" / "fit.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta["package_version"] = "9.0.0"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(bg.BayesGLMMError, match="saved in format version 99 by bayesglmm 9.0.0"):
        bg.load_fit(tmp_path / "fit")
    with pytest.raises(bg.BayesGLMMError, match="is not a saved bayesglmm fit"):
        bg.load_fit(tmp_path)


def test_advi_finite_and_within_one_sd_of_nuts(rikz_fit):
    m = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        advi = m.fit(method="advi", random_seed=1)
    post = advi.idata["posterior"].to_dataset()
    assert all(np.isfinite(v.values).all() for v in post.data_vars.values())
    assert advi.approximate and advi.method == "advi"
    sd = rikz_fit.se()
    diff = (advi.fixef() - rikz_fit.fixef()).abs()
    assert (diff < sd).all(), (advi.fixef(), rikz_fit.fixef(), sd)
    assert {"mean", "sd"} <= set(advi.summary().columns)


def test_advi_states_how_it_converged_and_prints_a_plain_line(capsys, caplog):
    """Issue 18: a normal ADVI run ended in PyMC's "Interrupted at 1,999 [6%]"."""
    import logging

    m = bg.GLMM("Richness ~ NAP + (1 | Beach)", bg.datasets.load("rikz"), "poisson")
    with caplog.at_level(logging.INFO, logger="pymc"):
        fit = m.fit(method="advi", random_seed=1, progressbar=True, log_likelihood=False)
    err = capsys.readouterr().err
    assert "Interrupted" not in err and not any(
        "Interrupted" in r.getMessage() for r in caplog.records
    )
    assert fit.options["converged"] is True
    assert fit.options["convergence"].startswith(
        "the median loss of the last 3 windows of 200 iterations lies within"
    )
    assert "advi: converged (the median loss" in err
    assert f"after {fit.options['iterations']:,} iterations" in err
    assert "advi: iteration 400 of at most 30,000, loss " in err.replace("\r", "\n")
