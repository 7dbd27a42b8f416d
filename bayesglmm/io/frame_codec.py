"""The used data columns of a fit to plain NumPy arrays and back, exactly: dtypes, categories
and their order, nullable masks, strings verbatim, datetimes, object columns value by value
(each value with its type).  No pickle."""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import SavedFitCorruptError, SaveLoadError
from bayesglmm.io.fit_json import DATA_FILE, FIT_FILE


def _tag(v: Any, col: str) -> list[Any]:
    """One value of an object column as ``[type tag, value]`` (JSON, exact)."""
    if v is None:
        return ["none"]
    if v is pd.NA:
        return ["pdna"]
    if v is pd.NaT:
        return ["nat"]
    if isinstance(v, np.generic):
        kind = v.dtype.kind
        if kind in "biuf":
            val = v.item()
            return ["np", v.dtype.str, val if math.isfinite(val) else str(val)]
        if kind == "U":
            return ["npstr", str(v)]
    if isinstance(v, bool):
        return ["bool", v]
    if isinstance(v, int):
        return ["int", str(v)]
    if isinstance(v, float):
        return ["float", v if math.isfinite(v) else str(v)]
    if isinstance(v, str):
        return ["str", str(v)] if type(v) is str else ["npstr", str(v)]
    if isinstance(v, pd.Timestamp):
        return ["ts", v.isoformat(), v.unit, None if v.tz is None else str(v.tz)]
    if isinstance(v, pd.Timedelta):
        return ["td", int(v.value), v.unit]
    if isinstance(v, _dt.datetime):
        return ["datetime", v.isoformat()]
    if isinstance(v, _dt.date):
        return ["date", v.isoformat()]
    if isinstance(v, decimal.Decimal):
        return ["decimal", str(v)]
    raise SaveLoadError(
        f"column `{col}` holds a value of type {type(v).__name__} ({v!r}) that cannot be "
        "saved exactly; convert the column to str, a number or a categorical and refit"
    )


def _untag(t: list[Any]) -> Any:
    kind = t[0]
    if kind == "none":
        return None
    if kind == "pdna":
        return pd.NA
    if kind == "nat":
        return pd.NaT
    if kind == "np":
        return np.dtype(t[1]).type(float(t[2]) if isinstance(t[2], str) else t[2])
    if kind == "npstr":
        return np.str_(t[1])
    if kind == "bool":
        return bool(t[1])
    if kind == "int":
        return int(t[1])
    if kind == "float":
        return float(t[1])
    if kind == "str":
        return str(t[1])
    if kind == "ts":
        ts = pd.Timestamp(t[1]).as_unit(t[2])
        return ts if t[3] is None else ts.tz_convert(t[3])
    if kind == "td":
        return pd.Timedelta(int(t[1]), unit="ns").as_unit(t[2])
    if kind == "datetime":
        return _dt.datetime.fromisoformat(t[1])
    if kind == "date":
        return _dt.date.fromisoformat(t[1])
    if kind == "decimal":
        return decimal.Decimal(t[1])
    raise SavedFitCorruptError(f"unknown value tag {kind!r} in {DATA_FILE}")


def _text_array(values: list[Any]) -> np.ndarray:
    """A JSON-encodable list as a uint8 array (exact for any text, NUL characters included)."""
    return np.frombuffer(json.dumps(values, allow_nan=True).encode("utf-8"), dtype=np.uint8)


def _from_text_array(a: np.ndarray) -> list[Any]:
    return json.loads(a.tobytes().decode("utf-8"))


def _encode_values(name: str, s: pd.Series, key: str, arrays: dict[str, np.ndarray]) -> dict:
    """Schema of one column (or index of categories); its arrays go to ``arrays[key...]``."""
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        cats = pd.Series(dt.categories)
        arrays[f"{key}.codes"] = np.asarray(s.cat.codes.to_numpy(), dtype=np.int64)
        return {
            "kind": "categorical",
            "ordered": bool(dt.ordered),
            "categories": _encode_values(name, cats, f"{key}.cat", arrays),
        }
    if isinstance(dt, pd.StringDtype):
        vals = [None if pd.isna(v) else str(v) for v in s.to_numpy(dtype=object)]
        arrays[key] = _text_array(vals)
        return {
            "kind": "string",
            "storage": dt.storage,
            "na": "NA" if dt.na_value is pd.NA else "nan",
        }
    if isinstance(dt, pd.DatetimeTZDtype):
        arrays[key] = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        arrays[f"{key}.mask"] = s.isna().to_numpy()
        return {"kind": "datetimetz", "dtype": str(dt)}
    if isinstance(dt, pd.api.extensions.ExtensionDtype) and hasattr(dt, "numpy_dtype"):
        mask = s.isna().to_numpy()
        npdt = np.dtype(dt.numpy_dtype)
        fill = False if npdt.kind == "b" else 0
        arrays[key] = s.to_numpy(dtype=npdt, na_value=fill)
        arrays[f"{key}.mask"] = mask
        return {"kind": "masked", "dtype": str(dt)}
    if isinstance(dt, np.dtype) and dt.kind in "biufcmM":
        arrays[key] = s.to_numpy(copy=True)
        return {"kind": "numpy", "dtype": dt.str}
    if isinstance(dt, np.dtype) and dt.kind == "O":
        arrays[key] = _text_array([_tag(v, name) for v in s.to_numpy()])
        return {"kind": "object"}
    raise SaveLoadError(
        f"column `{name}` has dtype {dt} that cannot be saved exactly; convert it to str, a "
        "number, a datetime or a categorical and refit"
    )


