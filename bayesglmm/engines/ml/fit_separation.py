"""After an ML fit: say that the estimates are unreliable under (quasi-)complete
separation (the check of :func:`~bayesglmm.engines.ml.laplace.fit_ml` and the GLM path),
on the user's design and scale."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from bayesglmm.design.separation import ML_UNRELIABLE, detect_separation
from bayesglmm.design.types import Design
from bayesglmm.engines.ml.estimate import MLEstimate
from bayesglmm.engines.scaling import standardization
from bayesglmm.errors import IdentifiabilityWarning

__all__ = ["check_separation", "separation_check"]

_SEPARATION_MSG = ML_UNRELIABLE  # every separation message starts so


def separation_check(design: Design, est: MLEstimate) -> MLEstimate:
    """:func:`check_separation` on the user's design and scale (after the standardized fit),
    its message added to the estimate's."""
    if est.method != "ml":
        return est
    messages = list(est.messages)
    check_separation(design, est.beta, est.vcov_beta, messages)
    if len(messages) == len(est.messages):
        return est
    return dataclasses.replace(est, messages=tuple(messages))


def check_separation(
    design: Design, beta: np.ndarray, vcov: np.ndarray, messages: list[str]
) -> None:
    """Say that the estimates are unreliable under (quasi-)complete separation.

    Scale-free: the estimates are judged per SD of their column (the intercept at centred
    predictors), so a predictor in other units changes nothing.  When they look separated
    (a standardized ``|estimate| > 8`` or ``SE > 20``), the LP test of
    :mod:`bayesglmm.design.separation` decides and names the columns: Konis' LP for binary and
    binomial data, and for Poisson data the same LP with the zero counts as failures and the
    positive counts on the boundary (a direction with ``x_i' b <= 0`` on every zero and
    ``= 0`` on every positive count: an all-zero level, whose estimate is ``-inf``).  A huge
    standardized estimate or SE (``> 15``, ``> 50``; for Poisson a log-rate intercept below
    ``-15``) that the LP does not explain is the fallback sign, for separation the fixed
    effects alone do not show.
    """
    fam = design.family
    if fam.spec.separation is None:
        return
    msg = None
    std = standardization(design)
    bstd = std.beta_to_std(beta)
    if np.all(np.isfinite(vcov)):
        Ti = std.T_inv
        se = np.sqrt(np.maximum(np.diag(Ti @ vcov @ Ti.T), 0.0))
    else:
        se = np.full(beta.size, np.inf)
    big = np.abs(bstd)
    if fam.spec.separation == "counts" and std.intercept is not None:
        big[std.intercept] = max(-bstd[std.intercept], 0.0)  # a large rate is no problem
    # separation found when the design was built was warned about then: say it once more
    # in the fit's messages, not as a second warning.  Otherwise (none found, or a response
    # swapped in by ``with_response``) the LP runs again only when the estimates look
    # separated: under separation they run off towards infinity, so |beta| or its SE is large
    suspicious = bool(np.any(big > 8.0) or np.any(se > 20.0))
    warn = design.separation is None
    sep = design.separation
    if sep is None and suspicious:
        if fam.spec.separation == "binary":
            sep = detect_separation(design.X, design.y, design.trials, design.x_names)
        else:  # zero counts as failures, positive ones as both (0 < 0.5 < 1)
            y01 = np.where(np.asarray(design.y) > 0, 0.5, 0.0)
            sep = detect_separation(design.X, y01, np.ones(design.n), design.x_names)
    if sep is not None:
        cols = ", ".join(f"`{c}`" for c in sep.columns)
        msg = f"{_SEPARATION_MSG} (infinite): {sep.kind} separation in the fixed effects ({cols})"
    if msg is None:
        if np.any(big > 15.0) or np.any(se > 50.0):
            msg = (
                f"{_SEPARATION_MSG}: an estimate above 15 or SE above 50 per SD of its "
                "predictor, a sign of (quasi-)complete separation"
            )
    if msg is not None:
        messages.append(msg)
        if warn:
            warnings.warn(msg, IdentifiabilityWarning, stacklevel=5)
