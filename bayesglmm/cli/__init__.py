"""The ``bayesglmm`` command: ``list``, ``fit`` and ``demo``.

::

    bayesglmm list [--models DIR]
    bayesglmm fit models/toenail_logistic_ri.toml [--methods nuts,ml,agq:25] [--out report/]
    bayesglmm fit --formula "y ~ x + (1 | g)" --data file.csv --family poisson [--out DIR]
    bayesglmm demo [--out DIR]

``fit`` prints one progress line per method to stderr, the comparison table
(:func:`bayesglmm.interpret.compare`) to stdout and, for a spec with reference values, how the ML fits
compare with them.  With ``--out`` it writes ``comparison.csv``, ``compare_forest.png``,
``ppc_<method>.png``, ``caterpillar_<method>.png`` (models with random effects), one saved fit per method
(``fit_<method>/``, read back with :func:`bayesglmm.load_fit`), ``spec.json`` and, when
the spec has references, ``reference_check.csv``.

Exit codes: 0 on success; 1 when any method (or output file) failed, the others still
being fitted and reported; 2 on bad input (a :class:`~bayesglmm.errors.BayesGLMMError`, an
unreadable file, a bad argument), always with a one-line message on stderr.

The modules: :mod:`~bayesglmm.cli.commands` (the commands and :func:`main`),
:mod:`~bayesglmm.cli.args` (the parser and the spec from the arguments),
:mod:`~bayesglmm.cli.run` (fitting, printing, the report files) and
:mod:`~bayesglmm.cli.console` (errors, warnings and logs on stderr).
"""

from bayesglmm.cli.args import build_parser
from bayesglmm.cli.commands import main

__all__ = ["build_parser", "main"]
