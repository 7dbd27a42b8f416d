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
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesglmm.engines.types import FitInfo
from bayesglmm.errors import (
    BayesGLMMError,
    BayesGLMMWarning,
    SavedFitCorruptError,
    SavedFitExistsError,
    SavedFitMismatchError,
    SaveLoadError,
)
from bayesglmm.quiet import ignoring_warnings

if TYPE_CHECKING:
    from bayesglmm.fit.results import GLMMFit
    from bayesglmm.model import GLMM

FORMAT_VERSION = 2
FIT_FILE = "fit.json"
DATA_FILE = "data.npz"
POSTERIOR_FILE = "posterior.nc"
# every file a save writes (or an older version wrote): removed when a fit is replaced
KNOWN_FILES = (FIT_FILE, DATA_FILE, POSTERIOR_FILE, "frame.csv")
FIT_ID_ATTR = "bayesglmm_fit_id"


# --------------------------------------------------------------------------- JSON helpers
def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return {"__array__": _jsonable(x.tolist()), "shape": list(x.shape), "dtype": x.dtype.str}
    if isinstance(x, tuple | list):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if hasattr(x, "to_dict") and hasattr(x, "dist"):  # a Prior in a user prior spec
        return x.to_dict()
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return {"__float__": str(x)}
    return x


def _from_json(x: Any) -> Any:
    if isinstance(x, dict) and "__array__" in x:
        dtype = np.dtype(x.get("dtype", "<f8"))
        return np.asarray(_from_json(x["__array__"]), dtype=dtype).reshape(x["shape"])
    if isinstance(x, dict) and "__float__" in x:
        return float(x["__float__"])
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    return x


def _plain(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None) | list | tuple | dict)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_array(a: np.ndarray | None) -> str | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- typed columns
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


def _encode_frame(frame: pd.DataFrame) -> tuple[list[dict], dict[str, np.ndarray]]:
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


def _decode_frame(schema: list[dict], arrays: Any) -> pd.DataFrame:
    cols = {c["name"]: _decode_values(c, f"c{i}", arrays) for i, c in enumerate(schema)}
    return pd.DataFrame(cols)


# --------------------------------------------------------------------------- design digest
def _design_digest(design: Any) -> dict[str, Any]:
    """Plain description of the encoded design plus SHA-256 of each of its arrays."""
    return {
        "n": int(design.n),
        "response_name": design.response_name,
        "success_level": design.success_level,
        "x_names": list(design.x_names),
        "dropped_columns": list(design.dropped_columns),
        "blocks": [
            {
                "group": b.group,
                "terms": list(b.terms),
                "levels": [str(v) for v in b.levels],
                "correlated": bool(b.correlated),
            }
            for b in design.blocks
        ],
        "sha256": {
            "X": _sha256_array(np.asarray(design.X, dtype=float)),
            "y": _sha256_array(np.asarray(design.y, dtype=float)),
            "trials": _sha256_array(
                None if design.trials is None else np.asarray(design.trials, dtype=float)
            ),
            "offset": _sha256_array(np.asarray(design.offset, dtype=float)),
            "weights": _sha256_array(
                None if design.weights is None else np.asarray(design.weights, dtype=float)
            ),
            **{
                f"Z[{i}]": _sha256_array(np.asarray(b.Z, dtype=float))
                for i, b in enumerate(design.blocks)
            },
            **{
                f"index[{i}]": _sha256_array(np.asarray(b.index, dtype=np.int64))
                for i, b in enumerate(design.blocks)
            },
        },
    }


def _first_diff(a: list[Any], b: list[Any]) -> str:
    if len(a) != len(b):
        return f"{len(a)} saved, {len(b)} rebuilt"
    i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return f"saved {a[i]!r}, rebuilt {b[i]!r} at position {i}"


