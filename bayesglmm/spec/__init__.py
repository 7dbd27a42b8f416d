"""Declarative model specs: a TOML file describes one course example end to end.

A spec names its data, formula, family, priors, the methods to compare and, where one
exists, a reference fit (lme4's ``glmer``) with tolerances.  The package never reads the
repository's ``models/`` directory by itself: users and tests pass a path to
:func:`load_spec`.

File format
-----------
Top level (``*`` required)::

    name*         str   must equal the file stem (``models/<name>.toml``)
    title         str   one line
    description   str   a short teaching note
    formula*      str   lme4 syntax
    family*       str   bernoulli | binomial | poisson | gaussian
    link          str   default: the canonical link
    trials        str   trials column (binomial proportions)
    weights       str   prior-weights column (lme4's ``weights=``; see ``docs/weights.md``)
    offset        str   offset column, added to any ``offset()`` terms (lme4's ``offset=``)
    centered      bool  centred random-effect parameterization for NUTS/ADVI (default false)
    methods*      list  of method strings, see :func:`parse_method`

Tables:

``[data]``
    exactly one of ``dataset`` (a :func:`bayesglmm.datasets.load` name) or ``csv`` (a path,
    relative to the spec file).  A spec without ``[data]`` needs ``[simulation]``.
``[simulation]``
    ``kind = "logistic"``, ``beta0``, ``beta1``, ``ri_sd``, ``rs_sd``, ``n_clusters``,
    ``seed``; optional ``n_per_cluster`` (20), ``x_min`` (-8), ``x_max`` (4).  Columns
    ``y``, ``x``, ``cluster``; the cluster effects are drawn first from
    ``numpy.random.default_rng(seed)``, exactly as
    :func:`bayesglmm.simulate_marginal_vs_conditional` draws them.
``[priors]``
    keys as :func:`bayesglmm.priors.resolve_priors` (``intercept``, ``fixed``, ``sd``,
    ``cor``, ``sigma``, ``fixed:<column>``, ``sd:<group>``, ``cor:<group>``), values
    ``{dist = "Normal", mu = 0, sigma = 1}`` (a number for ``cor`` is the LKJ eta).
``[nuts]``
    ``draws``, ``tune``, ``chains``, ``target_accept``, ``cores``, ``sampler``.
``[reference]``
    a maximum-likelihood fit to reproduce: ``source*`` (provenance, text), ``method*``
    (``"ml"``), ``nagq`` (1), ``fixef*``, ``sd``, ``cor``, ``loglik``,
    ``loglik_higher_is_ok``, ``nobs``, ``ngroups``, ``note``.  The values are copied into
    the file; nothing is read from elsewhere at run time.
``[[agq_table]]``
    further references of the same model at other ``nagq`` (same keys as ``[reference]``,
    ``source`` and ``method`` inherited from it, an optional inline ``tolerance``).
``[tolerance]``
    absolute tolerances for ``[reference]`` (and the defaults for ``[[agq_table]]``):
    ``fixef`` (1e-3), ``sd`` (1e-2), ``cor`` (as ``sd``), ``loglik`` (0.02).

Reference keys
    ``fixef`` keys are the fixed-effect column names (``"(Intercept)"``,
    ``"treatmentterbinafine:time"``).  ``sd`` keys are ``"<group>:<term>"``, or just
    ``"<group>"`` when that group has a single term (``patientID``), or ``"Residual"`` for
    the gaussian residual SD.  ``cor`` keys are ``"<group>:<term1>:<term2>"`` in the order
    of the formula (``"subject:(Intercept):followup"``).  Keys are matched against the
    names the fit reports, never split on ``:``, so terms that are themselves
    interactions (``a:b``) are fine.  ``ngroups`` keys are group names.  With
    ``loglik_higher_is_ok = true`` a log-likelihood above the reference counts as success
    (glmer warned that it had not converged, so a better optimum is expected).

Examples
--------
>>> from bayesglmm.spec import load_spec
>>> spec = load_spec("models/toenail_logistic_ri.toml")  # doctest: +SKIP
>>> fit = spec.model().fit(method="ml", nagq=spec.reference.nagq)  # doctest: +SKIP
>>> spec.reference.check(fit)  # doctest: +SKIP

Modules
-------
``schema``
    the keys and types of each table, and the checker that names the file in messages
``methods``
    method strings (``agq:25``, ``pql_phi1``), read from the engine registry
``reference``
    ``[reference]`` / ``[[agq_table]]`` / ``[tolerance]`` and the check against a fit
``simulation``
    the ``[simulation]`` table and its seeded data
``model_spec``
    :class:`ModelSpec`: a validated spec, its data, model and methods
``files``
    :func:`load_spec`, :func:`list_specs`
"""

from bayesglmm.spec.files import list_specs, load_spec
from bayesglmm.spec.methods import method_label, parse_method
from bayesglmm.spec.model_spec import ModelSpec
from bayesglmm.spec.reference import Reference, Tolerance

__all__ = [
    "ModelSpec",
    "Reference",
    "Tolerance",
    "list_specs",
    "load_spec",
    "method_label",
    "parse_method",
]
