"""Design + priors -> PyMC model.

Random effects are non-centred by default: ``r = z * sd`` (uncorrelated) or
``r = z @ L.T`` with ``L = diag(sd) @ chol(corr)`` from an LKJ Cholesky covariance
(correlated).  They enter the linear predictor by integer index,
``eta += sum_j Z[:, j] * r[index, j]``; no indicator matrix is built.

Variable names and coords (the contract every engine's draws follow):

* ``Intercept`` (scalar) and ``beta`` (dim ``fixed``: slope names), sampled as
  ``Intercept_centered`` (the intercept at centred predictors) and ``beta_scaled`` (each
  slope times the SD of its column, :func:`slope_scales`), whose priors are the user's mapped
  exactly, so that NUTS and ADVI work alike on every scale of the predictors;
* per random-effect block with label ``L`` (the group name, ``:`` -> ``_``):
  ``sd_L`` (dim ``L__term``), ``cor_L`` (dims ``L__term``, ``L__term_b``; correlated
  blocks only), ``z_L`` (standardized effects) and ``r_L`` (dims ``L__level``, ``L__term``:
  the random effects on the linear-predictor scale, level labels as coords);
* ``sigma`` (gaussian only);
* observed ``y`` with dim ``obs``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.coords import model_coords
from bayesglmm.engines.scaling import column_scales
from bayesglmm.priors import Prior, PriorSet, block_labels, term_scales

__all__ = ["build_pymc_model", "model_coords", "data_values", "slope_scales"]


def slope_scales(design: Design) -> np.ndarray:
    """SD of each slope column (1 for a constant one): ``beta_scaled = beta * scale``."""
    slope_cols = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
    return column_scales(np.asarray(design.X, dtype=float)[:, slope_cols], design)


def _dist(name: str, prior: Prior, **kwargs: Any) -> Any:
    return getattr(pm, prior.dist)(name, **prior.params, **kwargs)


def _dist_vector(name: str, priors: list[Prior], dims: str) -> Any:
    dist = priors[0].dist
    params = {k: np.array([p.params[k] for p in priors]) for k in priors[0].params}
    return getattr(pm, dist)(name, **params, dims=dims)


def data_values(design: Design) -> dict[str, np.ndarray]:
    """The arrays held in ``pm.Data`` containers, by name (for ``pm.set_data`` refits)."""
    vals: dict[str, np.ndarray] = {
        "X": design.X,
        "offset": design.offset,
        "y_obs": design.y,
    }
    if design.trials is not None:
        vals["trials"] = design.trials
    if design.weights is not None:
        vals["weights"] = design.weights
    for label, b in zip(block_labels(design), design.blocks, strict=True):
        vals[f"Z_{label}"] = b.Z
        vals[f"idx_{label}"] = b.index
    return vals


def _dispersion_vars(design: Design, priors: PriorSet) -> dict[str, Any]:
    """One free variable per dispersion parameter of the family (gaussian ``sigma``)."""
    return {d.name: _dist(d.name, priors.dispersion(d.name)) for d in design.family.dispersion}


def _weighted_likelihood(
    design: Design, priors: PriorSet, data: dict[str, np.ndarray], eta: Any, y_obs: Any
) -> None:
    """Observed ``y`` whose log density is the prior-weighted one (lme4's weights).

    Case weights (bernoulli, binomial, Poisson): ``w_i * logp(y_i)``; gaussian precision
    weights: ``Normal(eta_i, sigma / sqrt(w_i))``; a zero weight contributes 0.  Random
    draws (prior/posterior predictive) are the row's own distribution (gaussian: with
    ``sigma / sqrt(w_i)``, ``sigma`` for a zero weight).  The family supplies both
    (``FamilySpec.pymc_weighted_logp`` / ``pymc_weighted_dist``).
    """
    fam = design.family
    spec, link = fam.spec, fam.link_fn
    w = pm.Data("weights", data["weights"], dims="obs")
    n = pm.Data("trials", data["trials"], dims="obs") if "trials" in data else 1
    disp = _dispersion_vars(design, priors)
    names = tuple(disp)

    def logp(value: Any, eta: Any, w: Any, n: Any, *d: Any) -> Any:
        return spec.pymc_weighted_logp(link, value, eta, w, n, dict(zip(names, d, strict=True)))

    def dist(eta: Any, w: Any, n: Any, *rest: Any) -> Any:
        *d, size = rest
        return spec.pymc_weighted_dist(link, eta, w, n, dict(zip(names, d, strict=True)), size)

    pm.CustomDist(
        "y",
        eta,
        w,
        pt.as_tensor(n, dtype="float64"),
        *(pt.as_tensor(v, dtype="float64") for v in disp.values()),
        dist=dist,
        logp=logp,
        observed=y_obs,
        dims="obs",
    )


def build_pymc_model(
    design: Design, priors: PriorSet, *, centered: bool = False, with_likelihood: bool = True
) -> pm.Model:
    """Build the PyMC model of a GLMM.

    Parameters
    ----------
    design : Design
        From :func:`bayesglmm.design.build.build_design`.
    priors : PriorSet
        From :func:`bayesglmm.priors.resolve_priors`.
    centered : bool
        Use the centred parameterization of the random effects (default non-centred).
    with_likelihood : bool
        Include the observed likelihood (False gives the prior only).

    Returns
    -------
    pymc.Model
    """
    coords = model_coords(design)
    data = data_values(design)
    labels = block_labels(design)
    fam = design.family
    with pm.Model(coords=coords) as model:
        X = pm.Data("X", data["X"], dims=("obs", "fixed_all"))
        offset = pm.Data("offset", data["offset"], dims="obs")
        eta = offset
        slope_cols = [i for i, n in enumerate(design.x_names) if n != "(Intercept)"]
        beta = None
        if priors.fixed:
            # sampled per SD of each column (scale-free NUTS starts, jitter and step sizes),
            # with the user's prior mapped exactly; ``beta`` is on the user's scale
            scales = slope_scales(design)
            scaled = [p.scaled(s) for p, s in zip(priors.fixed.values(), scales, strict=True)]
            beta_scaled = _dist_vector(nm.BETA_SCALED, scaled, dims=nm.FIXED_DIM)
            beta = pm.Deterministic(nm.BETA, beta_scaled / scales, dims=nm.FIXED_DIM)
            eta = eta + pt.dot(X[:, slope_cols], beta)
        if priors.intercept is not None:
            # As brms/rstanarm: sample the intercept at centred predictors (far less
            # posterior correlation with the slopes), report the usual one.
            means = design.row_mean(design.X[:, slope_cols]) if slope_cols else np.zeros(0)
            b0c = _dist(nm.INTERCEPT_CENTERED, priors.intercept)
            eta = eta + b0c - (pt.dot(means, beta) if beta is not None else 0.0)
            pm.Deterministic(nm.INTERCEPT, b0c - (pt.dot(means, beta) if beta is not None else 0.0))

        for label, b in zip(labels, design.blocks, strict=True):
            Z = pm.Data(f"Z_{label}", data[f"Z_{label}"], dims=("obs", nm.term_dim(label)))
            idx = pm.Data(f"idx_{label}", data[f"idx_{label}"], dims="obs")
            term_dim, level_dim = nm.term_dim(label), nm.level_dim(label)
            sd_pri = list(priors.sd[label])
            if b.correlated:
                # the factor is sampled for the columns divided by their units (term_scales):
                # sd_std = sd * unit, with the user's SD priors mapped exactly; correlations
                # are unchanged and everything stored is on the user's scale
                units = term_scales(b, design.weights)
                sd_pri = [p.scaled(float(u)) for p, u in zip(sd_pri, units, strict=True)]
                sd_dist = getattr(pm, sd_pri[0].dist).dist(
                    **{k: np.array([p.params[k] for p in sd_pri]) for k in sd_pri[0].params}
                )
                chol_std, corr, sds = pm.LKJCholeskyCov(
                    nm.chol_cov(label),
                    eta=priors.cor[label].params["eta"],
                    n=b.n_terms,
                    sd_dist=sd_dist,
                    compute_corr=True,
                    store_in_trace=False,
                )
                chol = chol_std / units[:, None]
                pm.Deterministic(nm.sd(label), sds / units, dims=term_dim)
                pm.Deterministic(nm.cor(label), corr, dims=(term_dim, nm.term_b_dim(label)))
                if centered:
                    r = pm.MvNormal(nm.r(label), mu=0.0, chol=chol, dims=(level_dim, term_dim))
                else:
                    z = pm.Normal(nm.z(label), 0.0, 1.0, dims=(level_dim, term_dim))
                    r = pm.Deterministic(nm.r(label), pt.dot(z, chol.T), dims=(level_dim, term_dim))
            else:
                sd = _dist_vector(nm.sd(label), sd_pri, dims=term_dim)
                if centered:
                    r = pm.Normal(nm.r(label), 0.0, sd, dims=(level_dim, term_dim))
                else:
                    z = pm.Normal(nm.z(label), 0.0, 1.0, dims=(level_dim, term_dim))
                    r = pm.Deterministic(nm.r(label), z * sd, dims=(level_dim, term_dim))
            if b.n_terms == 1:
                eta = eta + Z[:, 0] * r[idx, 0]
            else:
                eta = eta + (Z * r[idx]).sum(axis=1)

        y_obs = pm.Data("y_obs", data["y_obs"], dims="obs")
        if not with_likelihood:
            return model
        if design.weights is not None:
            _weighted_likelihood(design, priors, data, eta, y_obs)
        else:  # the family's own observed variable (families/<family>.py)
            disp = _dispersion_vars(design, priors)
            n = pm.Data("trials", data["trials"], dims="obs") if "trials" in data else None
            fam.spec.pymc_observed(fam.link_fn, eta, n, disp, y_obs, "obs")
    return model
