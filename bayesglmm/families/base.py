"""The family contract: :class:`FamilySpec` (one subclass per family) and :class:`Family`.

A :class:`FamilySpec` is everything the package knows about one response distribution:
its links, variance function, log-likelihood and its derivatives in ``eta``, the response
check, dispersion parameter(s) with their transform and default prior, simulation (for
PPC and SBC), the latent-scale variance (ICC, Nakagawa's R2), the residual pieces and the
name of the Numba row kernel that the fused engines use.  The engines, PPC, residuals and
ICC read these; none of them branches on a family's name.

:class:`Family` is the small value users and :class:`~bayesglmm.design.types.Design` hold:
a registered family name and one of its links.  Its methods forward to the spec with the
link filled in.  ``FAMILIES`` (filled by :mod:`bayesglmm.families.registry`) maps names to
specs; see ``docs/architecture.md`` ("Families") for how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bayesglmm.errors import DesignError, InferenceError
from bayesglmm.families.links import Link, get_link

__all__ = ["FAMILIES", "Dispersion", "Family", "FamilySpec", "register"]

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


@dataclass(frozen=True)
class Dispersion:
    """One dispersion parameter of a family.

    Parameters
    ----------
    name : str
        Its name as users see it, and its posterior variable name (gaussian ``"sigma"``).
    prior : tuple of (str, dict)
        Default prior rule: distribution name and parameters, where a parameter value given
        as ``("s_y", c)`` means ``c`` times the family's response scale ``s_y``
        (:meth:`FamilySpec.response_scale`), as in ``priors.py``'s defaults.
    transform : {"log"}
        Map to the unconstrained scale the engines optimise and sample on.
    label : str, optional
        How a printed fit names it when that differs from ``name`` (the negative binomial's
        ``shape`` is printed as lme4's ``theta``).
    """

    name: str
    prior: tuple[str, dict[str, Any]]
    transform: str = "log"
    label: str | None = None

    def to_unconstrained(self, value: Array | float) -> Array:
        """The parameter on the unconstrained scale."""
        return np.log(np.asarray(value, dtype=float))

    def from_unconstrained(self, u: Array | float) -> Array:
        """Inverse of :meth:`to_unconstrained`."""
        return np.exp(np.asarray(u, dtype=float))

    def default_prior(self, s_y: float) -> tuple[str, dict[str, float]]:
        """``(distribution, parameters)`` of the default prior for response scale ``s_y``."""
        dist, params = self.prior
        out = {k: (v[1] * s_y if isinstance(v, tuple) else float(v)) for k, v in params.items()}
        return dist, out


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


FAMILIES: dict[str, FamilySpec] = {}
ALIASES: dict[str, str] = {}


def register(spec: FamilySpec, aliases: tuple[str, ...] = ()) -> FamilySpec:
    """Add ``spec`` (and its aliases) to the registry; returns it."""
    for lk in spec.links:
        get_link(lk)
    if spec.canonical_link not in spec.links:
        raise ValueError(f"{spec.name}: canonical link {spec.canonical_link} not in its links")
    FAMILIES[spec.name] = spec
    for a in aliases:
        ALIASES[a] = spec.name
    return spec


def unregister(name: str) -> None:
    """Remove a family and its aliases (tests registering a toy family)."""
    FAMILIES.pop(name, None)
    for a in [a for a, n in ALIASES.items() if n == name]:
        del ALIASES[a]


def resolve_name(name: str) -> str:
    """The registered name of ``name`` (aliases resolved, case-insensitive), or the error."""
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in FAMILIES:
        raise DesignError(f"unknown family `{name}`; choose one of {', '.join(sorted(FAMILIES))}")
    return key


@dataclass(frozen=True)
class Family:
    """A response distribution with its link function.

    Parameters
    ----------
    name : str
        A registered family name (``bayesglmm.families.family_names()``).
    link : str
        Link name; must be one of the family's links.
    """

    name: str
    link: str

    def __post_init__(self) -> None:
        if self.name not in FAMILIES:
            raise DesignError(
                f"unknown family `{self.name}`; choose one of {', '.join(sorted(FAMILIES))}"
            )
        links = FAMILIES[self.name].links
        if self.link not in links:
            raise DesignError(
                f"link `{self.link}` is not available for family `{self.name}`; "
                f"choose one of {', '.join(links)}"
            )

    # ---------------------------------------------------------------- lookups
    @property
    def spec(self) -> FamilySpec:
        """The registered :class:`FamilySpec`."""
        return FAMILIES[self.name]

    @property
    def link_fn(self) -> Link:
        """The :class:`~bayesglmm.families.links.Link` object."""
        return get_link(self.link)

    @property
    def is_binomial(self) -> bool:
        """True for bernoulli and binomial (trials-based) families."""
        return self.spec.is_binomial

    @property
    def canonical(self) -> bool:
        """True when the link is the family's canonical link."""
        return self.spec.canonical_link == self.link

    @property
    def dispersion(self) -> tuple[Dispersion, ...]:
        """The family's dispersion parameters (empty when it has none)."""
        return self.spec.dispersion

    @property
    def has_dispersion(self) -> bool:
        """True when the family has a free dispersion parameter (gaussian)."""
        return bool(self.spec.dispersion)

    @property
    def is_linear(self) -> bool:
        """The linear (mixed) model: a ``linear_model`` family with the identity link."""
        return self.spec.linear_model and self.link == "identity"

    @property
    def row_kernel(self) -> str | None:
        """Name of the Numba row kernel for this family/link, or None (NumPy paths)."""
        return self.spec.row_kernels.get(self.link)

    def check_engine(self, engine: str) -> None:
        """Raise a clear :class:`~bayesglmm.errors.InferenceError` if ``engine`` does not
        fit this family."""
        self.spec.check_engine(engine)

    # ---------------------------------------------------------------- link maps
    def linkinv(self, eta: Array) -> Array:
        """Mean of one trial (probability) or count/mean, from the linear predictor."""
        return self.link_fn.linkinv(np.asarray(eta, dtype=float))

    def linkfun(self, mu: Array) -> Array:
        """Linear predictor from the mean."""
        return self.link_fn.linkfun(np.asarray(mu, dtype=float))

    def mu_eta(self, eta: Array) -> Array:
        """Derivative of the inverse link, d mu / d eta."""
        return self.link_fn.mu_eta(np.asarray(eta, dtype=float))

    # ---------------------------------------------------------------- likelihood
    def loglik(
        self,
        y: Array,
        eta: Array,
        trials: Array | None = None,
        sigma: Any = 1.0,
        weights: Array | None = None,
    ) -> Array:
        """Per-observation log-likelihood, including normalizing constants (as R's ``logLik``).

        Parameters
        ----------
        y : ndarray
            Response: 0/1, successes, counts or real values.
        eta : ndarray
            Linear predictor (same shape as ``y`` or broadcastable).
        trials : ndarray, optional
            Number of trials for the binomial family.
        sigma : float
            The dispersion (gaussian residual SD).
        weights : ndarray, optional
            Prior weights (lme4's): case weights multiplying each row's log-likelihood, or
            for the gaussian precision weights, ``N(y | mu, sigma^2 / w)``; a zero weight
            gives 0.
        """
        return self.spec.loglik(self.link_fn, y, eta, trials, sigma, weights)

    def score_weights(
        self, y: Array, eta: Array, trials: Array | None = None, sigma: Any = None
    ) -> tuple[Array, Array]:
        """First derivative of the log-likelihood in ``eta`` and the Fisher weight
        (``sigma``: the dispersion of a family with one whose score needs it, negative
        binomial ``theta``; forwarded only when given).

        ``sigma``: the dispersion value, for a family that has one (None otherwise).

        Returns
        -------
        d1 : ndarray
            ``d loglik / d eta`` per observation.
        w : ndarray
            Expected information ``n * mu_eta**2 / V(mu)`` per observation (for the gaussian,
            1, to be divided by the residual variance by the caller).
        sigma : optional
            The dispersion argument, for families whose score depends on it (Beta,
            Student-t); omitted for the others.
        """
        if sigma is None:
            return self.spec.score_weights(self.link_fn, y, eta, trials)
        return self.spec.score_weights(self.link_fn, y, eta, trials, sigma)

    def variance(self, mu: Array, trials: Array | None = None) -> Array:
        """Variance of the response given its mean (per trial count for the binomial)."""
        return self.spec.variance(mu, trials)

    def simulate(
        self,
        rng: np.random.Generator,
        eta: Array,
        trials: Array | None = None,
        dispersion: dict[str, Any] | None = None,
        weights: Array | None = None,
    ) -> Array:
        """Responses drawn given linear predictors ``eta`` (see :meth:`FamilySpec.simulate`)."""
        return self.spec.simulate(rng, self.link_fn, eta, trials, dispersion or {}, weights)
