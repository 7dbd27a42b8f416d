"""bayesglmm: Bayesian and likelihood-based GLMMs with lme4-style formulas, on PyMC.

>>> import bayesglmm as bg
>>> df = bg.datasets.load("toenail")
>>> model = bg.GLMM("outcome ~ treatment * time + (1 | patientID)", df, family="bernoulli")

The public names load on first use (PEP 562), so ``import bayesglmm`` is fast and pulls in
none of PyMC, ArviZ, matplotlib, SciPy, Dask or Numba; ``bg.GLMM`` loads the formula and
design code, and the engines load when a fit asks for them (``tests/test_import.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bayesglmm.errors import (
    ArgumentError,
    BayesGLMMError,
    BayesGLMMWarning,
    ConvergenceWarning,
    DataError,
    DesignError,
    DroppedRowsWarning,
    FormulaError,
    IdentifiabilityWarning,
    InferenceError,
    PartialFitWarning,
    RankDeficiencyWarning,
    SamplerWarning,
    SavedFitCorruptError,
    SavedFitExistsError,
    SavedFitMismatchError,
    SaveLoadError,
    SBCFailureWarning,
    SBCNote,
    SpecError,
    SuspiciousDataWarning,
)

__version__ = "0.1.0"

# public name -> module that defines it, imported on first attribute access
_LAZY: dict[str, str] = {
    "GLMM": "bayesglmm.model",
    "GLMMFit": "bayesglmm.fit.results",
    "Prior": "bayesglmm.priors",
    "Family": "bayesglmm.families",
    "compare": "bayesglmm.interpret.compare",
    "plot_compare": "bayesglmm.interpret.forest_plot",
    "plot_marginal_vs_conditional": "bayesglmm.interpret.marginal_conditional",
    "simulate_marginal_vs_conditional": "bayesglmm.interpret.marginal_conditional",
    "load_fit": "bayesglmm.model",
    "sbc": "bayesglmm.calibration.sbc",
    "SBCResult": "bayesglmm.calibration.sbc_result",
    "load_spec": "bayesglmm.spec",
    "list_specs": "bayesglmm.spec",
    "ModelSpec": "bayesglmm.spec",
    "build_design": "bayesglmm.design.build",
    "parse_formula": "bayesglmm.formula.bars",
    "predictions": "bayesglmm.interpret.effects",
    "avg_predictions": "bayesglmm.interpret.effects",
    "comparisons": "bayesglmm.interpret.effects",
    "avg_comparisons": "bayesglmm.interpret.effects",
    "slopes": "bayesglmm.interpret.effects",
    "avg_slopes": "bayesglmm.interpret.effects",
    "datagrid": "bayesglmm.interpret.effects",
    "plot_predictions": "bayesglmm.interpret.effect_plots",
    "r2": "bayesglmm.interpret.r2",
    "coef": "bayesglmm.interpret.coefficients",
    "confint": "bayesglmm.interpret.confidence_intervals",
    "anova": "bayesglmm.interpret.anova_table",
}
_SUBMODULES = ("datasets",)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load lazily
    from bayesglmm import datasets
    from bayesglmm.calibration.sbc import sbc
    from bayesglmm.calibration.sbc_result import SBCResult
    from bayesglmm.design.build import build_design
    from bayesglmm.families import Family
    from bayesglmm.fit.results import GLMMFit
    from bayesglmm.formula.bars import parse_formula
    from bayesglmm.interpret.anova_table import anova
    from bayesglmm.interpret.coefficients import coef
    from bayesglmm.interpret.compare import compare
    from bayesglmm.interpret.confidence_intervals import confint
    from bayesglmm.interpret.effect_plots import plot_predictions
    from bayesglmm.interpret.effects import (
        avg_comparisons,
        avg_predictions,
        avg_slopes,
        comparisons,
        datagrid,
        predictions,
        slopes,
    )
    from bayesglmm.interpret.forest_plot import plot_compare
    from bayesglmm.interpret.marginal_conditional import (
        plot_marginal_vs_conditional,
        simulate_marginal_vs_conditional,
    )
    from bayesglmm.interpret.r2 import r2
    from bayesglmm.model import GLMM, load_fit
    from bayesglmm.priors import Prior
    from bayesglmm.spec import ModelSpec, list_specs, load_spec


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"bayesglmm.{name}")
    else:
        raise AttributeError(f"module 'bayesglmm' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "GLMM",
    "GLMMFit",
    "Prior",
    "Family",
    "datasets",
    "compare",
    "plot_compare",
    "plot_marginal_vs_conditional",
    "simulate_marginal_vs_conditional",
    "load_fit",
    "sbc",
    "load_spec",
    "list_specs",
    "ModelSpec",
    "SBCResult",
    "build_design",
    "parse_formula",
    "predictions",
    "avg_predictions",
    "comparisons",
    "avg_comparisons",
    "slopes",
    "avg_slopes",
    "datagrid",
    "plot_predictions",
    "r2",
    "coef",
    "confint",
    "anova",
    "ArgumentError",
    "BayesGLMMError",
    "BayesGLMMWarning",
    "ConvergenceWarning",
    "DataError",
    "DesignError",
    "DroppedRowsWarning",
    "FormulaError",
    "IdentifiabilityWarning",
    "InferenceError",
    "RankDeficiencyWarning",
    "SamplerWarning",
    "SaveLoadError",
    "SavedFitCorruptError",
    "SavedFitExistsError",
    "SavedFitMismatchError",
    "SpecError",
    "SuspiciousDataWarning",
    "PartialFitWarning",
    "SBCFailureWarning",
    "SBCNote",
    "__version__",
]
