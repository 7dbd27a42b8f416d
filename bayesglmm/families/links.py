"""Link functions: one :class:`Link` object per link (NumPy only).

Each link carries its inverse (``linkinv``), its derivative ``d mu / d eta`` (``mu_eta``),
the link itself (``linkfun``) and, for the links of a latent-threshold model (the
binomial's), the variance of the standard latent error used by the ICC and Nakagawa's
R2 (logit ``pi^2 / 3``, probit 1, cloglog ``pi^2 / 6``).  Families list the links they
allow by name (:attr:`~bayesglmm.families.base.FamilySpec.links`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from bayesglmm.errors import DesignError

__all__ = ["LINKS", "Link", "get_link"]

Array = np.ndarray


@dataclass(frozen=True)
class Link:
    """One link function ``eta = g(mu)``.

    Parameters
    ----------
    name : str
        The link's name (``"logit"``, ``"log"``, ...).
    linkinv, mu_eta, linkfun : callable
        ``mu = g^-1(eta)``, ``d mu / d eta`` and ``eta = g(mu)``, elementwise on arrays.
    latent_variance : float, optional
        Variance of the standard latent error of a threshold model with this link (binomial
        families), None where the link has none.
    """

    name: str
    linkinv: Callable[[Array], Array]
    mu_eta: Callable[[Array], Array]
    linkfun: Callable[[Array], Array]
    latent_variance: float | None = None


def _logit_mu_eta(eta: Array) -> Array:
    p = special.expit(eta)
    return p * (1.0 - p)


def _exp(eta: Array) -> Array:
    return np.exp(np.minimum(eta, 700.0))


def _cloglog_inv(eta: Array) -> Array:
    return -np.expm1(-np.exp(np.minimum(eta, 700.0)))


def _cloglog_mu_eta(eta: Array) -> Array:
    e = np.minimum(eta, 700.0)
    return np.exp(e - np.exp(e))


def _probit_mu_eta(eta: Array) -> Array:
    return np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi)


def _recip(x: Array) -> Array:
    return 1.0 / np.asarray(x, dtype=float)


def _inverse_mu_eta(eta: Array) -> Array:
    eta = np.asarray(eta, dtype=float)
    return -1.0 / (eta * eta)


def _identity(x: Array) -> Array:
    return np.asarray(x, dtype=float)


def _one(eta: Array) -> Array:
    return np.ones_like(eta, dtype=float)


LINKS: dict[str, Link] = {
    "logit": Link("logit", special.expit, _logit_mu_eta, special.logit, math.pi**2 / 3.0),
    "probit": Link("probit", special.ndtr, _probit_mu_eta, special.ndtri, 1.0),
    "cloglog": Link(
        "cloglog",
        _cloglog_inv,
        _cloglog_mu_eta,
        lambda mu: np.log(-np.log1p(-mu)),
        math.pi**2 / 6.0,
    ),
    "log": Link("log", _exp, _exp, np.log),
    "identity": Link("identity", _identity, _one, _identity),
    "inverse": Link("inverse", _recip, _inverse_mu_eta, _recip),  # Gamma's canonical link
}


def get_link(name: str) -> Link:
    """The :class:`Link` called ``name``; :class:`~bayesglmm.errors.DesignError` if none."""
    try:
        return LINKS[name]
    except KeyError:
        raise DesignError(
            f"unknown link `{name}`; choose one of {', '.join(sorted(LINKS))}"
        ) from None
