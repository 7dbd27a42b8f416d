"""Reading a fit's posterior draws: the posterior group as a Dataset, (chain, draw) stacked."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def posterior_dataset(idata: Any) -> xr.Dataset:
    """The posterior group of a DataTree as a Dataset."""
    return idata["posterior"].to_dataset()


def stack_draws(da: xr.DataArray) -> np.ndarray:
    """(chain, draw, ...) -> (sample, ...)."""
    vals = np.asarray(da.values)
    return vals.reshape((-1, *vals.shape[2:]))
