"""Save and load fits: ``fit.save(path)`` / ``bayesglmm.load_fit(path)``.

A saved fit is a directory:

* ``fit.json``: format version, package version, a fit id, the spec (formula, family, link,
  priors actually used, method and its options), ML estimates when present, a schema of the
  saved data columns, a description of the encoded design (fixed-effect names, levels of
  every grouping factor) with SHA-256 checksums of its arrays (``X``, ``Z``, group indexes,
  ``y``, trials, offset, prior weights) and the SHA-256 of the other two files.
* ``data.npz``: what the fit used, typed: the raw used columns of the fitted rows as they
  were when the model was built (each with its exact dtype, categories and their order,
  nullable masks, strings such as ``"NA"`` or ``"002"`` verbatim, datetimes, object columns
  value by value with each value's type), and the response actually fitted (``y``, which
  differs from the data column for a :meth:`~bayesglmm.GLMM.with_response` fit), and the
  ``trials=``, ``weights=`` and ``offset=`` arguments of the fitted rows when they were
  given as arrays (a column name is saved in ``fit.json``; the column is in the data).
  No pickle: every array has a plain NumPy dtype.
* ``posterior.nc``: the draws (netCDF via h5netcdf), for Bayesian fits; its root attribute
  ``bayesglmm_fit_id`` names the fit it belongs to.

Saving checks that the typed columns rebuild exactly the design the fit used (else it
refuses, naming the column or array).  :func:`load_fit` rebuilds the design from them and
compares it, array by array, with the saved checksums; any mismatch, a file from another
fit, or a corrupt file raises a :class:`~bayesglmm.errors.SaveLoadError` subclass naming
what differs.

The modules: :mod:`~bayesglmm.io.write` (``save_fit``), :mod:`~bayesglmm.io.read`
(``read_fit``), :mod:`~bayesglmm.io.frame_codec` (the typed columns),
:mod:`~bayesglmm.io.checksums` (file, design and draws digests), :mod:`~bayesglmm.io.rebuild`
(the model from the saved columns) and :mod:`~bayesglmm.io.fit_json` (format version, file
names, the JSON of ``fit.json``).
"""

from bayesglmm.io.read import read_fit
from bayesglmm.io.write import save_fit

__all__ = ["read_fit", "save_fit"]
