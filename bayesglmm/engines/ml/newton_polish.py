"""Bounded Newton polish of an optimum found by L-BFGS-B (the second stage of the ML
fits: :func:`~bayesglmm.engines.ml.laplace.fit_ml`, the dispersion path and the Bayesian
integrated Laplace), and the projected gradient that judges convergence on a bound."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["newton_polish", "projected_grad"]


def projected_grad(x: np.ndarray, g: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The gradient with the components that push a coordinate below its bound zeroed."""
    pg = g.copy()
    at = (x <= lower + 1e-12) & (g > 0)
    pg[at] = 0.0
    return pg


def newton_polish(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    hessian: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    lower: np.ndarray,
    max_rounds: int = 20,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Bounded Newton steps with backtracking from ``x``; returns ``(x, H, f, g)`` at the end.

    Parameters
    ----------
    fg : callable
        ``x -> (f, gradient)``.
    hessian : callable
        ``(x, gradient at x) -> Hessian`` (finite differences in the callers).
    x : ndarray
    lower : ndarray
        Lower bounds (``-inf`` where there is none); coordinates at their bound with a
        gradient pushing outwards stay fixed.
    max_rounds : int
        Newton steps at most (they stop earlier once the Newton decrement is below 1e-10:
        20, not 6, let a flat optimum of tiny SDs finish, a ``(1 + x1 + x2 | g)`` fit ended
        with max|grad| 0.11 after 6); the Hessian is recomputed after a step that moved
        > 1e-3.
        Where the Hessian is not positive definite the step uses ``H + lambda I``.
    """
    f, g = fg(x)
    H = hessian(x, g)
    for _ in range(max_rounds):
        free = ~((x <= lower + 1e-10) & (g > 0))
        if not free.any():
            break
        Hf = H[np.ix_(free, free)]
        ev = np.linalg.eigvalsh(0.5 * (Hf + Hf.T)) if np.all(np.isfinite(Hf)) else None
        if ev is None:
            break
        if ev[0] <= 1e-8 * max(1.0, abs(ev[-1])):
            # indefinite: a Levenberg shift makes the step a descent direction
            Hf = Hf + (1e-3 * max(1.0, abs(ev[-1])) - ev[0]) * np.eye(Hf.shape[0])
        try:
            step_f = -np.linalg.solve(Hf, g[free])
        except np.linalg.LinAlgError:
            break
        dec = float(-g[free] @ step_f)
        if not np.isfinite(dec) or dec < 1e-10:
            break
        step = np.zeros_like(x)
        step[free] = step_f
        t, accepted = 1.0, False
        for _ in range(20):
            xn = np.maximum(x + t * step, lower)
            fn, gn = fg(xn)
            if fn <= f + 1e-12:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        moved = float(np.max(np.abs(xn - x)))
        x, f, g = xn, fn, gn
        if moved > 1e-3:
            H = hessian(x, g)
    return x, H, f, g
