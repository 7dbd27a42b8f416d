"""Reading a fit's parameters, whatever the method: the draws of a Bayesian fit, or the ML
estimate as one draw (:class:`ParameterDrawMethods`, a mixin of
:class:`~bayesglmm.fit.results.GLMMFit`).

Every accessor returns the samples first (``(samples, ...)``; ML fits: one sample), so the
interpretation modules are written once for both kinds of fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.fit.posterior import posterior_dataset, stack_draws

__all__ = ["ParameterDrawMethods"]


class ParameterDrawMethods:
    """Mixin of :class:`~bayesglmm.fit.results.GLMMFit`: the parameters as draws."""

    design: Design
    idata: Any
    ml: Any
    labels: tuple[str, ...]

    def draws_fixed(self) -> np.ndarray:
        """Fixed effects as (samples, k) in ``design.x_names`` order (ML: one row)."""
        if self.ml is not None:
            return np.asarray(self.ml.beta, dtype=float)[None, :]
        post = posterior_dataset(self.idata)
        cols = []
        for name in self.design.x_names:
            if name == "(Intercept)":
                cols.append(stack_draws(post[nm.INTERCEPT]))
            else:
                cols.append(stack_draws(post[nm.BETA].sel({nm.FIXED_DIM: name})))
        if not cols:
            return np.zeros((self.n_samples, 0))
        return np.column_stack(cols)

    @property
    def n_samples(self) -> int:
        """Number of posterior draws (1 for ML fits)."""
        if self.ml is not None:
            return 1
        post = posterior_dataset(self.idata)
        return int(post.sizes["chain"] * post.sizes["draw"])

    def draws_cov(self, i: int) -> np.ndarray:
        """Covariance matrices of block ``i`` as (samples, p, p)."""
        if self.ml is not None:
            return np.asarray(self.ml.covariances[i], dtype=float)[None]
        label = self.labels[i]
        post = posterior_dataset(self.idata)
        sd = stack_draws(post[nm.sd(label)])
        if nm.cor(label) in post:
            cor = stack_draws(post[nm.cor(label)])
        else:
            cor = np.broadcast_to(np.eye(sd.shape[1]), (sd.shape[0], sd.shape[1], sd.shape[1]))
        return cor * sd[:, :, None] * sd[:, None, :]

    def draws_ranef(self, i: int) -> np.ndarray:
        """Random effects of block ``i`` as (samples, levels, p) (ML: conditional modes)."""
        if self.ml is not None:
            return np.asarray(self.ml.modes[i], dtype=float)[None]
        return stack_draws(posterior_dataset(self.idata)[nm.r(self.labels[i])])

    def draws_sigma(self) -> np.ndarray | None:
        """Residual SD draws (gaussian), else None."""
        if not self.design.family.has_dispersion:
            return None
        if self.ml is not None:  # the family's first dispersion (gaussian: sigma)
            return np.array([float((self.ml.family_dispersion or (self.ml.sigma,))[0])])
        return stack_draws(posterior_dataset(self.idata)[self.design.family.dispersion[0].name])

    def dispersion_arg(self, sl: slice | None = None, mean: bool = False) -> Any:
        """The family's dispersion argument (``FamilySpec.dispersion_arg``) from
        :meth:`draws_dispersion`: draws ``sl`` as a column (S, 1), or their means."""
        disp = self.draws_dispersion()
        vals: dict[str, Any]
        if mean:
            vals = {k: float(np.mean(v)) for k, v in disp.items()}
        else:
            vals = {k: v[sl if sl is not None else slice(None)][:, None] for k, v in disp.items()}
        return self.design.family.spec.dispersion_arg(vals)

    def draws_dispersion(self) -> dict[str, np.ndarray]:
        """Draws (Bayesian) or the estimate (ML, one entry) of each of the family's dispersion
        parameters, by name (``Family.dispersion``); empty when it has none."""
        out = {}
        for i, disp in enumerate(self.design.family.dispersion):
            if self.ml is not None:  # the family's dispersion estimates (gaussian: sigma)
                est = self.ml.family_dispersion or (self.ml.sigma,)
                out[disp.name] = np.array([float(est[i])])
            else:
                out[disp.name] = stack_draws(posterior_dataset(self.idata)[disp.name])
        return out
