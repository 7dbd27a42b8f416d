"""Interpretation of a fit: marginaleffects-style verbs (:mod:`.effects`), R² (:mod:`.r2`),
lme4-style accessors ``coef`` (:mod:`.coefficients`), ``confint``
(:mod:`.confidence_intervals`), ``anova`` (:mod:`.anova_table`) and the conditional-effects
plot (:mod:`.plots`).

Submodules load on use; this package imports nothing heavy.
"""

from __future__ import annotations
