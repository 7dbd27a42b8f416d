"""The family contract: :class:`FamilySpec`, one subclass per family.

A :class:`FamilySpec` is everything the package knows about one response distribution:
its links, variance function, log-likelihood and its derivatives in ``eta``, the response
check, dispersion parameter(s) with their transform and default prior
(:class:`~bayesglmm.families.dispersion.Dispersion`), simulation (for PPC and SBC), the
latent-scale variance (ICC, Nakagawa's R2), the residual pieces and the name of the Numba
row kernel that the fused engines use.  The engines, PPC, residuals and ICC read these; none
of them branches on a family's name.

:class:`~bayesglmm.families.family.Family` is the small value users and
:class:`~bayesglmm.design.types.Design` hold (a registered name and one of its links);
:mod:`bayesglmm.families.registered` is the table of registered specs, filled by
:mod:`bayesglmm.families.registry`; see ``docs/architecture.md`` ("Families") for how to
add one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bayesglmm.errors import InferenceError
from bayesglmm.families.dispersion import Dispersion
from bayesglmm.families.links import Link

__all__ = ["Dispersion", "FamilySpec"]  # Dispersion: where the family modules import it

Array = np.ndarray
_EPS = 1e-12


def row_prep_none(d0: float, d1: float) -> tuple[float, float, float, float]:
    """The per-evaluation constants of a row function without a dispersion (none).

    A family's NUTS row kernel is a pair of scalar functions, compiled by the engines
    (``engines/bayes/row_dispatch.py``): ``prep(d0, d1) -> c`` from the unconstrained (log)
    dispersion values ``d0``, ``d1`` (0.0 when absent), once per evaluation, and
    ``row(y, w, eta, c) -> (ll, d ll / d eta, d ll / d d0, d ll / d d1)`` per row, without
    the data-only constants (:meth:`FamilySpec.row_constants`); ``w`` is the kernel's
    ``trials`` slot (binomial trials times case weights, the Poisson mean's multiplier, the
    case or precision weights).  The registry names them (``ROW_FUNCTIONS``).
    """
    return 0.0, 0.0, 0.0, 0.0


class FamilySpec:
    """Base class of one response distribution; subclass it once per family.

    Class attributes
    ----------------
    name : str
        Registered name (what ``family=`` takes).
    links : tuple of str
        Allowed links; the first is not special, :attr:`canonical_link` is the default.
    canonical_link : str
        The canonical link (observed and expected information coincide).
    dispersion : tuple of Dispersion
        Free dispersion parameters (empty for bernoulli, binomial, Poisson).
    is_binomial : bool
        Trials-based response (bernoulli, binomial): proportions, separation checks.
    row_kernels : dict
        Link -> name of the Numba row kernel in :data:`~bayesglmm.families.registry.ROW_KERNELS`
        that the fused engines (scalar Laplace, NUTS log density) use; links without an entry
        run on the NumPy paths (and the PyMC model for NUTS).
    precision_weights : bool
        Prior weights are precision weights (``sigma^2 / w``, gaussian) rather than case
        weights multiplying each row's log-likelihood.
    response_kind : {"real", "counts", "binary", "binomial"}
        Which response parser of ``design.py`` reads the response: finite reals; non-negative
        integer counts; 0/1 or a two-level factor; ``cbind(successes, failures)``, a
        proportion with ``trials=`` or ``weights=``.  Its error messages are pinned in
        ``docs/bad_input.md``.
    case_weights_fold : bool
        The log-likelihood is linear in ``(y, trials)`` up to ``eta``-free constants
        (binomial, Poisson), so the engines fold case weights into them (``w y``, ``w n``);
        otherwise a weighted row's log-likelihood and derivatives are multiplied by ``w``.
    linear_model : bool
        With the identity link this is the linear (mixed) model, which the dedicated LMM
        engines fit (profiled ML, weighted least squares; gaussian).
    separation : {"binary", "counts"} or None
        How the ML engines check the fixed effects for separation (binary/binomial
        responses; counts with zeros as failures), None for no check.
    unsupported : dict
        Engine name -> reason, for the engines that do not fit this family
        (:meth:`check_engine` raises it).
    laplace_information : {"observed", "fisher"}
        The weight of the Laplace engines' mode search and determinant for a family without
        a row kernel: the observed information (default) or, for a log-likelihood that is
        not concave in ``eta`` (Student-t), the expected (Fisher) one from
        :meth:`score_weights` (Fisher scoring, as lme4 for a non-canonical link).
    count_response : str
        Description of the response in error messages.
    wald_z : bool
        A family with a dispersion whose ML fixed-effect table shows ``z value`` as lme4
        does (``glmer.nb``); otherwise a dispersion family shows ``t value``.
    """

    name: ClassVar[str]
    links: ClassVar[tuple[str, ...]]
    canonical_link: ClassVar[str]
    dispersion: ClassVar[tuple[Dispersion, ...]] = ()
    is_binomial: ClassVar[bool] = False
    row_kernels: ClassVar[dict[str, str]] = {}
    precision_weights: ClassVar[bool] = False
    case_weights_fold: ClassVar[bool] = False
    linear_model: ClassVar[bool] = False
    response_kind: ClassVar[str] = "real"
    separation: ClassVar[str | None] = None
    unsupported: ClassVar[dict[str, str]] = {}
    laplace_information: ClassVar[str] = "observed"
    wald_z: ClassVar[bool] = False
    #: beta and the dispersion are orthogonal (the expected cross-information is 0, as for
    #: the negative binomial): a GLM's standard errors are then glm.nb's, the Fisher
    #: information in beta at the estimated dispersion; otherwise the joint observed one
    dispersion_orthogonal: ClassVar[bool] = False

    # ---------------------------------------------------------------- likelihood
    def loglik(
        self,
        link: Link,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = 1.0,
        weights: Array | None = None,
    ) -> Array:
        """Per-row log-likelihood with its normalizing constants (R's ``logLik``); prior
        ``weights`` are case weights by default (families with a precision weight override)."""
        ll = self._loglik(link, y, np.asarray(eta, dtype=float), trials, sigma)
        if weights is not None:
            return np.asarray(weights, dtype=float) * ll
        return ll

    def _loglik(self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any) -> Array:
        raise NotImplementedError

    def score_weights(
        self, link: Link, y: Array, eta: Array, trials: Array | None = None, sigma: Any = None
    ) -> tuple[Array, Array]:
        """``(d loglik / d eta, Fisher weight n mu_eta^2 / V(mu))`` per row.

        This generic version holds for any exponential-family response with the variance
        function :meth:`variance` and dispersion 1; families override it for numerically
        better forms, and families with a dispersion parameter must (``sigma`` is then its
        value, as :meth:`loglik` receives it; the engines pass it only to such families).
        """
        eta = np.asarray(eta, dtype=float)
        n = 1.0 if trials is None else trials
        mu = link.linkinv(eta)
        me = link.mu_eta(eta)
        var = np.maximum(self.variance(mu), _EPS)
        return (y - n * mu) * me / var, n * me * me / var

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        """Variance function ``V(mu)`` (times ``trials`` when given)."""
        raise NotImplementedError

    def observed_information(
        self, link: Link, y: Array, eta: Array, trials: Array | None, sigma: Any
    ) -> tuple[Array, Array] | None:
        """``(-d2 loglik / d eta2, its derivative in eta)`` per row for a non-canonical link,
        analytic; None (the default) lets the engines take differences of the score
        (``FamilyKernel.laplace_curvature``)."""
        return None

    def row_constants(self, y: Array, trials: Array) -> Array:
        """The ``eta``-free terms of each row's log-likelihood (``log choose``, ``-log y!``)."""
        return np.zeros_like(np.asarray(y, dtype=float))

    def saturated_loglik(self, y: Array, trials: Array | None) -> Array:
        """Per-row log-likelihood at ``mu = y`` (glmer's AGQ deviance); 0 where not used."""
        return np.zeros_like(np.asarray(y, dtype=float))

    # ---------------------------------------------------------------- data
    def check_response(self, values: Array, trials: Array | None) -> tuple[Array, str]:
        """``(bad, what)``: a mask of rows whose response the family cannot take and the
        phrase that completes "the response ..." in the error (finite values are checked
        before)."""
        return np.zeros(values.shape, dtype=bool), ""

    def response_scale(self, design: Any) -> tuple[float, float]:
        """``(s_y, intercept location)`` of the default priors (``priors.py``)."""
        raise NotImplementedError

    def dispersion_start(self, y: Array, mu: Array) -> tuple[float, ...]:
        """Starting values of the dispersion parameters (natural scale) given fitted means."""
        return ()

    def dispersion_arg(self, disp: dict[str, Any]) -> Any:
        """The ``sigma`` argument of this family's functions (``loglik``,
        ``pearson_variance``, ``data_scale_icc_part``) from its dispersion values by name:
        the only one for a family with one (gaussian ``sigma``), None for none; a family
        with several overrides it (Student-t: the tuple ``(sigma, nu)``)."""
        return next(iter(disp.values())) if disp else None

    def latent_dispersion(self, disp: dict[str, Any]) -> Any:
        """The ``sigma2`` argument of :meth:`distribution_variance` from the dispersion
        values by name: the square of the only one (gaussian ``sigma^2``), None for none."""
        v = self.dispersion_arg(disp)
        return None if v is None else np.asarray(v, dtype=float) ** 2

    def start_mean(self, y: Array, trials: Array | None) -> float:
        """A starting mean response on the data scale (per trial), inside the support."""
        return max(float(np.mean(y)), 0.01)

    # ---------------------------------------------------------------- simulation
    def simulate(
        self,
        rng: np.random.Generator,
        link: Link,
        eta: Array,
        trials: Array | None,
        dispersion: dict[str, Any],
        weights: Array | None = None,
    ) -> Array:
        """Responses drawn given linear predictors ``eta`` (any shape broadcasting to rows);
        ``dispersion`` maps each :attr:`dispersion` name to its value(s)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- interpretation
    def latent_mean(self, link: Link, eta: Array) -> Array | None:
        """The data-scale mean the latent variance needs (Poisson ``lambda``), else None."""
        return None

    def distribution_variance(
        self, link: Link, lam: Any, method: str, sigma2: Any
    ) -> Array | float:
        """Distribution-specific variance on the latent scale (ICC, Nakagawa's R2)."""
        raise NotImplementedError

    def data_scale_icc_part(
        self, link: Link, mean_eta: Array, v: Array, sigma: Any
    ) -> tuple[Array, Array]:
        """``(between, within)`` variances on the data scale for a latent RE variance ``v``."""
        x, w = np.polynomial.hermite_e.hermegauss(40)
        w = w / w.sum()
        p = link.linkinv(mean_eta[:, None] + np.sqrt(v)[:, None] * x[None, :])
        ep = p @ w
        return (p**2) @ w - ep**2, self.variance(p) @ w

    def residual_sd(self, disp: Array) -> Array | None:
        """lme4's ``sigma(fit)`` (the ``Residual`` row of ``VarCorr``) from the draws or the
        estimate of the first dispersion parameter; the gaussian's (and the t's scale) is
        ``sigma`` itself; None where the dispersion is no residual SD (NB, Beta)."""
        return disp if self.dispersion and self.dispersion[0].name == "sigma" else None

    def dispersion_from_phi(self, phi: float) -> tuple[float, ...]:
        """The family's dispersion parameters from the quasi-likelihood dispersion ``phi``
        (``Var = phi V(mu)``) that PQL estimates; empty where they are not a function of it."""
        return ()

    def dispersion_note(self, disp: dict[str, float]) -> str | None:
        """A line for ``print(fit)`` on the dispersion (estimates by name), None for none."""
        return None

    def pearson_variance(self, mu: Array, n: Array, sigma: Any) -> Array:
        """Variance of each row's response at fitted mean ``mu`` (counts for binomial rows)."""
        return self.variance(mu)

    def unit_deviance(self, y: Array, mu: Array, n: Array, sigma: Any = None) -> Array:
        """Per-row deviance contribution (squared deviance residual) at mean ``mu``;
        ``sigma`` is the family's (first) dispersion when it has one (negative binomial
        ``theta``), else None."""
        raise NotImplementedError

    # ---------------------------------------------------------------- PyMC
    # (PyMC is imported by these methods only: the package imports families without it)
    def pymc_row_dist(self, link: Link, eta: Any, n: Any, disp: dict[str, Any]) -> Any:
        """The (unweighted) PyMC distribution of each row given ``eta`` (``pm.X.dist``)."""
        raise NotImplementedError

    def pymc_observed(
        self, link: Link, eta: Any, n: Any, disp: dict[str, Any], observed: Any, dims: str
    ) -> Any:
        """The observed variable ``y`` of the unweighted model."""
        import pymc as pm

        return pm.CustomDist(
            "y",
            eta,
            dist=lambda eta, size: self.pymc_row_dist(link, eta, n, disp),
            observed=observed,
            dims=dims,
        )

    def pymc_weighted_logp(
        self, link: Link, value: Any, eta: Any, w: Any, n: Any, disp: dict[str, Any]
    ) -> Any:
        """Prior-weighted row log density: case weights ``w * logp`` by default."""
        import pymc as pm

        return w * pm.logp(self.pymc_row_dist(link, eta, n, disp), value)

    def pymc_weighted_dist(
        self, link: Link, eta: Any, w: Any, n: Any, disp: dict[str, Any], size: Any
    ) -> Any:
        """Random draws of a weighted row (case weights: the row's own distribution)."""
        return self.pymc_row_dist(link, eta, n, disp)

    # ---------------------------------------------------------------- engines
    def check_engine(self, engine: str) -> None:
        """Raise :class:`~bayesglmm.errors.InferenceError` if ``engine`` does not fit it."""
        if engine in self.unsupported:
            raise InferenceError(self.unsupported[engine])
