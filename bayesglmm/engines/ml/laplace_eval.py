"""What one evaluation of the Laplace/AGQ integrated likelihood returns
(:class:`LaplaceEval`), and the error for an AGQ request a model does not allow."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesglmm.engines.ml.pirls import ModeResult
from bayesglmm.errors import InferenceError

__all__ = ["AGQError", "LaplaceEval"]


class AGQError(InferenceError, ValueError):
    """``nagq > 1`` was asked for a model adaptive quadrature does not cover (see
    :meth:`LaplaceObjective.check_nagq`)."""


@dataclass
class LaplaceEval:
    """One evaluation of the integrated likelihood at ``(beta, theta)``.

    Attributes
    ----------
    deviance : float
        ``-2 log L`` (properly normalized) under the Laplace (``nagq = 1``) or AGQ rule.
    gradient : ndarray or None
        ``d deviance / d (theta, beta)`` when requested.
    u : ndarray (q,)
        Spherical conditional modes (``b = Lambda u``), blocks concatenated level-major.
    modes : tuple of ndarray (levels, p)
        Conditional modes ``b`` per block.
    mode : ModeResult or None
        Inner-solver state at the mode: ``eta``, weights, the factor of ``A'WA + I``.
        None from the fused scalar and vector paths (ask :meth:`LaplaceObjective.evaluate` for
        ``keep_mode=True``).
    """

    deviance: float
    gradient: np.ndarray | None
    u: np.ndarray
    modes: tuple[np.ndarray, ...]
    mode: ModeResult | None
    n_inner: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def loglik(self) -> float:
        """Approximate log-likelihood, ``-deviance / 2``."""
        return -0.5 * self.deviance
