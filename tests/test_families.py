"""The family registry and the Family contract (bayesglmm/families/).

Pins: every family/link in the registry, the unknown-name errors, the row-kernel code table
generated in one place, the ML parameter vector with a dispersion slot (gaussian through the
general Laplace path equals the LMM engine), and the worked example of
``docs/architecture.md`` ("How to add a family"): a toy family defined here, registered, and
fitted by ML and by the NUTS kernel without touching any other module.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.design.build import build_design
from bayesglmm.engines.bayes import kernel_args, kernel_layout, log_density
from bayesglmm.engines.ml import scalar_laplace
from bayesglmm.engines.ml.laplace import fit_ml
from bayesglmm.engines.ml.laplace_dispersion import DispersionObjective, fit_ml_dispersion
from bayesglmm.families import (
    FAMILIES,
    LINKS,
    ROW_KERNEL_CODES,
    ROW_KERNELS,
    Family,
    family_names,
    get_family,
    get_spec,
    kernel_code,
    register,
    unregister,
)
from bayesglmm.families.poisson import Poisson
from bayesglmm.interpret import ppc

PACKAGE = Path(bg.__file__).parent

EXPECTED = {
    "bernoulli": (("logit", "probit", "cloglog"), "logit"),
    "binomial": (("logit", "probit", "cloglog"), "logit"),
    "poisson": (("log",), "log"),
    "gaussian": (("identity", "log"), "identity"),
    "gamma": (("inverse", "log"), "inverse"),
    "beta": (("logit",), "logit"),
    "student_t": (("identity",), "identity"),
    "negativebinomial": (("log",), "log"),
    "negativebinomial1": (("log",), "log"),
}


def test_registry_lists_every_family_and_link():
    assert family_names() == tuple(sorted(EXPECTED))
    for name, (links, canonical) in EXPECTED.items():
        spec = get_spec(name)
        assert spec.links == links
        assert spec.canonical_link == canonical
        assert get_family(name) == Family(name, canonical)
        for link in links:
            assert link in LINKS
            fam = get_family(name, link)
            assert fam.canonical == (link == canonical)
            assert fam.link_fn.name == link
    assert [d.name for d in get_spec("gaussian").dispersion] == ["sigma"]
    assert all(not get_spec(n).dispersion for n in ("bernoulli", "binomial", "poisson"))


def test_aliases_and_case():
    assert get_family("Normal") == Family("gaussian", "identity")
    assert get_family("POISSON").name == "poisson"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: get_family("negbin"),
            "unknown family `negbin`; choose one of bernoulli, beta, binomial",
        ),
        (lambda: Family("tweedie", "log"), "unknown family `tweedie`; choose one of bernoulli"),
        (
            lambda: get_family("poisson", "logit"),
            "link `logit` is not available for family `poisson`; choose one of log",
        ),
        (lambda: bg.families.get_link("sqrt"), "unknown link `sqrt`; choose one of cloglog"),
    ],
)
def test_unknown_family_or_link_names_it(call, message):
    with pytest.raises(bg.DesignError, match=re.escape(message)):
        call()


def test_engine_support_is_stated_by_the_family():
    fam = get_family("gaussian")
    with pytest.raises(bg.InferenceError, match="PQL is for non-gaussian families"):
        fam.check_engine("pql")
    get_family("poisson").check_engine("pql")  # no error


def test_row_kernel_codes_are_generated_in_one_place():
    # the engines' integer codes are the registry's
    assert ROW_KERNEL_CODES == {k: i for i, k in enumerate(ROW_KERNELS)}
    assert scalar_laplace.KIND_CODES == {k: ROW_KERNEL_CODES[k] for k in ("logit", "poisson")}
    for name, (links, _) in EXPECTED.items():
        for link in links:
            fam = get_family(name, link)
            want = ROW_KERNEL_CODES.get(fam.row_kernel) if fam.row_kernel else None
            assert kernel_layout.family_code(name, link) == want == kernel_code(fam)
    # and no other module writes a family/link -> integer table
    table = re.compile(
        r"""["'](logit|probit|cloglog|log|identity|bernoulli|binomial|"""
        r"""poisson|gaussian)["']\)?\s*:\s*\d"""
    )
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "registry.py" and table.search(p.read_text())
    ]
    assert offenders == []


