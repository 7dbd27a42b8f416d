"""The used columns of a fit's model (what is saved), and the model rebuilt from them (what
saving checks and loading returns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayesglmm.errors import BayesGLMMWarning, SaveLoadError
from bayesglmm.io.fit_json import from_json
from bayesglmm.quiet import ignoring_warnings

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import ModelLike


def model_frame(model: Any, design: Any) -> pd.DataFrame:
    """The used columns of the fitted rows, as they were when the model was built."""
    cols = list(design.encoder.dtypes)
    frame = getattr(model, "_used_frame", None)
    if frame is None:  # a model made without the snapshot: checked against the design below
        frame = model._data_frame
        if frame is None:
            raise SaveLoadError("the model's data frame is not available; this fit cannot be saved")
        frame = frame.loc[:, cols]
    rows = design.row_index if design.row_index is not None else np.arange(design.n)
    return frame.iloc[np.asarray(rows)][cols].reset_index(drop=True)


def rebuild_model(
    meta: dict[str, Any], frame: pd.DataFrame, arrays: Any, model_cls: Callable[..., ModelLike]
) -> ModelLike:
    """The GLMM of a saved fit, from the typed columns (warnings already seen at fit time)."""
    trials: Any = meta["trials"]
    if trials is None and "trials" in arrays:
        trials = np.asarray(arrays["trials"], dtype=float)  # an array given at fit time
    row_args: dict[str, Any] = {}
    for key in ("weights", "offset"):  # column names in fit.json, arrays in data.npz
        row_args[key] = meta.get(key)
        if row_args[key] is None and f"{key}_arg" in arrays:
            row_args[key] = np.asarray(arrays[f"{key}_arg"], dtype=float)
    with ignoring_warnings(category=BayesGLMMWarning):
        model = model_cls(
            meta["formula"],
            frame,
            meta["family"],
            link=meta["link"],
            trials=trials,
            priors=from_json(meta["prior_spec"]),
            centered=meta["centered"],
            **row_args,
        )
    return model