def _decode_values(schema: dict, key: str, arrays: Any) -> pd.Series:
    kind = schema["kind"]
    if kind == "categorical":
        cats = _decode_values(schema["categories"], f"{key}.cat", arrays)
        dtype = pd.CategoricalDtype(pd.Index(cats), ordered=schema["ordered"])
        return pd.Series(pd.Categorical.from_codes(arrays[f"{key}.codes"], dtype=dtype))
    if kind == "string":
        na = pd.NA if schema["na"] == "NA" else np.nan
        dtype = pd.StringDtype(storage=schema["storage"], na_value=na)
        return pd.Series(_from_text_array(arrays[key]), dtype=dtype)
    if kind == "datetimetz":
        dtype = pd.api.types.pandas_dtype(schema["dtype"])
        s = pd.Series(arrays[key]).dt.tz_localize("UTC").dt.tz_convert(dtype.tz)
        s = s.astype(dtype)
        s[arrays[f"{key}.mask"]] = pd.NaT
        return s
    if kind == "masked":
        arr = pd.array(arrays[key], dtype=schema["dtype"])
        arr[arrays[f"{key}.mask"]] = pd.NA
        return pd.Series(arr)
    if kind == "numpy":
        return pd.Series(np.asarray(arrays[key], dtype=np.dtype(schema["dtype"])))
    if kind == "object":
        vals = [_untag(t) for t in _from_text_array(arrays[key])]
        out = np.empty(len(vals), dtype=object)
        out[:] = vals
        return pd.Series(out, dtype=object)
    raise SavedFitCorruptError(f"unknown column kind {kind!r} in {FIT_FILE}")


def _same_values(a: pd.Series, b: pd.Series) -> bool:
    """Same dtype and, value by value, the same value of the same type."""
    if a.dtype != b.dtype or len(a) != len(b):
        return False
    if isinstance(a.dtype, pd.CategoricalDtype):
        return _same_values(
            pd.Series(a.dtype.categories), pd.Series(b.dtype.categories)
        ) and np.array_equal(a.cat.codes.to_numpy(), b.cat.codes.to_numpy())
    if a.dtype == object:
        for x, y in zip(a.to_numpy(), b.to_numpy(), strict=True):
            if type(x) is not type(y):
                return False
            if isinstance(x, float | np.floating) and math.isnan(x) and math.isnan(y):
                continue
            if isinstance(x, pd.Timestamp) and (x.unit != y.unit or str(x.tz) != str(y.tz)):
                return False
            if not (x is y or bool(x == y)):
                return False
        return True
    return bool(a.reset_index(drop=True).equals(b.reset_index(drop=True)))


def encode_frame(frame: pd.DataFrame) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Typed encoding of every column; each is decoded again and compared (exactness)."""
    arrays: dict[str, np.ndarray] = {}
    schema = []
    for i, name in enumerate(frame.columns):
        col = frame.iloc[:, i]
        s = _encode_values(str(name), col, f"c{i}", arrays)
        back = _decode_values(s, f"c{i}", arrays)
        if not _same_values(col.reset_index(drop=True), back):
            raise SaveLoadError(
                f"column `{name}` ({col.dtype}) does not survive saving exactly; convert it "
                "to str, a number, a datetime or a categorical and refit"
            )
        schema.append({"name": str(name), **s})
    return schema, arrays


def decode_frame(schema: list[dict], arrays: Any) -> pd.DataFrame:
    cols = {c["name"]: _decode_values(c, f"c{i}", arrays) for i, c in enumerate(schema)}
    return pd.DataFrame(cols)
