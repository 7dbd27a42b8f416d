"""``Family(name, link)``: the value users and a :class:`~bayesglmm.design.types.Design`
hold, a registered family name and one of its links; its methods forward to the family's
:class:`~bayesglmm.families.base.FamilySpec` with the link filled in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesglmm.errors import DesignError
from bayesglmm.families.base import FamilySpec
from bayesglmm.families.dispersion import Dispersion
from bayesglmm.families.links import Link, get_link
from bayesglmm.families.registered import FAMILIES

__all__ = ["Family"]

Array = np.ndarray


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
