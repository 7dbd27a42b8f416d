"""Bayesian engines: NUTS on the fused log density (nutpie) or the PyMC model, ADVI, and the
integrated (nested) Laplace; their draws share one set of posterior names."""
