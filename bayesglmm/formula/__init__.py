"""Formulas: lme4's bar terms (:mod:`.bars`) and R's expression language (:mod:`.rlang`,
:mod:`.render`, :mod:`.rsyntax`)."""
