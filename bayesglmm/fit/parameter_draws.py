"""Reading a fit's parameters, whatever the method: the draws of a Bayesian fit, or the ML
estimate as one draw (:class:`ParameterDrawMethods`, a mixin of
:class:`~bayesglmm.fit.results.GLMMFit`).

Every accessor returns the samples first (``(samples, ...)``; ML fits: one sample), so the
interpretation modules are written once for both kinds of fit.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np

from bayesglmm import posterior_names as nm
from bayesglmm.design.types import Design
from bayesglmm.errors import ArgumentError
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

    def draws_sigma(self) -> np.ndarray:
        """Draws (Bayesian) or the estimate (ML, one entry) of the residual SD ``sigma``.

        Only for a family whose dispersion parameters include ``sigma`` (gaussian; Student-t's
        scale): ``draws_dispersion("sigma")``.  Other families' dispersion is no SD
        (negative binomial and gamma ``shape``, Beta ``phi``): read it by its name with
        :meth:`draws_dispersion`; lme4's ``sigma(fit)`` of any family is the ``Residual`` row
        of :meth:`varcorr`.

        Raises
        ------
        ArgumentError
            For a family without a ``sigma`` parameter, naming its dispersion parameters.
        """
        fam = self.design.family
        if "sigma" not in [d.name for d in fam.dispersion]:
            names = ", ".join(f"`{d.name}`" for d in fam.dispersion)
            has = f"its dispersion parameters are {names}" if names else "it has none"
            hint = f'; use fit.draws_dispersion("{fam.dispersion[0].name}")' if names else ""
            raise ArgumentError(
                f"draws_sigma(): the {fam.name} family has no residual SD `sigma` ({has}){hint}"
            )
        return self.draws_dispersion("sigma")

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

    @overload
    def draws_dispersion(self) -> dict[str, np.ndarray]: ...

    @overload
    def draws_dispersion(self, name: str) -> np.ndarray: ...

    def draws_dispersion(self, name: str | None = None) -> dict[str, np.ndarray] | np.ndarray:
        """Draws (Bayesian) or the estimate (ML, one entry) of the family's dispersion
        parameters (``Family.dispersion``).

        Parameters
        ----------
        name : str, optional
            One parameter (gaussian ``sigma``; negative binomial and gamma ``shape``; Beta
            ``phi``; Student-t ``sigma`` and ``nu``).

        Returns
        -------
        dict or ndarray
            Without ``name``, every parameter by name (empty when the family has none);
            with it, that parameter's values, shape (samples,).

        Raises
        ------
        ArgumentError
            For a ``name`` that is not one of the family's dispersion parameters.
        """
        fam = self.design.family
        names = [d.name for d in fam.dispersion]
        if name is not None and name not in names:
            valid = ", ".join(f"`{n}`" for n in names) or "none"
            raise ArgumentError(
                f"draws_dispersion(): the {fam.name} family has no dispersion parameter "
                f"`{name}` (its dispersion parameters: {valid})"
            )
        out = {}
        for i, disp in enumerate(fam.dispersion):
            if name is not None and disp.name != name:
                continue
            if self.ml is not None:  # the family's dispersion estimates (gaussian: sigma)
                est = self.ml.family_dispersion or (self.ml.sigma,)
                out[disp.name] = np.array([float(est[i])])
            else:
                out[disp.name] = stack_draws(posterior_dataset(self.idata)[disp.name])
        return out if name is None else out[name]
