"""A fit's dispersion parameters are read by name (issue 16): ``draws_dispersion(name)`` for any
family, ``draws_sigma()`` only where the dispersion is a residual SD (gaussian, Student-t's
scale); the interval table names each parameter as it is (``shape``, ``phi``), not ``sigma``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.engines.bayes.draws import draws_to_tree
from bayesglmm.errors import ArgumentError


def _data(seed: int = 5, n: int = 400, n_groups: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=n)
    b = rng.normal(0.0, 0.5, n_groups)
    eta = 0.5 + 0.4 * x + b[g]
    mu = np.exp(eta)
    shape = 3.0
    y_nb = rng.negative_binomial(shape, shape / (shape + mu))
    y_pois = rng.poisson(mu)
    y_gauss = eta + rng.normal(0.0, 0.8, n)
    return pd.DataFrame(
        {"nb": y_nb, "pois": y_pois, "yg": y_gauss, "x": x, "g": [f"g{i}" for i in g]}
    )


DF = _data()


@pytest.fixture(scope="module")
def gauss_ml() -> bg.GLMMFit:
    return bg.GLMM("yg ~ x + (1 | g)", DF, family="gaussian").fit(method="ml")


@pytest.fixture(scope="module")
def nb_ml() -> bg.GLMMFit:
    return bg.GLMM("nb ~ x + (1 | g)", DF, family="negativebinomial").fit(method="ml")


def test_gaussian_sigma_is_its_dispersion(gauss_ml: bg.GLMMFit) -> None:
    s = gauss_ml.draws_sigma()
    assert s.shape == (1,) and s[0] == gauss_ml.ml.sigma
    np.testing.assert_array_equal(gauss_ml.draws_dispersion("sigma"), s)
    assert list(gauss_ml.draws_dispersion()) == ["sigma"]
    resid = gauss_ml.varcorr().set_index("group").loc["Residual"]
    assert resid["sd_cor"] == pytest.approx(gauss_ml.ml.sigma, rel=1e-12)


def test_negative_binomial_shape_is_read_by_name_not_as_sigma(nb_ml: bg.GLMMFit) -> None:
    shape = nb_ml.draws_dispersion("shape")
    assert shape.shape == (1,) and shape[0] == nb_ml.ml.family_dispersion[0]
    assert 1.0 < shape[0] < 10.0  # simulated with shape 3
    with pytest.raises(ArgumentError) as err:
        nb_ml.draws_sigma()
    assert str(err.value) == (
        "draws_sigma(): the negativebinomial family has no residual SD `sigma` (its "
        'dispersion parameters are `shape`); use fit.draws_dispersion("shape")'
    )
    with pytest.raises(ArgumentError, match=r"no dispersion parameter `sigma` \(its dispersion "):
        nb_ml.draws_dispersion("sigma")
    # lme4's VarCorr of glmer.nb has no Residual row: the shape is no residual SD
    assert "Residual" not in set(nb_ml.varcorr().group)


def test_a_family_without_dispersion_has_no_sigma() -> None:
    fit = bg.GLMM("pois ~ x + (1 | g)", DF, family="poisson").fit(method="ml")
    assert fit.draws_dispersion() == {}
    with pytest.raises(
        ArgumentError, match=r"the poisson family has no residual SD `sigma` \(it has none\)$"
    ):
        fit.draws_sigma()
    with pytest.raises(ArgumentError, match=r"its dispersion parameters: none"):
        fit.draws_dispersion("phi")


def test_bayesian_intervals_name_the_dispersion_as_it_is(nb_ml: bg.GLMMFit) -> None:
    """A Bayesian NB fit's interval table has a ``shape`` row (it was labelled ``sigma``)."""
    d = nb_ml.design
    rng = np.random.default_rng(0)
    S = 200
    betas = nb_ml.ml.beta[None, :] + 0.01 * rng.normal(size=(S, d.k))
    covs = [[np.asarray(nb_ml.ml.covariances[0])] for _ in range(S)]
    ranefs = [[np.asarray(nb_ml.ml.modes[0])] for _ in range(S)]
    shape = rng.gamma(50.0, nb_ml.ml.family_dispersion[0] / 50.0, S)
    tree = draws_to_tree(d, betas, covs, ranefs, sigma=shape)
    fit = bg.GLMMFit(d, nb_ml.priors, "laplace", idata=tree)
    np.testing.assert_array_equal(fit.draws_dispersion("shape"), shape)
    ci = fit.confint()
    assert "shape" in ci.index and "sigma" not in ci.index
    assert ci.loc["shape", "estimate"] == pytest.approx(np.median(shape))
    with pytest.raises(ArgumentError, match="draws_sigma"):
        fit.draws_sigma()