def _design_mismatches(saved: dict[str, Any], built: dict[str, Any]) -> list[str]:
    """What differs between a saved design digest and a rebuilt one (empty when equal)."""
    out = []
    if saved["n"] != built["n"]:
        out.append(f"number of rows: {saved['n']} saved, {built['n']} rebuilt")
    for key, what in (
        ("response_name", "response"),
        ("success_level", "success level"),
    ):
        if saved[key] != built[key]:
            out.append(f"{what}: saved {saved[key]!r}, rebuilt {built[key]!r}")
    for key, what in (("x_names", "fixed-effect columns"), ("dropped_columns", "aliased columns")):
        if saved[key] != built[key]:
            out.append(f"{what}: {_first_diff(saved[key], built[key])}")
    if len(saved["blocks"]) != len(built["blocks"]):
        out.append(
            f"random-effect terms: {len(saved['blocks'])} saved, {len(built['blocks'])} rebuilt"
        )
    else:
        for sb, bb in zip(saved["blocks"], built["blocks"], strict=True):
            g = sb["group"]
            for key, what in (("group", "grouping factor"), ("terms", "terms")):
                if sb[key] != bb[key]:
                    out.append(f"{what} of `{g}`: {_first_diff([sb[key]], [bb[key]])}")
            if sb["levels"] != bb["levels"]:
                out.append(f"levels of `{g}`: {_first_diff(sb['levels'], bb['levels'])}")
    if not out:
        for key, h in saved["sha256"].items():
            if built["sha256"].get(key) != h:
                out.append(f"array {key} (SHA-256 differs)")
    return out


# --------------------------------------------------------------------------- fit id
def _posterior_sha(idata: Any) -> str:
    """SHA-256 of the draws' values (every data variable of every group; not attrs)."""
    h = hashlib.sha256()
    for node in sorted(idata.subtree, key=lambda n: n.path):
        ds = node.to_dataset(inherit=False)
        for name in sorted(map(str, ds.data_vars)):
            v = ds[name].values
            h.update(f"{node.path}/{name}{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes() if v.dtype != object else repr(v).encode())
    return h.hexdigest()


def _ml_to_json(ml: Any) -> dict[str, Any]:
    out = {f.name: _jsonable(getattr(ml, f.name)) for f in dataclasses.fields(ml)}
    out["__class__"] = type(ml).__name__
    return out


def _ml_from_json(raw: dict[str, Any]) -> Any:
    from bayesglmm.engines.ml import estimate as ml_types

    raw = _from_json(dict(raw))
    cls = getattr(ml_types, raw.pop("__class__"))
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in raw.items() if k in names}
    for k in ("modes", "cond_var", "covariances"):
        if isinstance(kwargs.get(k), list):
            kwargs[k] = tuple(np.asarray(v) for v in kwargs[k])
    if isinstance(kwargs.get("messages"), list):
        kwargs["messages"] = tuple(kwargs["messages"])
    return cls(**kwargs)


# --------------------------------------------------------------------------- priors
def _priors_from_dict(d: dict[str, Any]) -> Any:
    from bayesglmm.priors import Prior, PriorSet

    def one(p: dict[str, Any] | None) -> Any:
        if p is None:
            return None
        p = dict(p)
        return Prior(p.pop("dist"), **p)

    return PriorSet(
        intercept=one(d["intercept"]),
        fixed={k: one(v) for k, v in d["fixed"].items()},
        sd={k: tuple(one(p) for p in v) for k, v in d["sd"].items()},
        cor={k: one(v) for k, v in d["cor"].items()},
        # fits saved before the dispersion priors had one key, "sigma" (gaussian)
        dispersions={k: one(v) for k, v in d.get("dispersions", {}).items()}
        or ({"sigma": one(d["sigma"])} if d.get("sigma") else {}),
    )


# --------------------------------------------------------------------------- rebuild
def _rebuild_model(
    meta: dict[str, Any], frame: pd.DataFrame, arrays: Any, model_cls: type[GLMM]
) -> GLMM:
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
            priors=_from_json(meta["prior_spec"]),
            centered=meta["centered"],
            **row_args,
        )
    return model


def _model_frame(model: Any, design: Any) -> pd.DataFrame:
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


# --------------------------------------------------------------------------- save
def _existing_id(path: Path) -> str | None:
    try:
        return json.loads((path / FIT_FILE).read_text(encoding="utf-8")).get("fit_id")
    except Exception:  # noqa: BLE001 - any unreadable fit.json: not known to be this fit
        return None


