"""Interpretation of a fit: marginaleffects-style verbs (:mod:`.effects`), R² (:mod:`.r2`),
lme4-style accessors ``coef`` (:mod:`.coefficients`), ``confint``
(:mod:`.confidence_intervals`), ``anova`` (:mod:`.anova_table`) and the figures: the
method comparison (:mod:`.forest_plot`), random effects (:mod:`.caterpillar_plot`), model
checks (:mod:`.check_plots`), conditional effects (:mod:`.effect_plots`) and the course's
marginal-vs-conditional picture (:mod:`.marginal_conditional`).

Submodules load on use; this package imports nothing heavy.
"""

from __future__ import annotations
