"""bayesglmm: Bayesian and likelihood-based GLMMs with lme4-style formulas."""

from __future__ import annotations

__version__ = "0.1.0"
