"""PQL (MASS::glmmPQL) on toenail.

Course-notes reference (tests/fixtures/lme4_glmer_README.md): fixed effects -0.7432,
-0.0348, -0.2947, -0.1002, random-intercept SD 2.317, dispersion 0.877.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesglmm import datasets
from bayesglmm.design.build import build_design
from bayesglmm.engines.ml.pql import fit_pql
from bayesglmm.errors import ConvergenceWarning, InferenceError

GLMMPQL_FE = [-0.7432, -0.0348, -0.2947, -0.1002]


@pytest.fixture(scope="module")
def toenail():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_design(
            "outcome ~ treatment * time + (1 | patientID)", datasets.load("toenail"), "bernoulli"
        )


def _pql(design, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_pql(design, **kw)


def test_pql_matches_glmmpql(toenail):
    fit = _pql(toenail, maxiter=10)  # glmmPQL's niter: the course values are its 10th iterate
    np.testing.assert_allclose(fit.beta, GLMMPQL_FE, atol=0.01)
    assert abs(np.sqrt(fit.covariances[0][0, 0]) - 2.317) < 0.02
    assert fit.dispersion == pytest.approx(0.877, abs=0.01)
    assert fit.method == "pql" and np.isnan(fit.loglik)
    assert np.all(np.isfinite(fit.se_beta)) and np.all(fit.se_beta > 0)
    assert fit.modes[0].shape == (294, 1)


def test_glmmpql_iteration_limit_and_convergence(toenail):
    """glmmPQL returns its 10th iterate without a warning; on toenail its own rule
    (relative change of eta < 1e-6) holds only at the 17th, so the default (50) goes on and
    the 10-iteration fit warns.  The course notes' SD 2.317 is glmmPQL's 10th iterate."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_pql(toenail)
    assert fit.converged and fit.n_iter == 17
    assert abs(np.sqrt(fit.covariances[0][0, 0]) - 2.3213) < 0.001
    with pytest.warns(ConvergenceWarning, match="did not converge in 10 iterations"):
        ten = fit_pql(toenail, maxiter=10)
    assert not ten.converged and ten.n_iter == 10
    assert abs(np.sqrt(ten.covariances[0][0, 0]) - 2.317) < 0.001  # glmmPQL's printed SD
    np.testing.assert_allclose(ten.beta, GLMMPQL_FE, atol=0.0006)  # its 4 printed digits


def test_fixed_dispersion_differs(toenail):
    est, fixed = _pql(toenail), _pql(toenail, dispersion="fixed")
    assert fixed.dispersion == 1.0
    assert np.max(np.abs(est.beta - fixed.beta)) > 0.005
    assert abs(np.sqrt(fixed.covariances[0][0, 0]) - 2.317) > 0.05


def test_pql_rejects_bad_options(toenail):
    with pytest.raises(InferenceError, match="dispersion"):
        fit_pql(toenail, dispersion="free")  # type: ignore[arg-type]
