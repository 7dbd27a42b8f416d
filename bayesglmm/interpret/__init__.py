"""Interpretation of a fit: marginaleffects-style verbs (:mod:`.effects`), R² (:mod:`.r2`),
lme4-style accessors ``coef``, ``confint``, ``anova`` (:mod:`.accessors`) and the
conditional-effects plot (:mod:`.plots`).

Submodules load on use; this package imports nothing heavy.
"""

from __future__ import annotations