def _gaussian_data(seed: int = 3, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 15, n)
    h = rng.integers(0, 8, n)
    x = rng.normal(size=n)
    y = (
        1.0
        + 0.5 * x
        + rng.normal(0, 0.8, 15)[g]
        + 0.6 * x * rng.normal(0, 1, 15)[g]
        + rng.normal(0, 0.5, 8)[h]
        + rng.normal(0, 1.3, n)
    )
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + (1 + x | g) + (1 | h)"])
def test_gaussian_through_general_laplace_equals_lmm(formula):
    """[theta, beta, log sigma]: the Laplace approximation is exact for the identity link, so
    the general path reproduces the profiled LMM engine."""
    d = build_design(formula, _gaussian_data(), family="gaussian")
    lmm = fit_ml(d)
    gen = fit_ml_dispersion(d)
    assert gen.converged
    assert gen.loglik == pytest.approx(lmm.loglik, abs=1e-6)
    np.testing.assert_allclose(gen.beta, lmm.beta, atol=1e-6)
    assert gen.sigma == pytest.approx(lmm.sigma, abs=1e-6)
    assert gen.family_dispersion == (gen.sigma,)
    for a, b in zip(gen.covariances, lmm.covariances, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # the layout: [theta, beta, log sigma]
    obj = DispersionObjective(d)
    x = np.concatenate([gen.theta, gen.beta, [np.log(gen.sigma)]])
    theta, beta, disp = obj.split(x)
    assert disp == pytest.approx([gen.sigma])
    assert obj.deviance(x) == pytest.approx(-2 * lmm.loglik, abs=1e-6)


def test_dispersion_path_needs_a_dispersion():
    d = build_design("y ~ x + (1 | g)", _gaussian_data().assign(y=1), family="poisson")
    with pytest.raises(bg.InferenceError, match="no dispersion parameter"):
        DispersionObjective(d)


# ---------------------------------------------------------------- how to add a family
class ToyCounts(Poisson):
    """docs/architecture.md's worked example: a new family is one class and one register()."""

    name = "toycounts"


@pytest.fixture
def toy_family():
    register(ToyCounts(), aliases=("toy",))
    try:
        yield "toycounts"
    finally:
        unregister("toycounts")
    assert "toycounts" not in FAMILIES


def _count_data(seed: int = 5, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + rng.normal(0, 0.6, 12)[g]))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


def test_a_registered_family_fits_by_ml_and_nuts_kernel(toy_family):
    df = _count_data()
    toy = bg.GLMM("y ~ x + (1 | g)", df, family="toy")
    ref = bg.GLMM("y ~ x + (1 | g)", df, family="poisson")
    assert toy.design.family == Family("toycounts", "log")
    a, b = toy.fit(method="ml"), ref.fit(method="ml")
    np.testing.assert_allclose(a.fixef(), b.fixef(), rtol=1e-10)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)
    # the NUTS log density: the same fused kernel and value
    la, lb = toy.kernel_layout(), ref.kernel_layout()
    assert la is not None and la.names == lb.names
    x = np.random.default_rng(1).normal(scale=0.5, size=la.ndim)
    got = log_density.logp_and_grad(x, *la.args())
    want = log_density.logp_and_grad(x, *lb.args())
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = toy.fit(draws=60, tune=60, chains=1, random_seed=1, sampler="kernel")
    assert fit.draws_fixed().shape == (60, 2)
    # PPC and residuals read the family too
    rep = ppc.replicate(fit, n_draws=5, random_seed=1)
    assert rep.shape == (5, len(df)) and np.all(rep == np.round(rep)) and rep.min() >= 0
    np.testing.assert_allclose(
        ppc.residuals(fit, "pearson"), (df.y - ppc.fitted(fit)) / np.sqrt(ppc.fitted(fit))
    )


def test_spec_method_check_reads_the_family():
    from bayesglmm.spec.methods import method_problem

    # the Bayesian Laplace fits every family (sigma integrated like the covariance parameters)
    assert method_problem("laplace", ["1 | g"], "gaussian") == ""
    assert method_problem("laplace", ["1 | g"], "poisson") == ""
    assert method_problem("pql", ["1 | g"], "gaussian") == (
        "PQL is for non-gaussian families; use method='ml' for an LMM"
    )


def test_kernel_args_are_a_checked_record():
    """The NUTS log density's arguments: a typed record in the kernel's parameter order,
    checked once when built (a wrong dtype or length is named, not read out of bounds)."""
    import inspect

    layout = bg.GLMM("y ~ x + (1 | g)", _count_data(), family="poisson").kernel_layout()
    args = layout.args()
    assert isinstance(args, kernel_args.KernelArgs)
    params = tuple(inspect.signature(log_density.logp_and_grad.py_func).parameters)
    assert args._fields == params[1:]
    assert args.family == ROW_KERNEL_CODES["poisson"]
    with pytest.raises(ValueError, match="kernel argument `idx` must be a C-contiguous int64"):
        args._replace(idx=args.idx.astype(np.int32)).checked()
    with pytest.raises(ValueError, match="kernel argument `y` must have 200 rows"):
        args._replace(y=args.y[:-1].copy()).checked()


class SlowCounts(Poisson):
    """A family with no Numba row kernel and case weights applied by multiplication: the
    generic NumPy path of the ML engines and the PyMC model for NUTS."""

    name = "slowcounts"
    row_kernels: dict[str, str] = {}
    case_weights_fold = False


def test_a_family_without_row_kernel_runs_the_generic_paths():
    register(SlowCounts())
    try:
        df = _count_data().assign(w=np.random.default_rng(2).integers(1, 4, 200))
        slow = bg.GLMM("y ~ x + (1 | g)", df, family="slowcounts", weights="w")
        ref = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", weights="w")
        assert slow.kernel_layout() is None  # NUTS takes the PyMC model
        a, b = slow.fit(method="ml"), ref.fit(method="ml")
        assert a.loglik == pytest.approx(b.loglik, rel=1e-8)
        np.testing.assert_allclose(a.fixef(), b.fixef(), atol=1e-5)
        pa, pb = slow.build(), ref.build()
        ip = pb.initial_point()
        assert pa.compile_logp()(ip) == pytest.approx(pb.compile_logp()(ip), rel=1e-12)
    finally:
        unregister("slowcounts")