def _write_atomic(target: Path, write: Callable[[Path], None]) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_fit(fit: Any, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``fit`` to the directory ``path``.

    Parameters
    ----------
    fit : GLMMFit
        The fit.
    path : str or Path
        Directory (created if needed).
    overwrite : bool
        Replace a *different* fit already saved in ``path`` (its files are removed first, so
        no stale ``posterior.nc`` stays behind).  Saving the same fit again needs no flag.

    Returns
    -------
    Path

    Raises
    ------
    SavedFitExistsError
        ``path`` holds another saved fit and ``overwrite`` is False.
    SaveLoadError
        A used column cannot be saved exactly, or the model's data no longer reproduce the
        fit's design.
    """
    import bayesglmm

    model = fit._model
    if model is None:
        raise SaveLoadError("this fit has no model attached and cannot be saved")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SaveLoadError(f"`{path}` exists and is not a directory")
    d = fit.design

    # what the fit used, typed, and a check that it rebuilds exactly this design
    frame = _model_frame(model, d)
    schema, arrays = _encode_frame(frame)
    arrays["y"] = np.asarray(d.y, dtype=float)
    if d.row_index is not None:
        arrays["row_index"] = np.asarray(d.row_index, dtype=np.int64)
    trials_col = model.trials if isinstance(model.trials, str) else None
    if d.trials is not None and trials_col is None:
        arrays["trials"] = np.asarray(d.trials, dtype=float)
    rows_used = d.row_index if d.row_index is not None else np.arange(d.n)
    row_cols: dict[str, str | None] = {}
    for key in ("weights", "offset"):
        arg = getattr(model, key, None)
        row_cols[key] = arg if isinstance(arg, str) else None
        if arg is not None and not isinstance(arg, str):  # the fitted rows' values
            vals = pd.to_numeric(pd.Series(np.asarray(arg).reshape(-1))).to_numpy(
                dtype=float, na_value=np.nan
            )
            arrays[f"{key}_arg"] = vals[np.asarray(rows_used)]
    digest = _design_digest(d)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "package_version": bayesglmm.__version__,
        "formula": model.formula,
        "family": d.family.name,
        "link": d.family.link,
        "trials": trials_col,
        **row_cols,
        "priors": fit.priors.to_dict(),
        "prior_spec": _jsonable(model.prior_spec),
        "centered": model.centered,
        "method": fit.method,
        "options": _jsonable({k: v for k, v in fit.user_options.items() if _plain(v)}),
        "info": _jsonable({k: v for k, v in fit.info.as_options().items() if _plain(v)}),
        "elapsed": _jsonable(fit.elapsed),
        "ml": _ml_to_json(fit.ml) if fit.ml is not None else None,
        "health": _jsonable(fit.health) if fit.health else None,
        "columns": schema,
        "rows": {"n_input": int(d.n_input), "n_dropped": int(d.n_dropped)},
        "design": digest,
    }
    try:
        rebuilt = _rebuild_model(meta, _decode_frame(schema, arrays), arrays, type(model))
    except BayesGLMMError as exc:
        raise SaveLoadError(f"this fit cannot be saved: its data do not rebuild: {exc}") from exc
    built = _design_digest(rebuilt.design)
    built["sha256"]["y"] = digest["sha256"]["y"]  # the fitted y is saved as is
    bad = _design_mismatches(digest, built)
    if bad:
        raise SaveLoadError(
            "this fit cannot be saved: the model's data no longer give the design it was "
            f"fitted with ({'; '.join(bad)}). Was the DataFrame changed after the fit? Refit."
        )
    ident = {
        "design": digest["sha256"],
        "x_names": digest["x_names"],
        "levels": [b["levels"] for b in digest["blocks"]],
        "method": fit.method,
        "ml": meta["ml"],
        "posterior": None if fit.idata is None else _posterior_sha(fit.idata),
    }
    fit_id = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    meta["fit_id"] = fit_id
    try:
        text = json.dumps(meta, indent=1, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SaveLoadError(f"this fit cannot be saved: {exc}") from exc

    # refuse to replace another fit; drop every file of the old one
    existing = [path / n for n in KNOWN_FILES if (path / n).exists()]
    if existing and not overwrite and _existing_id(path) != fit_id:
        raise SavedFitExistsError(
            f"`{path}` already holds a different saved fit "
            f"({', '.join(p.name for p in existing)}); pass overwrite=True to replace it, or "
            "choose another directory"
        )
    path.mkdir(parents=True, exist_ok=True)
    written = {FIT_FILE, DATA_FILE}

    if fit.idata is not None:
        tree = fit.idata.copy()
        tree.attrs = {**tree.attrs, FIT_ID_ATTR: fit_id}
        _write_atomic(path / POSTERIOR_FILE, lambda t: tree.to_netcdf(t, engine="h5netcdf"))
        meta["posterior_sha256"] = _sha256_file(path / POSTERIOR_FILE)
        written.add(POSTERIOR_FILE)
    else:
        meta["posterior_sha256"] = None

    def write_npz(t: Path) -> None:
        with open(t, "wb") as fh:
            np.savez(fh, **arrays)

    _write_atomic(path / DATA_FILE, write_npz)
    meta["data_sha256"] = _sha256_file(path / DATA_FILE)
    meta["fit_json_sha256"] = _meta_sha(meta)
    text = json.dumps(meta, indent=1, allow_nan=False)
    _write_atomic(path / FIT_FILE, lambda t: t.write_text(text, encoding="utf-8"))
    for p in existing:  # files of the replaced fit that this one does not have
        if p.name not in written and p.exists():
            p.unlink()
    return path


def _meta_sha(meta: dict[str, Any]) -> str:
    """SHA-256 of fit.json's content (without this entry), so edits of it are detected."""
    body = {k: v for k, v in meta.items() if k != "fit_json_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- load
def _read_meta(path: Path) -> dict[str, Any]:
    import bayesglmm

    meta_file = path / FIT_FILE
    if not meta_file.exists():
        raise SaveLoadError(f"`{path}` is not a saved bayesglmm fit (no {FIT_FILE})")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SavedFitCorruptError(
            f"`{meta_file}` is corrupt (not valid JSON: {exc}); the fit cannot be loaded"
        ) from exc
    if not isinstance(meta, dict):
        raise SavedFitCorruptError(f"`{meta_file}` is corrupt (not a JSON object)")
    fv = meta.get("format_version")
    if fv != FORMAT_VERSION:
        raise SaveLoadError(
            f"`{path}` was saved in format version {fv} by bayesglmm "
            f"{meta.get('package_version', '?')}; this bayesglmm {bayesglmm.__version__} reads "
            f"format version {FORMAT_VERSION} only. Refit with this version."
        )
    major = str(meta.get("package_version", "0")).split(".")[:2]
    if major != bayesglmm.__version__.split(".")[:2]:
        raise SaveLoadError(
            f"`{path}` was saved by bayesglmm {meta.get('package_version')}, incompatible with "
            f"{bayesglmm.__version__} (major.minor differ). Refit with this version."
        )
    if meta.get("fit_json_sha256") != _meta_sha(meta):
        raise SavedFitCorruptError(
            f"`{meta_file}` was changed after saving (its content does not match the SHA-256 "
            "recorded in it); save the fit again"
        )
    return meta


def _check_file(path: Path, name: str, expected: str | None) -> None:
    f = path / name
    if not f.exists():
        raise SavedFitCorruptError(f"`{f}` is missing; the saved fit is incomplete")
    if _sha256_file(f) != expected:
        raise SavedFitCorruptError(
            f"`{f}` does not match the SHA-256 recorded in {FIT_FILE}: it is truncated, "
            "corrupt, or comes from another fit. Save the fit again."
        )


def _load_posterior(path: Path, meta: dict[str, Any]) -> Any:
    f = path / POSTERIOR_FILE
    expected = meta.get("posterior_sha256")
    if expected is None:
        if f.exists():
            raise SavedFitMismatchError(
                f"`{f}` does not belong to this fit: fit.json (method {meta['method']!r}) "
                "records no posterior. Save the fit again with overwrite=True."
            )
        return None
    if not f.exists():
        raise SavedFitCorruptError(f"`{f}` is missing; the saved fit is incomplete")
    try:
        idata = xr.open_datatree(f, engine="h5netcdf").load()
    except Exception as exc:  # noqa: BLE001 - h5py/netCDF errors of a truncated file
        raise SavedFitCorruptError(
            f"`{f}` cannot be read ({type(exc).__name__}: {exc}); it is truncated or corrupt"
        ) from exc
    owner = idata.attrs.get(FIT_ID_ATTR)
    if owner != meta["fit_id"]:
        raise SavedFitMismatchError(
            f"`{f}` belongs to another fit (id {owner}, this fit is {meta['fit_id']}); "
            "save the fit again"
        )
    _check_file(path, POSTERIOR_FILE, expected)
    attrs = dict(idata.attrs)
    attrs.pop(FIT_ID_ATTR, None)
    idata.attrs = attrs
    return idata


def read_fit(path: str | Path, fit_cls: type[GLMMFit], model_cls: type[GLMM]) -> GLMMFit:
    """Read a fit written by :func:`save_fit` as ``fit_cls`` holding a ``model_cls``; the
    public entry point is :func:`bayesglmm.load_fit` (:func:`bayesglmm.model.load_fit`),
    which passes the package's classes (so that this module needs neither).

    Raises
    ------
    SaveLoadError, SavedFitCorruptError, SavedFitMismatchError
        As :func:`bayesglmm.load_fit`.
    """
    path = Path(path)
    meta = _read_meta(path)
    try:
        return _load(path, meta, fit_cls, model_cls)
    except KeyError as exc:
        raise SavedFitCorruptError(
            f"`{path / FIT_FILE}` is corrupt (missing entry {exc}); the fit cannot be loaded"
        ) from exc


def _load(
    path: Path, meta: dict[str, Any], fit_cls: type[GLMMFit], model_cls: type[GLMM]
) -> GLMMFit:
    _check_file(path, DATA_FILE, meta["data_sha256"])
    try:
        with np.load(path / DATA_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        frame = _decode_frame(meta["columns"], arrays)
    except (SaveLoadError, KeyError):
        raise
    except Exception as exc:  # noqa: BLE001 - zip/npy errors of a damaged file
        raise SavedFitCorruptError(
            f"`{path / DATA_FILE}` cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    idata = _load_posterior(path, meta)
    try:
        model = _rebuild_model(meta, frame, arrays, model_cls)
    except BayesGLMMError as exc:
        raise SavedFitMismatchError(
            f"the data saved in `{path / DATA_FILE}` no longer build the model: {exc}"
        ) from exc
    y = np.asarray(arrays["y"], dtype=float)
    if y.shape != model.design.y.shape:
        raise SavedFitMismatchError(
            f"the saved response has {y.shape[0]} values but the saved data give "
            f"{model.design.n} rows"
        )
    if not np.array_equal(y, model.design.y):
        model = model.with_response(y)  # a with_response fit: the response it fitted
    bad = _design_mismatches(meta["design"], _design_digest(model.design))
    if bad:
        raise SavedFitMismatchError(
            f"the design rebuilt from `{path}` differs from the one the fit used: {'; '.join(bad)}"
        )
    rows = meta["rows"]
    priors = _priors_from_dict(meta["priors"])
    model.design = dataclasses.replace(
        model.design,
        n_input=rows["n_input"],
        n_dropped=rows["n_dropped"],
        row_index=arrays.get("row_index"),
    )
    model.priors = priors
    return fit_cls(
        model.design,
        priors,
        meta["method"],
        idata=idata,
        ml=_ml_from_json(meta["ml"]) if meta["ml"] is not None else None,
        elapsed=float(_from_json(meta["elapsed"])),
        options=_from_json(meta["options"]),
        # (a fit saved before FitInfo existed has its diagnostics among its options)
        info=FitInfo.from_dict(_from_json(meta.get("info", {}))),
        health=_from_json(meta["health"]) if meta["health"] else None,
        model=model,
    )
