"""One PyTensor-compiling fit at a time per process.

PyTensor's ``FunctionMaker`` sets process-wide config flags while it rewrites and links a
graph (``config.change_flags(mode=..., traceback__limit=...)``), saving the old values on
entry and putting them back on exit.  Two compiles in parallel threads restore each other's
values: after two ADVI or PyMC-NUTS fits in a thread pool, ``pytensor.config.mode`` stayed
the Mode object of one of those compiles (instead of ``'Mode'``) and ``traceback__limit``
stayed 0, for the rest of the process.  Every later compile then used that mode's rewrites,
and the same fit with the same seed gave different numbers (PyMC NUTS: intercept 3.885261
before, 3.885584 after; ADVI: 1-3 ulp), in threads or not (measured in session 5, issue
13).  The engines that compile PyTensor graphs (PyMC's NUTS, ADVI, prior predictive draws)
therefore run under :data:`PYTENSOR_LOCK`; the fused-kernel NUTS and the ML, PQL and
Laplace engines do not use PyTensor and still run in parallel.
"""

from __future__ import annotations

import threading

__all__ = ["PYTENSOR_LOCK"]

PYTENSOR_LOCK = threading.RLock()
"""Held around every call into PyMC that compiles a PyTensor function."""
