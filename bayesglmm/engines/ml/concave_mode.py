"""The conditional-mode search for a log-likelihood that is not concave in ``eta``.

:func:`~bayesglmm.engines.ml.pirls.pirls` steps with the observed information, which for
some families is negative on some rows (the gaussian with a log link: ``mu (2 mu - y) /
sigma^2`` for ``y > 2 mu``).  Where a group's curvature ``1 + theta^2 sum z^2 w`` is
negative at the start, its Newton decrement is negative and the search stops at once, far
from the mode, and the Laplace/AGQ deviance (``log H`` of a negative ``H``) is not finite.
:class:`ModeSafeObjective` redoes such a search by Fisher scoring (a positive weight: every
step an ascent direction, with pirls' step halving), which ends at a maximum of the
conditional density; Newton steps from there (where the curvature is positive) make the
mode exact, and the factor kept for the determinant holds the observed information, so the
deviance is the Laplace/AGQ one at the true mode.  Searches that went
well (every family with a concave log-likelihood, and most of the others) are untouched.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from bayesglmm.engines.ml.laplace import LaplaceObjective
from bayesglmm.engines.ml.pirls import ModeResult, pirls

__all__ = ["ModeSafeObjective"]


class ModeSafeObjective(LaplaceObjective):
    """:class:`LaplaceObjective` whose mode search (one scalar term, a family without a row
    kernel) falls back to Fisher scoring where Newton's stopped at a non-positive curvature.
    """

    def mode_at(self, theta: np.ndarray, beta: np.ndarray) -> ModeResult:
        """Conditional mode of ``u`` at ``(theta, beta)`` (see the module docstring)."""
        m = super().mode_at(theta, beta)
        if not self.scalar or self.fam.canonical or np.all(m.factor.d > 0.0):
            return m
        fisher = copy.copy(self.fam)
        fisher._fisher = True  # laplace_curvature -> the Fisher weight: pirls scores
        eta_fixed = self.offset + self.X @ np.asarray(beta, dtype=float)
        mf = pirls(self.st, fisher, eta_fixed, np.zeros(self.q))
        # Newton from there (the curvature is positive near a maximum): the exact mode
        m = pirls(self.st, self.fam, eta_fixed, mf.u)
        if not (m.converged and np.all(m.factor.d > 0.0)):
            w_obs = self.fam.laplace_curvature(mf.eta, mf.d1, mf.w, order=1)[0]
            m = dataclasses.replace(mf, factor=self.st.factor(w_obs))
        self.u = m.u
        return m
