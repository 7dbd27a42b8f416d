"""Parameter states of a fit for the effect verbs: a draw of the posterior (Bayes) or a
parameter vector around the ML estimate, read the same way by every quantity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bayesglmm.errors import ArgumentError

RE = Literal["conditional", "none", "marginal"]
Type = Literal["response", "link"]
MLMethod = Literal["delta", "simulation"]


# ---------------------------------------------------------------------------- parameter states
@dataclass
class _State:
    """Draws of every parameter, duck-typed as a fit for :mod:`bayesglmm.interpret.predict`."""

    design: Any
    beta: np.ndarray  # (S, k)
    covs: list[np.ndarray]  # per block (S, p, p)
    ranefs: list[np.ndarray]  # per block (S, L, p)
    is_bayesian: bool

    @property
    def n_samples(self) -> int:
        return int(self.beta.shape[0])

    def draws_fixed(self) -> np.ndarray:
        return self.beta

    def draws_cov(self, i: int) -> np.ndarray:
        return self.covs[i]

    def draws_ranef(self, i: int) -> np.ndarray:
        if self.ranefs[i].shape[0] == self.n_samples:
            return self.ranefs[i]
        return np.broadcast_to(self.ranefs[i], (self.n_samples, *self.ranefs[i].shape[1:]))


def draws_label(fit: Any) -> str:
    """The ``method`` of quantities computed from a fit's draws: ``"posterior draws"``, or
    ``"bootstrap draws"`` for a :meth:`GLMMFit.bootstrap` fit (parametric bootstrap)."""
    return "bootstrap draws" if fit.options.get("bootstrap") else "posterior draws"


def _bayes_state(fit: Any) -> _State:
    nb = len(fit.design.blocks)
    return _State(
        fit.design,
        fit.draws_fixed(),
        [fit.draws_cov(i) for i in range(nb)],
        [fit.draws_ranef(i) for i in range(nb)],
        True,
    )


class _MLParams:
    """The ML estimate as a flat vector ``[beta, theta_free]`` with its covariance ``V``."""

    def __init__(self, fit: Any) -> None:
        from bayesglmm.engines.ml.pirls import ThetaLayout

        ml = fit.ml
        self.fit = fit
        self.design = fit.design
        self.layout = ThetaLayout.from_blocks(fit.design.blocks)
        self.beta = np.asarray(ml.beta, dtype=float)
        self.theta = np.asarray(ml.theta, dtype=float)
        self.k = self.beta.size
        # theta is relative to sigma for the gaussian family and PQL (lme4 / lme)
        self.scale2 = float(ml.sigma) ** 2 if ml.sigma is not None else 1.0
        self.ranefs = [np.asarray(m, dtype=float)[None] for m in ml.modes]
        self.fixed_cov = [np.asarray(c, dtype=float)[None] for c in ml.covariances]
        H = getattr(ml, "hessian", None)
        nt = self.theta.size
        self.theta_free = np.zeros(nt, dtype=bool)
        V = np.asarray(ml.vcov_beta, dtype=float)
        self.with_theta = False
        if H is not None and ml.method == "ml" and ml.sigma is None:
            H = np.asarray(H, dtype=float)
            free = np.concatenate(
                [~(self.theta <= self.layout.lower_bounds() + 1e-10), np.ones(self.k, bool)]
            )
            try:
                Vf = 2.0 * np.linalg.inv(H[np.ix_(free, free)])
                Vf = 0.5 * (Vf + Vf.T)
                if np.all(np.isfinite(Vf)) and np.all(np.linalg.eigvalsh(Vf) > 0):
                    # the Hessian's order is [theta_free, beta]; ours is [beta, theta_free]
                    tf = free[:nt]
                    ntf = int(tf.sum())
                    perm = np.r_[np.arange(ntf, ntf + self.k), np.arange(ntf)]
                    V = Vf[np.ix_(perm, perm)]
                    self.theta_free = tf
                    self.with_theta = True
            except np.linalg.LinAlgError:
                pass
        if not np.all(np.isfinite(V)):
            raise ArgumentError(
                "the ML fit has no finite covariance of the fixed effects (see fit.ml.messages); "
                "intervals are unavailable: refit, or use a Bayesian method"
            )
        self.V = V
        self.point = np.concatenate([self.beta, self.theta[self.theta_free]])

    def state(self, P: np.ndarray) -> _State:
        """A state with one draw per row of ``P`` (``[beta, theta_free]`` vectors)."""
        P = np.atleast_2d(P)
        S = P.shape[0]
        beta = P[:, : self.k]
        if not self.with_theta:
            covs = [np.broadcast_to(c, (S, *c.shape[1:])) for c in self.fixed_cov]
        else:
            theta = np.broadcast_to(self.theta, (S, self.theta.size)).copy()
            theta[:, self.theta_free] = P[:, self.k :]
            facs = [self.layout.factors(t) for t in theta]
            covs = [
                self.scale2 * np.stack([f[i] @ f[i].T for f in facs])
                for i in range(len(self.design.blocks))
            ]
        return _State(self.design, beta, covs, self.ranefs, False)
