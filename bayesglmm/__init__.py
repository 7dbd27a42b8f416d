"""bayesglmm: Bayesian and likelihood-based GLMMs with lme4-style formulas, on PyMC.

>>> import bayesglmm as bg
>>> df = bg.datasets.load("toenail")
>>> model = bg.GLMM("outcome ~ treatment * time + (1 | patientID)", df, family="bernoulli")
"""

from __future__ import annotations

from bayesglmm import datasets
from bayesglmm.compare import compare
from bayesglmm.design import build_design
from bayesglmm.errors import (
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
    SBCFailureWarning,
)
from bayesglmm.families import Family
from bayesglmm.formula import parse_formula
from bayesglmm.io import load_fit
from bayesglmm.model import GLMM
from bayesglmm.plots import (
    plot_compare,
    plot_marginal_vs_conditional,
    simulate_marginal_vs_conditional,
)
from bayesglmm.priors import Prior
from bayesglmm.results import GLMMFit
from bayesglmm.sbc import SBCResult, sbc
from bayesglmm.spec import ModelSpec, list_specs, load_spec

__version__ = "0.1.0"

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
    "PartialFitWarning",
    "SBCFailureWarning",
    "__version__",
]
