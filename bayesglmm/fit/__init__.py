"""The one fit type, :class:`~bayesglmm.fit.results.GLMMFit`, returned by every engine."""
