"""The layout of a saved fit (format version, file names) and the JSON of ``fit.json``:
numbers that JSON cannot hold, the ML estimate, the priors, the checksum of the file itself."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import numpy as np

FORMAT_VERSION = 2
FIT_FILE = "fit.json"
DATA_FILE = "data.npz"
POSTERIOR_FILE = "posterior.nc"
# every file a save writes (or an older version wrote): removed when a fit is replaced
KNOWN_FILES = (FIT_FILE, DATA_FILE, POSTERIOR_FILE, "frame.csv")
FIT_ID_ATTR = "bayesglmm_fit_id"


def jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return {"__array__": jsonable(x.tolist()), "shape": list(x.shape), "dtype": x.dtype.str}
    if isinstance(x, tuple | list):
        return [jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if hasattr(x, "to_dict") and hasattr(x, "dist"):  # a Prior in a user prior spec
        return x.to_dict()
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return {"__float__": str(x)}
    return x


def from_json(x: Any) -> Any:
    if isinstance(x, dict) and "__array__" in x:
        dtype = np.dtype(x.get("dtype", "<f8"))
        return np.asarray(from_json(x["__array__"]), dtype=dtype).reshape(x["shape"])
    if isinstance(x, dict) and "__float__" in x:
        return float(x["__float__"])
    if isinstance(x, dict):
        return {k: from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_json(v) for v in x]
    return x


def is_plain(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None) | list | tuple | dict)


def ml_to_json(ml: Any) -> dict[str, Any]:
    out = {f.name: jsonable(getattr(ml, f.name)) for f in dataclasses.fields(ml)}
    out["__class__"] = type(ml).__name__
    return out


def ml_from_json(raw: dict[str, Any]) -> Any:
    from bayesglmm.engines.ml import estimate as ml_types

    raw = from_json(dict(raw))
    cls = getattr(ml_types, raw.pop("__class__"))
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in raw.items() if k in names}
    for k in ("modes", "cond_var", "covariances"):
        if isinstance(kwargs.get(k), list):
            kwargs[k] = tuple(np.asarray(v) for v in kwargs[k])
    if isinstance(kwargs.get("messages"), list):
        kwargs["messages"] = tuple(kwargs["messages"])
    return cls(**kwargs)


def priors_from_dict(d: dict[str, Any]) -> Any:
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


def meta_sha(meta: dict[str, Any]) -> str:
    """SHA-256 of fit.json's content (without this entry), so edits of it are detected."""
    body = {k: v for k, v in meta.items() if k != "fit_json_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
