"""What every figure of :mod:`bayesglmm.interpret` shares: the matplotlib backend (as
``MPLBACKEND`` says; Agg in tests) and the colour cycle."""

from __future__ import annotations

import matplotlib

matplotlib.use(matplotlib.get_backend())  # respect MPLBACKEND (Agg in tests)
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["COLORS"]

COLORS: list[str] = plt.rcParams["axes.prop_cycle"].by_key()["color"]
"""The colour cycle, one colour per method or series."""
