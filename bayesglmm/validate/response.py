"""A new response vector for a model's rows, checked as the data's response is
(:func:`check_response`, for ``GLMM.with_response`` and the parametric bootstrap)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from bayesglmm.errors import ArgumentError
from bayesglmm.families import get_spec

__all__ = ["check_response"]


def _position(i: int, row_labels: Any) -> str:
    if row_labels is None:
        return f"position {i}"
    label = row_labels[i]
    label = label.item() if isinstance(label, np.generic) else label
    return f"position {i} (data row {label!r})"


def check_response(
    y: Any,
    n: int,
    family: str,
    *,
    trials: np.ndarray | None = None,
    row_labels: Any = None,
    where: str = "with_response(): ",
) -> np.ndarray:
    """A new response vector for a model's rows, checked as the data's response is.

    Parameters
    ----------
    y : array-like
        One value per row the model uses (``design.n``), in the model's row order.
    n : int
        The number of rows.
    family : str
        ``gaussian`` (finite), ``poisson`` (non-negative integers), ``bernoulli`` (0/1) or
        ``binomial`` (integer successes from 0 to the row's trials).
    trials : ndarray, optional
        The trials per row (binomial).
    row_labels : sequence, optional
        The data's row label of each position, for messages.
    where : str
        The call, for messages.

    Returns
    -------
    ndarray of float, shape (n,)

    Raises
    ------
    ArgumentError
        For a wrong shape or a value that is not a number.
    DataError
        For a value the family cannot have (NaN, inf, a negative or fractional count, a
        bernoulli value other than 0/1, more successes than trials), naming the first one,
        its position and its data row.
    """
    from bayesglmm.errors import DataError

    if isinstance(y, str | bytes) or not hasattr(y, "__len__") and not hasattr(y, "shape"):
        raise ArgumentError(
            f"{where}the response must be an array of {n} numbers; got {type(y).__name__}"
        )
    import pandas as pd

    arr = np.asarray(y) if hasattr(y, "dtype") else np.asarray(y, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        hint = " (flatten it, e.g. y.ravel())" if arr.size == n and n > 1 else ""
        raise ArgumentError(
            f"{where}the response must be one-dimensional with {n} values, one per row of "
            f"the model; got shape {arr.shape}{hint}"
        )
    if arr.dtype.kind in "biuf":
        values = arr.astype(float)
    else:  # objects, strings, nullable pandas values
        values = np.empty(n)
        for i, v in enumerate(arr):
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                values[i] = np.nan
            elif not isinstance(v, numbers.Real | np.bool_):
                raise ArgumentError(
                    f"{where}the response must hold numbers; found {v!r} "
                    f"({type(v).__name__}) at {_position(i, row_labels)}"
                )
            else:
                values[i] = float(v)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}the response must be finite; found {values[i]:g} at "
            f"{_position(i, row_labels)} ({int(bad.sum())} non-finite value(s)); a new "
            "response cannot drop rows: give a value for every row"
        )
    spec = get_spec(family)  # the family's response check (families/<family>.py)
    bad, what = spec.check_response(values, trials)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}the response {what}; found {values[i]:g} at {_position(i, row_labels)} "
            f"({int(bad.sum())} bad value(s))"
        )
    if spec.is_binomial and trials is not None:
        over = values > trials
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise DataError(
                f"{where}the response has more successes than trials: {values[i]:g} > "
                f"{trials[i]:g} at {_position(i, row_labels)} ({int(over.sum())} row(s))"
            )
    return values
