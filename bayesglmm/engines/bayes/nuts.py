"""NUTS on the fused GLMM kernel, driven by nutpie's Rust sampler.

No PyTensor compile step: the log density is :func:`bayesglmm.engines.bayes.log_density.logp_and_grad`
(Numba, cached on disk after its first use on a machine), and the draws are expanded to the
same variables, dims and coords as PyMC's NUTS on :func:`bayesglmm.engines.bayes.pymc_model.build_pymc_model`
(``Intercept``, ``Intercept_centered``, ``beta``, ``beta_scaled``, ``sd_L``, ``z_L``, ``r_L``,
``sigma``).
A refit with a new response only swaps the data, so the per-fit overhead beyond sampling
is a few milliseconds (see ``benchmarks/run.py``, "refit overhead").
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import xarray as xr

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.engines.bayes.coords import model_coords
from bayesglmm.engines.bayes.kernel_args import KernelLayout
from bayesglmm.engines.bayes.log_density import logp_and_grad
from bayesglmm.quiet import ignoring_warnings

__all__ = ["sample_kernel_nuts"]


#: nutpie's mass-matrix adaptation.  "draw_diag" is the draw-variance diagonal of Stan and PyMC.
#: nutpie's default ("diag") mixes in the gradient variance, and on non-centred
#: observation-level random effects (lme4 glmer-1.R's rPoisGLMMi(12, 20): 240 z's, one
#: observation each) it settles on a step size and mass matrix that stop at tree depth 5:
#: min bulk ESS 17-35 and R-hat 1.09 at 2 x 1000 draws, against 331-401 with "draw_diag" and
#: 289-505 with PyMC's NUTS (tests/test_nuts_efficiency.py).  Elsewhere, mean min bulk ESS
#: ("diag" / "draw_diag" / PyMC): toenail 272 / 277 / 301 (seeds 1-4), hdp 308 / 297 / 260
#: (1-3), crossed 427 / 558 / 442, nested 283 / 202 / 225, random slope 276 / 321 / 199.
#: The cost per leapfrog step is the same.  "low_rank" doubles toenail's ESS (505-555) but
#: runs 20-50x longer, so its ESS per second is far lower.
_ADAPTATION = "draw_diag"


def _expanded(layout: KernelLayout) -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
    """(name, shape, dims) of every stored variable, as PyMC stores them."""
    out: list[tuple[str, tuple[int, ...], tuple[str, ...]]] = []
    disp = {nm.log_value(d.name): d.name for d in layout.family.dispersion}
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        if name == nm.BETA_SCALED:
            out += [(nm.BETA_SCALED, shape, (nm.FIXED_DIM,)), (nm.BETA, shape, (nm.FIXED_DIM,))]
        elif name == nm.INTERCEPT_CENTERED:
            out += [(nm.INTERCEPT_CENTERED, (), ()), (nm.INTERCEPT, (), ())]
        elif name in disp:  # the family's dispersion (gaussian sigma, gamma shape)
            out.append((disp[name], (), ()))
        elif name.startswith("sd_"):
            label = name[3:-6]
            out.append((nm.sd(label), shape, (nm.term_dim(label),)))
        elif name.startswith("chol_cov_"):
            label = name[len("chol_cov_") : -len(nm.PACKED_SUFFIX)]
            m = layout.arrays["nterm"][layout.labels.index(label)]
            out += [
                (nm.chol_cov(label), shape, (nm.chol_cov(label) + "_dim_0",)),
                (nm.sd(label), (int(m),), (nm.term_dim(label),)),
                (nm.cor(label), (int(m), int(m)), (nm.term_dim(label), nm.term_b_dim(label))),
            ]
        elif name.startswith("r_"):  # centred: the random effects are sampled
            dims = (nm.level_dim(name[2:]), nm.term_dim(name[2:]))
            out.append((name, shape, dims))
        else:  # z_<label>
            label = name[2:]
            dims = (nm.level_dim(label), nm.term_dim(label))
            out += [(name, shape, dims), (nm.r(label), shape, dims)]
    return out


def _make_expand(layout: KernelLayout):  # noqa: ANN202
    """Unconstrained vector -> dict of stored variables (natural scale + deterministics)."""
    xmean = layout.arrays["xmean"]  # of the scaled columns: Intercept = b0c - xmean @ bs
    scale = layout.arrays["scale"]
    pieces = dict(zip(layout.names, layout.slices, strict=True))
    shapes = dict(zip(layout.names, layout.shapes, strict=True))
    order = [name for name, _, _ in _expanded(layout)]  # nutpie wants the declared order
    a = layout.arrays
    units = {
        label: a["zunit"][a["zcol"][i] : a["zcol"][i] + a["nterm"][i]]
        for i, label in enumerate(layout.labels)
    }
    centered = bool(layout.ints.get("centered", 0))

    def expand(x: np.ndarray, **_: Any) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        beta = x[pieces[nm.BETA_SCALED]] if nm.BETA_SCALED in pieces else np.zeros(0)
        if nm.BETA_SCALED in pieces:
            out[nm.BETA_SCALED] = beta.copy()
            out[nm.BETA] = beta / scale
        if nm.INTERCEPT_CENTERED in pieces:
            b0c = float(x[pieces[nm.INTERCEPT_CENTERED]][0])
            out[nm.INTERCEPT_CENTERED] = np.asarray(b0c)
            out[nm.INTERCEPT] = np.asarray(b0c - float(xmean @ beta) if beta.size else b0c)
        for d in layout.family.dispersion:  # sampled on the log scale
            if nm.log_value(d.name) in pieces:
                out[d.name] = np.exp(x[pieces[nm.log_value(d.name)]]).reshape(())
        for label in layout.labels:
            if centered:
                r = x[pieces[nm.r(label)]].reshape(shapes[nm.r(label)]).copy()
                out[nm.r(label)] = r
                z = np.zeros_like(r)  # unused below: r is stored as sampled
            else:
                z = x[pieces[nm.z(label)]].reshape(shapes[nm.z(label)])
                out[nm.z(label)] = z.copy()
            packed = nm.packed_chol(label)
            if packed in pieces:
                m = z.shape[1]
                rows, cols = np.tril_indices(m)
                v = x[pieces[packed]].copy()
                v[rows == cols] = np.exp(v[rows == cols])
                L = np.zeros((m, m))
                L[rows, cols] = v
                # the factor is for the columns divided by their units: back to the user's
                L /= units[label][:, None]
                sd = np.sqrt((L * L).sum(axis=1))
                out[nm.chol_cov(label)] = L[rows, cols]
                out[nm.sd(label)] = sd
                out[nm.cor(label)] = (L @ L.T) / np.outer(sd, sd)
                if not centered:
                    out[nm.r(label)] = z @ L.T
            else:
                sd = np.exp(x[pieces[nm.log_value(nm.sd(label))]])
                out[nm.sd(label)] = sd
                if not centered:
                    out[nm.r(label)] = z * sd
        return {name: out[name] for name in order}

    return expand


def _prior_scale(code: int, a: float, b: float) -> float:
    """A typical value of a positive prior (kernel codes of kernel_layout.PRIOR_CODES)."""
    if code in (3, 5):  # HalfNormal(sigma), HalfCauchy(beta)
        return a
    if code == 4:  # HalfStudentT(nu, sigma)
        return b
    if code == 6:  # Exponential(lam)
        return 1.0 / a
    if code == 7:  # Gamma(alpha, beta)
        return a / b
    return 1.0


def _initial_point(layout: KernelLayout, seed: int) -> np.ndarray:
    """As PyMC's ``jitter+adapt_diag``: prior locations, jittered by U(-1, 1).

    The slopes are ``beta_scaled`` (per SD of their column), so the jitter is in standardized
    units whatever the scale of the predictors; so is a correlated block's Cholesky factor,
    which is for its columns divided by their units (:func:`bayesglmm.priors.term_scales`):
    on the raw columns, PyMC's start (an SD of 1, off-diagonal elements U(-1, 1)) put a slope
    on ``x * 1e6`` at a linear predictor of ~1e6."""
    x = np.zeros(layout.ndim)
    a = layout.arrays
    for pos, code, pa, pb, log in zip(
        a["pr_pos"], a["pr_code"], a["pr_a"], a["pr_b"], a["pr_log"], strict=True
    ):
        if log:  # a scale-like location of the positive prior, on the log scale
            scale = _prior_scale(int(code), float(pa), float(pb))
            x[pos] = math.log(scale)
        else:
            x[pos] = pb if code == 1 else pa  # StudentT(nu, mu, sigma): mu; others: location
    rng = np.random.default_rng(seed)
    return x + rng.uniform(-1.0, 1.0, size=layout.ndim)


def sample_kernel_nuts(
    design: Design,
    layout: KernelLayout,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    random_seed: int | None = None,
    target_accept: float = 0.95,
    progressbar: bool = False,
    allow_partial: bool = False,
    **kwargs: Any,
) -> xr.DataTree:
    """Sample the posterior with nutpie's NUTS on the fused kernel.

    Returns a DataTree with ``posterior``, ``sample_stats`` (nutpie's names: ``diverging``,
    ``depth``, ``maxdepth_reached``, ``energy``, ``logp``, ...) and ``observed_data``.

    Ctrl-C stops the chains and raises KeyboardInterrupt; with ``allow_partial=True`` it
    returns the finished draws instead (:func:`bayesglmm.engines.bayes.pymc_nuts.keep_finished_draws`:
    equal-length chains, no NaN padding, a :class:`~bayesglmm.errors.PartialFitWarning`).
    Every call builds its own sampler state; the layout's arrays are only read, so fits of
    models that share a layout (``GLMM.with_response``) may run in parallel threads.
    """
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    from bayesglmm.engines.bayes.pymc_nuts import check_cores, keep_finished_draws

    check_cores(cores)

    args = layout.args(y=np.ascontiguousarray(design.y, dtype=float))

    def make_logp():
        def logp(x: np.ndarray, **_: Any) -> tuple[float, np.ndarray]:
            return logp_and_grad(x, *args)

        return logp

    expand = _make_expand(layout)

    def make_expand(*_: Any):
        return expand

    spec = _expanded(layout)
    coords = {k: v for k, v in model_coords(design).items() if k != "obs"}
    for name, shape, dims in spec:
        if name.startswith("chol_cov_"):
            coords[dims[0]] = [str(i) for i in range(shape[0])]  # nutpie wants strings
    compiled = from_pyfunc(
        ndim=layout.ndim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        expanded_dtypes=[np.dtype("float64")] * len(spec),
        expanded_shapes=[s for _, s, _ in spec],
        expanded_names=[n for n, _, _ in spec],
        coords=coords,
        dims={n: d for n, _, d in spec if d},
        make_initial_point_fn=lambda seed: _initial_point(layout, seed),
    )
    if random_seed is None:
        random_seed = int(np.random.default_rng().integers(2**63))  # fresh entropy
    t0 = time.perf_counter()
    sampler = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores if cores is not None else chains,
        seed=int(random_seed),
        target_accept=target_accept,
        progress_bar=progressbar,
        save_warmup=False,
        blocking=False,
        **{"adaptation": _ADAPTATION, **kwargs},
    )
    # nutpie's blocking call turns Ctrl-C into a NaN-padded trace of uneven chains; wait
    # here instead, and either stop (default) or keep only the finished draws
    try:
        tree = sampler.wait()
    except KeyboardInterrupt:
        if not allow_partial:
            sampler.cancel()
            raise
        # ArviZ's dims check on a trace of 0 draws
        with ignoring_warnings(message="Found chain dimension to be longer"):
            aborted = sampler.abort()
        tree, _ = keep_finished_draws(aborted, draws=draws, chains=chains)
    except BaseException:
        sampler.cancel()
        raise
    # as PyMC's attribute: the time spent in the sampler itself (refit overhead = rest)
    tree["sample_stats"].attrs["sampling_time"] = time.perf_counter() - t0
    # nutpie takes string coords only; PyMC numbers the packed Cholesky entries 0, 1, ...
    packed = {d[0]: np.arange(s[0]) for n, s, d in spec if n.startswith("chol_cov_")}
    if packed:
        post = tree["posterior"].to_dataset()
        tree["posterior"] = xr.DataTree(post.assign_coords(packed), name="posterior")
    obs = xr.Dataset({"y": ("obs", design.y)}, coords={"obs": [str(i) for i in range(design.n)]})
    tree["observed_data"] = xr.DataTree(obs)
    return tree
