"""Parametric bootstrap of an ML or PQL fit, ``fit.bootstrap()``.

The refits go through the fit's own model (``fit.model.with_response(y).fit(...)``), a method
call: this module does not import the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bayesglmm.engines.bayes.draws import draws_to_tree
from bayesglmm.engines.types import FitInfo
from bayesglmm.errors import BayesGLMMError
from bayesglmm.quiet import ignoring_warnings

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike


def parametric_bootstrap[F: FitLike](
    fit: F, n_boot: int = 200, random_seed: int | None = None
) -> F:
    """``fit.bootstrap()``: see :meth:`bayesglmm.GLMMFit.bootstrap`."""
    ml = fit._require_ml("bootstrap")
    model = fit.model
    if model is None:
        raise BayesGLMMError("this fit has no model attached to refit")
    d = fit.design
    rng = np.random.default_rng(random_seed)
    eta0 = d.X @ np.asarray(ml.beta) + d.offset
    opts = {k: v for k, v in fit.options.items() if k in ("nagq", "dispersion")}
    # the family's dispersion at the estimate, as the PPC simulates it
    disp = {k: v[0] for k, v in fit.draws_dispersion().items()}
    betas, covs, ranefs, sigmas, failed = [], [], [], [], 0
    for _ in range(int(n_boot)):
        eta = eta0.copy()
        for b, cov in zip(d.blocks, ml.covariances, strict=True):
            L = np.linalg.cholesky(np.asarray(cov) + 1e-12 * np.eye(b.n_terms))
            r = rng.standard_normal((b.n_levels, b.n_terms)) @ L.T
            eta += np.einsum("np,np->n", b.Z, r[b.index])
        y = d.family.simulate(rng, eta[None, :], d.trials, disp, d.weights)[0]
        try:
            with ignoring_warnings():
                f = model.with_response(y).fit(method=fit.method, **opts)
        except BayesGLMMError:
            failed += 1
            continue
        betas.append(np.asarray(f.ml.beta))
        covs.append([np.asarray(c) for c in f.ml.covariances])
        ranefs.append([np.asarray(m) for m in f.ml.modes])
        sigmas.append((f.ml.family_dispersion or (f.ml.sigma,))[0])
    if not betas:
        raise BayesGLMMError(f"all {n_boot} bootstrap refits failed")
    sigma = np.array(sigmas, dtype=float) if d.family.has_dispersion else None
    tree = draws_to_tree(d, np.array(betas), covs, ranefs, sigma=sigma)
    fit_type: Any = type(fit)  # GLMMFit: a fit of the same type, whose draws are the refits
    return fit_type(
        d,
        fit.priors,
        fit.method,
        idata=tree,
        elapsed=float("nan"),
        options=opts,
        info=FitInfo(extra={"bootstrap": len(betas), "failed": failed}),
        model=model,
    )
