"""Test helpers: reference values and small hand-made fits with known parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"


def lme4_reference(key: str) -> dict:
    """lme4 glmer reference values (tests/fixtures/lme4_glmer.json; provenance in its README)."""
    return json.loads((FIXTURES / "lme4_glmer.json").read_text())[key]


def ref_sd(ref: dict, group: str, term: str = "(Intercept)") -> float:
    """The reference SD of one random-effect term."""
    for row in ref["varcorr"]:
        if row["group"] == group and row["term1"] == term and row["term2"] is None:
            return float(row["sd_cor"])
    raise KeyError((group, term))


def fake_ml_fit(model, beta, sds, sigma=None):
    """A GLMMFit on ``model``'s design with fixed beta and random-intercept SDs."""
    from bayesglmm.engines.ml.estimate import MLEstimate
    from bayesglmm.fit.results import GLMMFit

    d = model.design
    beta = np.asarray(beta, dtype=float)
    covs = tuple(np.diag(np.full(b.n_terms, s**2)) for b, s in zip(d.blocks, sds, strict=True))
    modes = tuple(np.zeros((b.n_levels, b.n_terms)) for b in d.blocks)
    cv = tuple(np.zeros((b.n_levels, b.n_terms, b.n_terms)) for b in d.blocks)
    ml = MLEstimate(
        method="ml",
        nagq=1,
        beta=beta,
        vcov_beta=np.eye(beta.size),
        theta=np.zeros(1),
        covariances=covs,
        sigma=sigma,
        loglik=float("nan"),
        modes=modes,
        cond_var=cv,
        n_obs=d.n,
    )
    return GLMMFit(d, model.priors, "ml", ml=ml, elapsed=0.0, model=model)
