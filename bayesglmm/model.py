"""The user-facing model object: formula + data + family + priors -> fits by any method."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.design.build import build_design
from bayesglmm.design.types import Design
from bayesglmm.engines.registry import EngineContext, check_fit_options, get_engine
from bayesglmm.errors import ArgumentError
from bayesglmm.families import Family
from bayesglmm.fit.health import check_health
from bayesglmm.fit.loo import attach_log_likelihood
from bayesglmm.fit.results import GLMMFit
from bayesglmm.io import read_fit
from bayesglmm.priors import PriorSet, resolve_priors
from bayesglmm.validate import (
    PRIOR_PREDICTIVE_OPTIONS,
    check_options,
    check_response,
    engine_boundary,
)


def load_fit(path: str | Path) -> GLMMFit:
    """Load a fit written by :meth:`GLMMFit.save`.

    The design is rebuilt from the saved typed columns and compared with the saved
    description and checksums of the design the fit used; the posterior file must be the
    one saved with this fit.

    Raises
    ------
    SaveLoadError
        If the directory is not a saved fit or comes from an incompatible version.
    SavedFitCorruptError
        A file is unreadable, truncated or changed after saving (named).
    SavedFitMismatchError
        The rebuilt design differs from the saved one (what differs is named), or the
        posterior comes from another fit.
    """
    return read_fit(path, GLMMFit, GLMM)


class GLMM:
    """A generalized linear mixed model with an lme4-style formula.

    Parameters
    ----------
    formula : str
        E.g. ``"y ~ x + (1 + x | g)"``; see :func:`bayesglmm.formula.bars.parse_formula`.
    data : pandas.DataFrame
        The data.
    family : {"bernoulli", "binomial", "poisson", "gaussian"}
        Response distribution.
    link : str, optional
        Link function (canonical by default; ``probit``/``cloglog`` for binomial families).
    trials : str or array, optional
        Trials column for a binomial proportion response.
    weights : str or array, optional
        Prior weights as in lme4 (a column name or one value per row, finite, ``>= 0``):
        the numbers of trials of a binomial proportion response; case weights multiplying
        each row's log-likelihood for bernoulli, binomial (``cbind``) and Poisson; precision
        weights (residual variance ``sigma^2 / w``) for gaussian.  See ``docs/weights.md``.
    offset : str or array, optional
        A column name or one value per row, added to the linear predictor together with
        any ``offset()`` terms of the formula (lme4's ``offset=``).
    priors : mapping, optional
        Prior overrides, see :mod:`bayesglmm.priors`.
    centered : bool
        Centred parameterization of the random effects (default False: non-centred), for
        every NUTS sampler and ADVI.

    Examples
    --------
    >>> import bayesglmm as bg
    >>> df = bg.datasets.load("toenail")
    >>> model = bg.GLMM("outcome ~ treatment * time + (1 | patientID)", df, family="bernoulli")
    >>> fit = model.fit(method="ml")  # doctest: +SKIP
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        family: str | Family = "gaussian",
        *,
        link: str | None = None,
        trials: str | np.ndarray | None = None,
        priors: Mapping[str, Any] | None = None,
        centered: bool = False,
        weights: str | np.ndarray | None = None,
        offset: str | np.ndarray | None = None,
    ) -> None:
        if priors is not None and not isinstance(priors, Mapping):
            raise ArgumentError(
                f"GLMM(): `priors` must be a dict of prior overrides (e.g. {{'fixed': "
                f"bg.Prior('Normal', mu=0, sigma=1)}}) or None; got {type(priors).__name__}"
            )
        if not isinstance(centered, bool | np.bool_):
            raise ArgumentError(
                f"GLMM(): `centered` must be True or False; got {centered!r} "
                f"({type(centered).__name__})"
            )
        self.formula = formula
        self._data_frame = data
        self.design: Design = build_design(
            formula, data, family, link=link, trials=trials, weights=weights, offset=offset
        )
        # the used columns as they are now (copy-on-write: later edits of `data` do not
        # reach it), so `fit.save` stores the data the fit used
        self._used_frame = data.loc[:, list(self.design.encoder.dtypes)]
        self.family = self.design.family
        self.prior_spec = dict(priors or {})
        self.priors: PriorSet = resolve_priors(self.design, self.prior_spec)
        self.centered = bool(centered)
        self.trials = trials
        self.weights = weights
        self.offset = offset
        self._pymc_model: Any = None
        self._pymc_template: Any = None  # a parent's PyMC model to clone (with_response)
        self._kernel: Any = None

    def __repr__(self) -> str:
        d = self.design
        groups = ", ".join(f"{b.group} ({b.n_levels})" for b in d.blocks) or "none (a GLM)"
        return (
            f"GLMM({self.formula!r}, family={d.family.name}/{d.family.link}, n={d.n}, "
            f"groups: {groups})"
        )

    def with_response(self, y: Any) -> GLMM:
        """The same model with a new response vector (same rows, design and priors).

        The new model shares nothing mutable with this one, so both may be fitted at the
        same time in different threads.  Refits stay cheap: the fused NUTS kernel's layout
        (read-only arrays; the response is passed per fit) is shared, and the PyMC model,
        if this model has built one, is cloned with the new response when first needed
        (milliseconds) rather than rebuilt.

        Parameters
        ----------
        y : array-like, shape (design.n,)
            One value per row the model uses (rows dropped for missing values excluded), in
            the model's row order: finite numbers; non-negative integer counts (poisson),
            0/1 (bernoulli), or integer successes up to each row's trials (binomial).

        Raises
        ------
        ArgumentError
            ``y`` of another shape or length, or holding a value that is not a number.
        DataError
            A value the family cannot have (NaN, inf, a negative or fractional count, a
            bernoulli value other than 0/1, more successes than trials), named with its
            position and data row.
        """
        d = self.design
        labels = None
        if d.row_index is not None and len(d.row_index) == d.n:
            labels = self._used_frame.index[np.asarray(d.row_index)]
        values = check_response(y, d.n, d.family.name, trials=d.trials, row_labels=labels)
        # the design is replaced (its arrays other than y are shared and never written; the
        # design-time separation check was for the old response); the fused kernel's layout
        # is shared (read-only, the response is passed per fit); the PyMC model is not: the
        # copy clones its parent's on first use (build), so fits of the two in parallel
        # threads cannot see each other's response
        new = copy.copy(self)
        new.design = replace(d, y=np.asarray(values, dtype=float), separation=None)
        built = self._pymc_model
        new._pymc_template = built if built is not None else self._pymc_template
        new._pymc_model = None
        return new

    # ------------------------------------------------------------------ PyMC
    def build(self) -> Any:
        """This model's PyMC model (built once and cached), for users who want to extend it.

        Every ``GLMM`` has its own PyMC model: one made by :meth:`with_response` gets a
        clone of its parent's (extensions included) holding its own response, so fits of
        different models never see each other's data.
        """
        from bayesglmm.engines.pytensor_lock import PYTENSOR_LOCK

        with PYTENSOR_LOCK:  # pm.set_data and model building evaluate small graphs
            return self._build()

    def _build(self) -> Any:
        if self._pymc_model is None:
            template = getattr(self, "_pymc_template", None)
            if template is not None:
                import pymc as pm
                from pymc.model.fgraph import clone_model

                built = clone_model(template)
                pm.set_data({"y_obs": self.design.y}, model=built)
            else:
                from bayesglmm.engines.bayes.pymc_model import build_pymc_model

                built = build_pymc_model(self.design, self.priors, centered=self.centered)
            self._pymc_model = built
            self._pymc_template = None
        return self._pymc_model

    def sample_prior_predictive(
        self, draws: int = 500, random_seed: Any = None, **kwargs: Any
    ) -> Any:
        """Draws from the prior and the prior predictive.

        Parameters
        ----------
        draws : int
            Number of draws (>= 1).
        random_seed : int or numpy.random.Generator, optional
            None, an integer in [0, 2**63 - 1] or a Generator; the same seed gives the
            same draws.
        **kwargs
            None are accepted: an unknown keyword is an error (with close matches).

        Returns
        -------
        xarray.DataTree
            Groups ``prior`` and ``prior_predictive``.

        Raises
        ------
        ArgumentError
            Before any work, for an unknown keyword (with close matches) or a value outside
            its range.
        """
        import pymc as pm

        opts = check_options(
            "sample_prior_predictive(): ",
            PRIOR_PREDICTIVE_OPTIONS,
            {"draws": draws, "random_seed": random_seed, **kwargs},
        )
        from bayesglmm.engines.pytensor_lock import PYTENSOR_LOCK

        with self.build(), PYTENSOR_LOCK:
            return pm.sample_prior_predictive(
                draws=opts["draws"], random_seed=opts.get("random_seed")
            )

    def plot_prior_predictive(self, draws: int = 500, random_seed: int | None = 0) -> Any:
        """Prior predictive check figure; see :func:`bayesglmm.interpret.check_plots.plot_prior_predictive`.
        ``prior_summary()`` lists the priors it draws from."""
        from bayesglmm.interpret.check_plots import plot_prior_predictive

        return plot_prior_predictive(self, draws=draws, random_seed=random_seed)

    def prior_summary(self) -> Any:
        """The priors this model uses (class, term, prior), before any fit."""
        import pandas as pd

        return pd.DataFrame(self.priors.table(), columns=["class", "term", "prior"])

    def kernel_layout(self) -> Any:
        """The fused NUTS kernel's layout (cached), or None when the model is outside it."""
        if self._kernel is None:
            from bayesglmm.engines.bayes.kernel_layout import kernel_layout

            self._kernel = kernel_layout(self.design, self.priors, centered=self.centered) or False
        return self._kernel or None

    # ------------------------------------------------------------------ fitting
    @engine_boundary
    def fit(self, method: str = "nuts", **kwargs: Any) -> GLMMFit:
        """Fit the model.

        Parameters
        ----------
        method : str
            A registered engine (:func:`bayesglmm.engines.registry.method_names`); the
            built-in ones are ``nuts``, ``ml``, ``pql``, ``laplace``, ``advi`` and
            ``fullrank_advi``.
            ``nuts``: NUTS (``draws``, ``tune``, ``chains``, ``cores``, ``random_seed``,
            ``sampler``, ``target_accept``, ``progressbar``).  ``sampler="auto"`` (default)
            runs nutpie's Rust NUTS on a fused Numba log density when the model allows
            (non-centred, logit/log/identity link), else PyMC's NUTS;
            see :func:`bayesglmm.engines.bayes.pymc_nuts.resolve_sampler`.
            ``ml``: maximum likelihood by Laplace (``nagq=1``) or adaptive Gauss-Hermite
            quadrature (``nagq>1``, one grouping factor only: one scalar term, or 2 or 3
            correlated terms on the ``nagq^q`` tensor-product rule with ``nagq <= 25``
            for 2 terms and ``nagq <= 11`` for 3, gradient by finite differences).
            ``pql``: penalized quasi-likelihood (``dispersion="estimate"|"fixed"``).
            ``laplace``: Bayesian fast path with the random effects integrated out.
            ``advi``/``fullrank_advi``: PyMC variational inference.
            A formula without random-effect terms (``y ~ x``) is a GLM, fitted by every
            method (:mod:`bayesglmm.engines.glm`): ``ml`` by IRLS to the exact MLE (any
            ``nagq``: there is nothing to integrate), ``pql`` by IRLS, ``laplace`` as one
            Gaussian at the posterior mode (gaussian included), ``nuts`` and the ADVIs as
            usual; ``fit.options["notes"]`` and the printed fit say so.
        **kwargs
            Method options.  Bayesian methods also take ``log_likelihood`` (default True):
            store the pointwise log-likelihood in ``idata["log_likelihood"]`` for LOO and
            WAIC.  Refit loops that do not need it (SBC, bootstraps) can pass False: it
            costs one pass over rows x draws (~0.3 s for 8,525 rows x 2,000 draws), and
            :meth:`GLMMFit.loo` computes it on demand anyway.

            Ctrl-C during a ``nuts``, ``advi`` or ``fullrank_advi`` fit raises
            KeyboardInterrupt.  With ``allow_partial=True`` it instead returns a fit of the
            draws made so far (NUTS: equal-length chains, truncated to keep the most draws,
            never NaN padding; ADVI: the approximation at that iteration) with a
            :class:`~bayesglmm.errors.PartialFitWarning`; ``fit.options["partial"]`` then
            records what was asked for and what was kept, and ``options["draws"]`` /
            ``options["chains"]`` give what the fit holds.  An interrupt before the first
            posterior draw (during tuning) raises :class:`~bayesglmm.errors.InferenceError`.

        Returns
        -------
        GLMMFit
            ``elapsed`` is the wall time of the whole fit, post-processing included.

        Raises
        ------
        ArgumentError
            Before any work, for an unknown method or option (with close matches) or a
            value outside its range; each engine's table is in
            :mod:`bayesglmm.engines.registry`.
        InferenceError
            When an engine fails; an exception from a dependency is re-raised as one, with
            the original chained (:func:`bayesglmm.validate.engine_boundary`).
        """
        engine = get_engine(method)
        # every argument checked before any work (the engine's table of options)
        kwargs = check_fit_options(method, kwargs)
        t0 = time.perf_counter()
        store_loglik = bool(kwargs.pop("log_likelihood", True))
        options: dict[str, Any] = {**engine.defaults, **kwargs}
        context = EngineContext(
            centered=self.centered, pymc_model=self.build, kernel_layout=self.kernel_layout
        )
        result = engine.fit(self.design, self.priors, dict(options), context)
        info = result.info
        if not self.design.blocks:
            # say it in every fit of a model without random effects (ML engines also put it
            # first among their messages); Bayesian Laplace adds its own notes
            from bayesglmm.engines.glm import GLM_NOTE

            if GLM_NOTE not in info.messages:
                info.messages.insert(0, GLM_NOTE)
        idata = result.draws
        fit = GLMMFit(
            self.design,
            self.priors,
            method,
            idata=idata,
            ml=result.estimate,
            elapsed=time.perf_counter() - t0,
            options=options,
            info=info,
            health=check_health(idata) if method == "nuts" else None,
            model=self,
        )
        if idata is not None and store_loglik:
            attach_log_likelihood(fit)
        fit.elapsed = time.perf_counter() - t0
        return fit
