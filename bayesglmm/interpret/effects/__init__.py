"""marginaleffects-style verbs: predictions, comparisons, slopes and their ``avg_`` forms.

Every verb returns a tidy :class:`pandas.DataFrame` named as R's marginaleffects names it:
one row per row of ``newdata`` (or per ``by=`` group for the ``avg_`` forms), the columns
``rowid`` (unit-level verbs), ``term`` and ``contrast`` (comparisons and slopes), ``estimate``,
``std.error``, ``conf.low``, ``conf.high`` at ``conf_level`` (95% by default), ``method``, and
the predictor values of the row.

The random effects enter in one of three ways (``re=``):

* ``"conditional"``: each row's own group effects (ML: conditional modes; Bayes: draws);
* ``"none"``: a typical group, all random effects 0;
* ``"marginal"``: population-averaged, ``E_b[g^-1(x'beta + z'b)]`` integrated over the
  random-effect distribution by Gauss-Hermite quadrature (exact for any structure: the
  random part of a row is one Gaussian with variance ``z' Sigma z``), for each draw.

Uncertainty, by engine (the ``method`` column says which):

* Bayesian fits (NUTS, Laplace, ADVI): ``"posterior draws"`` (``"bootstrap draws"`` for a
  ``fit.bootstrap()`` fit, whose draws are refits); the quantity is computed for
  every draw; ``estimate`` is the posterior median (as marginaleffects), ``std.error`` the
  posterior SD and the interval equal-tailed.
* ML fits (Laplace, AGQ, PQL): ``"delta"`` (default): ``estimate`` at the estimate, the
  standard error from a central-difference Jacobian ``J`` as ``sqrt(diag(J V J'))``, where
  ``V`` is the covariance of ``[beta, theta]`` (``2 H^-1`` of the deviance Hessian) when the
  fit has that Hessian (Laplace/AGQ of a non-gaussian family), so population-averaged
  quantities carry the uncertainty of the variance components; otherwise (gaussian, PQL) the
  fixed effects' ``vcov`` with the variance components held at their estimates.  Conditional
  modes are held at their values (as marginaleffects does with lme4).  Predictions on the
  response scale take the interval on the link scale and back-transform it (marginaleffects'
  ``invlink(link)``), so it stays inside the response's range; other quantities use
  ``estimate +- z * std.error``, with ``statistic`` and ``p.value`` (two-sided, H0: 0).
  ``ml_method="simulation"`` instead draws ``n_sim`` parameter vectors from ``N(estimate,
  V)`` (seeded) and takes equal-tailed intervals of the quantity (Krinsky-Robb).

Modules: ``state`` (parameter states: draws or around the ML estimate), ``inference``
(a quantity at every state -> estimate and interval), ``grid`` (``datagrid``, ``newdata``,
``by=`` groups, the predictor, the tidy output), ``predictions``, ``comparisons``, ``slopes``.
"""

from bayesglmm.interpret.effects.comparison import avg_comparisons, comparisons
from bayesglmm.interpret.effects.grid import datagrid, fitted_frame
from bayesglmm.interpret.effects.prediction import avg_predictions, predictions
from bayesglmm.interpret.effects.slope import avg_slopes, slopes
from bayesglmm.interpret.effects.state import RE, MLMethod, Type, draws_label

__all__ = [
    "RE",
    "MLMethod",
    "Type",
    "avg_comparisons",
    "avg_predictions",
    "avg_slopes",
    "comparisons",
    "datagrid",
    "draws_label",
    "fitted_frame",
    "predictions",
    "slopes",
]
