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


def assert_kernel_equals_pymc(
    m,
    *,
    scale: float = 0.7,
    n_points: int = 4,
    grad_atol: float = 1e-7,
    point=None,
    require_finite: bool = False,
) -> None:
    """The fused NUTS kernel's log density and gradient equal the PyMC model's (compiled by
    PyTensor) at ``n_points`` seeded points: ``N(0, scale)`` per coordinate, or
    ``point(rng, layout)``; 1e-9 relative, 1e-8 / ``grad_atol`` absolute."""
    import pytensor
    from pymc.pytensorf import join_nonshared_inputs

    from bayesglmm.engines.bayes.log_density import logp_and_grad

    layout = m.kernel_layout()
    assert layout is not None
    pmm = m.build()
    values = [pmm.rvs_to_values[rv] for rv in pmm.free_RVs]
    assert [v.name for v in values] == list(layout.names)
    (lp, dlp), flat = join_nonshared_inputs(pmm.initial_point(), [pmm.logp(), pmm.dlogp()], values)
    f = pytensor.function([flat], [lp, dlp])
    rng = np.random.default_rng(1)
    for _ in range(n_points):
        x = rng.normal(scale=scale, size=layout.ndim) if point is None else point(rng, layout)
        want, want_grad = f(x)
        got, got_grad = logp_and_grad(x, *layout.args())
        if require_finite:
            assert np.isfinite(want)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=grad_atol)
