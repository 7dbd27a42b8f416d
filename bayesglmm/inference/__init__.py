"""Inference engines: NUTS, Laplace/AGQ ML, PQL, Bayesian Laplace, ADVI."""
