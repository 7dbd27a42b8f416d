"""Save and load fits: ``fit.save(path)`` / ``bayesglmm.load_fit(path)``.

A saved fit is a directory:

* ``fit.json``: format version, package version, the spec (formula, family, link, trials,
  priors, method and its options), the model frame's column types and categories, and ML
  estimates when present;
* ``frame.csv``: the used columns of the fitted rows (the design's encoding state is
  rebuilt from it exactly: levels, factor codings, offsets);
* ``posterior.nc``: the draws (netCDF via h5netcdf), for Bayesian fits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesglmm.errors import SaveLoadError

FORMAT_VERSION = 1


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return {"__array__": x.tolist(), "shape": list(x.shape)}
    if isinstance(x, tuple | list):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _from_json(x: Any) -> Any:
    if isinstance(x, dict) and "__array__" in x:
        return np.asarray(x["__array__"], dtype=float).reshape(x["shape"])
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    if x in ("nan", "inf", "-inf"):
        return float(x)
    return x


def save_fit(fit, path: str | Path) -> Path:  # noqa: ANN001
    """Write ``fit`` to the directory ``path`` (created; existing files replaced)."""
    import bayesglmm
    from bayesglmm.design import _materialize  # noqa: F401 - keeps the dependency explicit

    model = fit._model
    if model is None:
        raise SaveLoadError("this fit has no model attached and cannot be saved")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    d = fit.design
    enc = d.encoder
    cols = list(enc.dtypes)
    frame = model._data_frame.iloc[d.row_index][cols] if model._data_frame is not None else None
    if frame is None:
        raise SaveLoadError("the model's data frame is not available")
    frame.to_csv(path / "frame.csv", index=False)
    cats = {
        c: [str(v) for v in frame[c].cat.categories]
        for c in cols
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    ml = None
    if fit.ml is not None:
        ml = (
            {k: _jsonable(v) for k, v in vars(fit.ml).items()}
            if hasattr(fit.ml, "__dict__")
            else None
        )
        if ml is None:
            import dataclasses

            ml = {k: _jsonable(v) for k, v in dataclasses.asdict(fit.ml).items()}
        ml["__class__"] = type(fit.ml).__name__
    meta = {
        "format_version": FORMAT_VERSION,
        "package_version": bayesglmm.__version__,
        "formula": model.formula,
        "family": d.family.name,
        "link": d.family.link,
        "trials": model.trials if isinstance(model.trials, str) else None,
        "priors": fit.priors.to_dict(),
        "prior_spec": _jsonable(model.prior_spec),
        "centered": model.centered,
        "method": fit.method,
        "options": _jsonable({k: v for k, v in fit.options.items() if _plain(v)}),
        "elapsed": fit.elapsed,
        "dtypes": {c: str(frame[c].dtype) for c in cols},
        "categories": cats,
        "ml": ml,
        "health": _jsonable(fit.health) if fit.health else None,
    }
    (path / "fit.json").write_text(json.dumps(meta, indent=1))
    if fit.idata is not None:
        tree = fit.idata.copy()
        tree.to_netcdf(path / "posterior.nc", engine="h5netcdf")
    return path


def _plain(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None) | list | tuple | dict)


def load_fit(path: str | Path):  # noqa: ANN201
    """Load a fit written by :meth:`GLMMFit.save`.

    Raises
    ------
    SaveLoadError
        If the directory is not a saved fit or comes from an incompatible version.
    """
    import bayesglmm
    from bayesglmm.model import GLMM
    from bayesglmm.results import GLMMFit

    path = Path(path)
    meta_file = path / "fit.json"
    if not meta_file.exists():
        raise SaveLoadError(f"`{path}` is not a saved bayesglmm fit (no fit.json)")
    meta = json.loads(meta_file.read_text())
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
    frame = pd.read_csv(path / "frame.csv")
    for c, dt in meta["dtypes"].items():
        if c in meta["categories"]:
            frame[c] = pd.Categorical(frame[c].astype(str), categories=meta["categories"][c])
        elif dt.startswith(("int", "float", "bool")):
            frame[c] = frame[c].astype(dt)
        else:
            frame[c] = frame[c].astype(str)
    model = GLMM(
        meta["formula"],
        frame,
        meta["family"],
        link=meta["link"],
        trials=meta["trials"],
        priors=_from_json(meta["prior_spec"]),
        centered=meta["centered"],
    )
    ml = None
    if meta["ml"] is not None:
        from bayesglmm.inference import ml_types

        raw = _from_json(dict(meta["ml"]))
        cls = getattr(ml_types, raw.pop("__class__"))
        import dataclasses

        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in names}
        for k in ("modes", "cond_var", "covariances", "messages"):
            if k in kwargs and isinstance(kwargs[k], list):
                kwargs[k] = tuple(np.asarray(v) if k != "messages" else v for v in kwargs[k])
        ml = cls(**kwargs)
    idata = None
    if (path / "posterior.nc").exists():
        idata = xr.open_datatree(path / "posterior.nc", engine="h5netcdf").load()
    return GLMMFit(
        model.design,
        model.priors,
        meta["method"],
        idata=idata,
        ml=ml,
        elapsed=float(meta["elapsed"]),
        options=_from_json(meta["options"]),
        health=_from_json(meta["health"]) if meta["health"] else None,
        model=model,
    )
