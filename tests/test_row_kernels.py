"""The fused NUTS log density's row kernels for the families with a dispersion (issue 17).

Each kernel must evaluate exactly the PyMC model's log density (constants included) and its
gradient on PyMC's unconstrained value variables, dispersion(s) on the log scale with the
family's default prior or a user's, at random points: rtol 1e-9 (as the Gamma-log kernel's
``test_gamma_kernel_equals_pymc_logp_and_gradient`` and ``test_nuts_kernel.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from helpers import assert_kernel_equals_pymc

import bayesglmm as bg
from bayesglmm.engines.bayes.log_density import logp_and_grad


def _frame(seed: int, n: int, response: Callable[[np.random.Generator, np.ndarray], np.ndarray]):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 15, n)
    h = rng.integers(0, 6, n)
    x = rng.normal(size=n)
    eta = 0.4 + 0.5 * x + rng.normal(0, 0.6, 15)[g] + rng.normal(0, 0.3, 6)[h]
    return pd.DataFrame({"y": response(rng, eta), "x": x, "g": g, "h": h.astype(str)})


def _nb(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    th = 2.5
    return rng.negative_binomial(th, th / (th + np.exp(eta))).astype(float)


def _beta(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    mu, phi = 1.0 / (1.0 + np.exp(-eta)), 6.0
    return np.clip(rng.beta(mu * phi, (1.0 - mu) * phi), 1e-6, 1 - 1e-6)


def _t(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    return eta + 0.8 * rng.standard_t(4.0, eta.size)


def _gauss_log(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    return np.exp(eta) + rng.normal(0, 0.5, eta.size)


# family, link, response simulator
FAMILIES = {
    "negativebinomial": ("negativebinomial", "log", _nb),
    "beta": ("beta", "logit", _beta),
    "student_t": ("t", "identity", _t),
    "gaussian_log": ("gaussian", "log", _gauss_log),
}

# formula, priors, weighted, centred
MODELS = [
    ("y ~ x + (1|g)", None, False, False),
    ("y ~ x + (1|g) + (1|h)", "user", True, False),
    ("y ~ x + (1 + x|g)", None, False, True),
    ("y ~ 1 + (1|g)", "user", False, True),
]
USER_PRIORS = {
    "negativebinomial": {"shape": {"dist": "Exponential", "lam": 0.5}},
    "beta": {"phi": {"dist": "Gamma", "alpha": 2.0, "beta": 0.2}},
    "student_t": {
        "sigma": {"dist": "HalfNormal", "sigma": 2.0},
        "nu": {"dist": "Gamma", "alpha": 3.0, "beta": 0.2},
    },
    "gaussian_log": {"sigma": {"dist": "Exponential", "lam": 1.0}},
}


@pytest.mark.parametrize("model", range(len(MODELS)))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_row_kernel_equals_pymc_logp_and_gradient(family: str, model: int) -> None:
    name, link, response = FAMILIES[family]
    formula, priors, weighted, centered = MODELS[model]
    df = _frame(10 + model, 150, response)
    kw = {"weights": np.random.default_rng(2).uniform(0.5, 2.0, len(df))} if weighted else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM(
            formula,
            df,
            name,
            link=link,
            priors=USER_PRIORS[family] if priors == "user" else None,
            centered=centered,
            **kw,
        )
    assert_kernel_equals_pymc(m)


def _gamma_inverse(rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
    mu = 1.0 / (1.0 + 0.1 * eta)  # eta of the frame is O(1): keep the inverse link's eta > 0
    return rng.gamma(3.0, mu / 3.0)


@pytest.mark.parametrize("model", range(len(MODELS)))
def test_gamma_inverse_kernel_equals_pymc_logp_and_gradient(model: int) -> None:
    """The Gamma family on the inverse link (``mu = 1 / eta``): the kernel's log density and
    gradient equal the PyMC model's, at points where every row's ``eta`` is positive (the
    intercept near 1, the rest small; elsewhere both are ``-inf``)."""
    formula, priors, weighted, centered = MODELS[model]
    df = _frame(20 + model, 150, _gamma_inverse)
    kw = {"weights": np.random.default_rng(2).uniform(0.5, 2.0, len(df))} if weighted else {}
    user = {"shape": {"dist": "Exponential", "lam": 0.5}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = bg.GLMM(
            formula,
            df,
            "gamma",
            link="inverse",
            priors=user if priors == "user" else None,
            centered=centered,
            **kw,
        )
    assert m.design.family.row_kernel == "gamma_inverse"

    def point(rng: np.random.Generator, layout) -> np.ndarray:  # noqa: ANN001
        x = rng.normal(scale=0.05, size=layout.ndim)
        x[layout.args().ic_off] = 1.0 + 0.1 * rng.normal()  # the intercept
        return x

    assert_kernel_equals_pymc(m, point=point, require_finite=True)


def test_nb_kernel_far_from_the_data() -> None:
    """Large linear predictors and shapes (log mu + theta without overflow; PyMC's own
    formula loses digits there, so the tolerance is the same relative one on wider x)."""
    df = _frame(3, 120, _nb)
    m = bg.GLMM("y ~ x + (1|g)", df, "nb")
    assert_kernel_equals_pymc(m, scale=2.5, n_points=6)


def test_nb_default_sampler_is_the_kernel() -> None:
    df = _frame(4, 120, _nb)
    m = bg.GLMM("y ~ x + (1|g)", df, "nb")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(draws=60, tune=60, chains=1, random_seed=1)
    assert fit.options["sampler"] == "kernel"
    shape = fit.draws_dispersion()["shape"]
    assert np.all(np.isfinite(shape)) and np.all(shape > 0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_kernel_never_raises_at_extreme_dispersions(family: str) -> None:
    """A dispersion that under- or overflows (log value -800 or 800, as NUTS's first steps
    can propose) gives a non-finite or finite log density, never a Python exception (a
    ZeroDivisionError inside nutpie's threads panicked the sampler and hung the SBC)."""
    name, link, response = FAMILIES[family]
    m = bg.GLMM("y ~ x + (1|g)", _frame(5, 60, response), name, link=link)
    layout = m.kernel_layout()
    assert layout is not None
    disp = [i for i, nm_ in enumerate(layout.names) if nm_.endswith("_log__")]
    for v in (-800.0, 800.0):
        for pos in disp:
            x = np.zeros(layout.ndim)
            x[pos] = v
            lp, grad = logp_and_grad(x, *layout.args())
            assert grad.shape == (layout.ndim,)
            assert isinstance(lp, float)


def test_a_stale_compiled_kernel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numba's cache keys the kernels on the engine files, not on the families' row functions
    they inline: compiled code that predates an edit (here: the registry's order changed under
    it, as when a row kernel is inserted) would dispatch a code to another family's row.  The
    first kernel of a process checks the compiled rows against the registry's functions."""
    from bayesglmm.engines.bayes import row_dispatch

    row_dispatch.check_compiled_rows()  # the compiled kernels are current
    swapped = dict(reversed(list(row_dispatch.ROW_FUNCTIONS.items())))
    monkeypatch.setattr(row_dispatch, "ROW_FUNCTIONS", swapped)
    with pytest.raises(bg.InferenceError, match="Numba's cache predates an edit"):
        row_dispatch.check_compiled_rows.__wrapped__()
