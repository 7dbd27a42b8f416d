"""The engines: ``fit(design, priors, options, context) -> EngineResult``, one registry
(:mod:`.registry`).  :mod:`.ml` holds the likelihood engines (Laplace, AGQ, PQL) and their
linear algebra, :mod:`.bayes` the Bayesian ones (NUTS, ADVI, integrated Laplace) and the
PyMC model; the GLM (:mod:`.glm`) and the internal scaling (:mod:`.scaling`) serve both."""
