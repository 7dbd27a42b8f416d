"""One error hierarchy for bayesglmm.

Every exception the package raises on purpose derives from :class:`BayesGLMMError`,
and every warning from :class:`BayesGLMMWarning`, so users can catch or filter them
as a group.
"""

from __future__ import annotations


class BayesGLMMError(Exception):
    """Root of all bayesglmm errors."""


class FormulaError(BayesGLMMError, ValueError):
    """A model formula could not be parsed or refers to something that is not there."""


class DesignError(BayesGLMMError, ValueError):
    """The data cannot be turned into a model design (bad column, level or shape)."""


class DataError(BayesGLMMError, ValueError):
    """A response or predictor value is invalid for the chosen family."""


class InferenceError(BayesGLMMError, RuntimeError):
    """An inference engine failed (did not converge, produced non-finite values)."""


class SpecError(BayesGLMMError, ValueError):
    """A declarative model spec (``models/*.toml``) is invalid."""


class SaveLoadError(BayesGLMMError, ValueError):
    """A saved fit cannot be read (wrong format or incompatible version)."""


class BayesGLMMWarning(UserWarning):
    """Root of all bayesglmm warnings."""


class DroppedRowsWarning(BayesGLMMWarning):
    """Rows with missing values were dropped from the model frame."""


class RankDeficiencyWarning(BayesGLMMWarning):
    """Aliased fixed-effect columns were dropped."""


class IdentifiabilityWarning(BayesGLMMWarning):
    """A grouping factor or the fixed design is weakly identified (few levels, separation)."""


class ConvergenceWarning(BayesGLMMWarning):
    """An optimizer or sampler shows signs of not having converged."""


class SamplerWarning(ConvergenceWarning):
    """NUTS diagnostics (divergences, R-hat, ESS) indicate a problem."""


class SavedFitExistsError(SaveLoadError):
    """``fit.save(path)`` would replace a different fit saved in ``path`` (pass overwrite=True)."""


class SavedFitCorruptError(SaveLoadError):
    """A file of a saved fit is unreadable, truncated, missing or changed after saving."""


class SavedFitMismatchError(SaveLoadError):
    """A saved fit's files disagree: the rebuilt design differs from the saved one, or the
    posterior belongs to another fit."""


class ArgumentError(BayesGLMMError, ValueError):
    """A function argument is unknown, of the wrong type or outside its valid range."""


class SuspiciousDataWarning(BayesGLMMWarning):
    """The data or formula look like a mistake (response among the predictors, a column
    whose values mix types, a duplicated random-effect term)."""


class PartialFitWarning(SamplerWarning):
    """A fit was interrupted (Ctrl-C) and, as asked with ``allow_partial=True``, returns
    only the draws or iterations made before the interrupt."""


class SBCNote(BayesGLMMWarning):
    """How an SBC run was set up differently from what was asked, and why."""


class SBCFailureWarning(BayesGLMMWarning):
    """Some simulations of a simulation-based calibration run failed (an error, or a worker
    that died); the finished ones are kept and the failures listed."""
