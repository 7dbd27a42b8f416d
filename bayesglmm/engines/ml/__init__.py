"""Likelihood engines: Laplace and adaptive Gauss-Hermite ML (lme4's glmer), PQL, and the
penalized IRLS and blocked Cholesky they share."""
