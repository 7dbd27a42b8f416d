"""Argument checks for :meth:`bayesglmm.GLMM.fit` and the command line, before any work.

* :mod:`~bayesglmm.validate.options`: :class:`Option` (one keyword argument and its valid
  range), the check of a call's arguments against a table, the "unknown option" message;
* :mod:`~bayesglmm.validate.option_tables`: the table of every built-in method
  (:data:`NUTS_OPTIONS`, :data:`ML_OPTIONS`, ...) and the NUTS cross-option check;
* :mod:`~bayesglmm.validate.response`: a new response vector checked as the data's;
* :mod:`~bayesglmm.validate.engine_boundary`: ``GLMM.fit``'s decorator that turns an
  unexpected exception inside an engine into an :class:`~bayesglmm.errors.InferenceError`.

Each engine registers its table with the engine registry (:mod:`bayesglmm.engines.registry`);
the CLI (:mod:`bayesglmm.cli`) and the TOML specs (:mod:`bayesglmm.spec`) use the same tables,
so all three say the same thing about the same bad value.
"""

from __future__ import annotations

from bayesglmm.validate.engine_boundary import engine_boundary
from bayesglmm.validate.option_tables import (
    ADVI_OPTIONS,
    LAPLACE_OPTIONS,
    ML_OPTIONS,
    NUTS_OPTIONS,
    PQL_OPTIONS,
    PRIOR_PREDICTIVE_OPTIONS,
    check_nuts_options,
)
from bayesglmm.validate.options import (
    MAX_NAGQ,
    MAX_SEED,
    Option,
    check_options,
    unknown_option_message,
)
from bayesglmm.validate.response import check_response

__all__ = [
    "ADVI_OPTIONS",
    "LAPLACE_OPTIONS",
    "MAX_NAGQ",
    "MAX_SEED",
    "ML_OPTIONS",
    "NUTS_OPTIONS",
    "Option",
    "PQL_OPTIONS",
    "PRIOR_PREDICTIVE_OPTIONS",
    "check_nuts_options",
    "check_options",
    "check_response",
    "engine_boundary",
    "unknown_option_message",
]
