"""The engine registry: adding an engine touches its own module and one ``register`` call.

The toy engine below lives in this test file only; registering it makes ``GLMM.fit``,
the TOML specs and the command line accept it (docs/architecture.md, "How to add an
engine", is this example).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.cli.args import methods_arg
from bayesglmm.engines import registry
from bayesglmm.engines.ml.laplace import fit_ml
from bayesglmm.engines.registry import Engine, EngineResult, FitInfo
from bayesglmm.errors import ArgumentError, SpecError
from bayesglmm.spec import method_label, parse_method
from bayesglmm.validate import Option


def fit_toy(design, priors, options, context) -> EngineResult:
    """A toy ML engine: Laplace ML with a fixed iteration cap, noting what it did."""
    t0 = time.perf_counter()
    est = fit_ml(design, maxiter=options.get("maxiter", 200))
    info = FitInfo(
        converged=est.converged,
        messages=["toy engine"],
        timings={"elapsed_toy": time.perf_counter() - t0},
    )
    return EngineResult(estimate=est, info=info)


TOY = Engine(
    "toy_ml",
    bayesian=False,
    options=(Option("maxiter", "int", low=1, default=200), Option("log_likelihood", "bool")),
    fit=fit_toy,
    label="toy maximum likelihood",
    description="a toy engine from the tests",
    aliases={"toy_short": ({"maxiter": 50}, "the toy engine, 50 iterations")},
)


@pytest.fixture
def toy():
    registry.register(TOY)
    try:
        yield TOY
    finally:
        registry.unregister(TOY.name)


@pytest.fixture(scope="module")
def model():
    df = bg.datasets.load("toenail").iloc[:600]
    return bg.GLMM("outcome ~ treatment * time + (1 | patientID)", df, family="bernoulli")


def test_toy_engine_fits_through_glmm_fit(toy, model):
    fit = model.fit(method="toy_ml", maxiter=300)
    ref = model.fit(method="ml")
    np.testing.assert_allclose(fit.fixef(), ref.fixef(), rtol=1e-6)
    assert fit.method == "toy_ml" and fit.ml is not None and fit.idata is None
    # the user's option and the engine's diagnostics, merged under fit.options
    assert fit.user_options == {"maxiter": 300}
    assert fit.options["notes"] == ["toy engine"] and fit.options["converged"] is True
    assert fit.info.timings["elapsed_toy"] > 0 and "elapsed_toy" in fit.options
    with pytest.raises(TypeError):
        fit.options["converged"] = False  # read-only: the options are a record of the fit
    assert "toy maximum likelihood" in fit.format()


def test_toy_engine_options_are_checked_by_its_table(toy, model):
    with pytest.raises(ArgumentError, match="`maxiter` must be an integer >= 1; got 0"):
        model.fit(method="toy_ml", maxiter=0)
    with pytest.raises(ArgumentError, match="unknown option `nagq` for method='toy_ml'"):
        model.fit(method="toy_ml", nagq=2)


def test_unregistered_engine_is_unknown(model):
    assert "toy_ml" not in registry.method_names()
    with pytest.raises(ArgumentError, match="unknown method `toy_ml`"):
        model.fit(method="toy_ml")
    with pytest.raises(SpecError, match="unknown method `toy_ml`"):
        parse_method("toy_ml")


def test_spec_and_cli_accept_a_registered_engine(toy):
    assert parse_method("toy_ml") == ("toy_ml", {})
    assert parse_method("toy_short") == ("toy_ml", {"maxiter": 50})
    assert method_label("toy_ml") == "toy_ml (a toy engine from the tests)"
    assert method_label("toy_short") == "toy_short (the toy engine, 50 iterations)"
    assert methods_arg("ml,toy_ml") == ["ml", "toy_ml"]
    with pytest.raises(SpecError, match="did you mean `toy_ml`"):
        parse_method("toy_mll")


def test_every_builtin_method_is_registered():
    assert registry.method_names() == ("nuts", "laplace", "advi", "fullrank_advi", "ml", "pql")
    assert registry.bayesian_methods() == ("nuts", "laplace", "advi", "fullrank_advi")
    assert parse_method("agq:25") == ("ml", {"nagq": 25})
    assert parse_method("pql_phi1") == ("pql", {"dispersion": "fixed"})


def test_registry_refuses_clashes_and_bayesian_engines_without_log_likelihood():
    with pytest.raises(ValueError, match="'ml' is already registered"):
        registry.register(dataclasses.replace(TOY, name="ml", aliases={}))
    with pytest.raises(ValueError, match="must accept `log_likelihood`"):
        registry.register(dataclasses.replace(TOY, bayesian=True, options=()))
    assert "toy_ml" not in registry.method_names()


def test_engine_result_holds_exactly_one_of_estimate_and_draws():
    with pytest.raises(TypeError, match="exactly one"):
        EngineResult()


def test_fit_info_keeps_the_keys_fits_have_always_shown():
    info = FitInfo.from_dict(
        {"converged": True, "notes": ["a"], "elapsed_mode": 0.5, "strategy": "grid"}
    )
    assert info.converged is True and info.messages == ["a"]
    assert info.timings == {"elapsed_mode": 0.5} and info.extra == {"strategy": "grid"}
    assert info.as_options() == {
        "converged": True,
        "notes": ["a"],
        "elapsed_mode": 0.5,
        "strategy": "grid",
    }


def test_saved_fit_keeps_user_options_and_engine_info_apart(model, tmp_path):
    fit = model.fit(method="laplace", draws=50, random_seed=1, log_likelihood=False)
    assert fit.user_options == {"draws": 50, "random_seed": 1}
    assert fit.info.converged is True and "strategy" in fit.info.extra
    back = bg.load_fit(fit.save(tmp_path / "fit"))
    assert back.user_options == fit.user_options
    assert back.info.as_options() == fit.info.as_options()
    assert dict(back.options) == dict(fit.options)
