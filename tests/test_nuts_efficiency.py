"""Per-draw efficiency of the default NUTS sampler (nutpie on the fused kernel).

The regression case is a Poisson model with an observation-level random effect, shaped as
lme4's glmer-1.R ``rPoisGLMMi(12, 20)``: 12 groups x 20 rows, one ``(1 | obs)`` level per
row, large counts.  With nutpie's gradient-based diagonal mass matrix (its ``"diag"``
default) the kernel stopped at tree depth 5 and gave min bulk ESS 17-35 and R-hat 1.09 at
2 x 1000 draws (seeds 1, 2); PyMC's NUTS gave 289-505 and the draw-variance diagonal
(``adaptation="draw_diag"``, now the default) 331-401.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.fit.health import check_health


@pytest.mark.slow
def test_default_sampler_mixes_on_observation_level_effect():
    """Default fit(): min bulk ESS over Intercept, beta, sd_f, sd_obs >= 200 of 2,000 draws."""
    m = bg.GLMM("y ~ x + (1 | f) + (1 | obs)", _model_classes().observation_level(), "poisson")
    assert m.kernel_layout() is not None  # the default sampler is the kernel here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.SamplerWarning)
        fit = m.fit(draws=1000, tune=1000, chains=2, random_seed=1)
    h = check_health(fit.idata, emit=False)
    ess, rhat = h["min_ess_bulk"], h["max_rhat"]
    assert ess >= 200, ess  # gradient-based diagonal ("diag"): 17
    assert rhat < 1.02, rhat  # "diag": 1.09


def _min_fixed_ess(fit) -> float:
    import arviz_stats as azs

    ess = azs.ess(fit.idata, method="bulk", var_names=["Intercept", "beta"])
    ds = ess.to_dataset() if hasattr(ess, "to_dataset") else ess
    return min(float(v.min()) for v in ds.data_vars.values())


@pytest.mark.slow
def test_toenail_per_draw_efficiency_matches_pymc():
    """The default sampler's min bulk ESS over the fixed effects, per draw, against PyMC's
    NUTS on the same model and settings (toenail, 2 x (1000 + 1000), seed 1).

    Over seeds 1-5 (benchmarks/README.md) the kernel gave 224-363 (median 270) and PyMC
    269-359 (median 277): the same per-draw efficiency within the noise of the ESS
    estimate (the worst parameter, the treatment effect, has ESS ~ 0.13 per draw with
    either sampler).  Seed 1: 265 against 269.  A broken adaptation or gradient gives tens
    (nutpie's gradient-based diagonal on the observation-level model above: 17); the
    posterior means must also agree, so fast-mixing draws from a wrong density fail."""
    df = bg.datasets.load("toenail")
    df["y"] = (df["outcome"] == "moderate or severe").astype(int)
    m = bg.GLMM("y ~ treatment * time + (1 | patientID)", df, "bernoulli")
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=1, log_likelihood=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.SamplerWarning)
        ours = m.fit(**kw)
        ref = m.fit(sampler="pymc", **kw)
    assert ours.options["sampler"] == "kernel"
    e_ours, e_ref = _min_fixed_ess(ours), _min_fixed_ess(ref)
    assert e_ours >= 0.9 * e_ref, (e_ours, e_ref)
    assert e_ours >= 220, e_ours
    pa, pb = ours.idata["posterior"].to_dataset(), ref.idata["posterior"].to_dataset()
    for name in ("Intercept", "beta", "sd_patientID"):
        sd = pb[name].std(("chain", "draw")).values
        diff = np.abs(pa[name].mean(("chain", "draw")).values - pb[name].mean(("chain", "draw")))
        assert np.all(diff.values <= 0.2 * sd), (name, diff.values, sd)


def _model_classes():  # noqa: ANN202
    """benchmarks/nuts_model_classes.py: the four classes, their data and the ESS measure."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "nuts_model_classes.py"
    spec = importlib.util.spec_from_file_location("_bench_nuts_model_classes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.bench  # 1-3.5 min per class on 2 idle cores: on demand, `pytest -m bench`
@pytest.mark.parametrize("name", ["observation-level", "crossed", "nested", "random slope"])
def test_default_sampler_mixes_as_pymc_per_model_class(name):
    """Issue 14: on observation-level, crossed, nested and random-slope models the default
    sampler's min bulk ESS is at least 0.8x PyMC's NUTS at the same draws (2 x (1000 +
    1000)), as the median over sampler seeds 1-3 (one seed's ratio has a spread of about
    +-25%: an ESS near 300 of 2,000 draws is itself uncertain by ~10-15%).  Ratios per seed
    are in benchmarks/README.md; a broken adaptation gives a fraction of PyMC's (nutpie's
    gradient-based diagonal on the observation-level model: 17 against 289-505)."""
    bench = _model_classes()
    table = bench.compare([name], [1, 2, 3])
    assert (table["ess_default"] > 0).all()
    assert table["ratio"].median() >= 0.8, table.to_dict("records")
