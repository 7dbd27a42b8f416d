"""``bayesglmm.load_fit(path)``: read a saved fit back, checking every file and the rebuilt
design against the checksums saved with it (see :mod:`bayesglmm.io`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from bayesglmm.engines.types import FitInfo
from bayesglmm.errors import (
    BayesGLMMError,
    SavedFitCorruptError,
    SavedFitMismatchError,
    SaveLoadError,
)
from bayesglmm.io.checksums import design_digest, design_mismatches, sha256_file
from bayesglmm.io.fit_json import (
    DATA_FILE,
    FIT_FILE,
    FIT_ID_ATTR,
    FORMAT_VERSION,
    POSTERIOR_FILE,
    from_json,
    meta_sha,
    ml_from_json,
    priors_from_dict,
)
from bayesglmm.io.frame_codec import decode_frame
from bayesglmm.io.rebuild import rebuild_model

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike, ModelLike


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
    if meta.get("fit_json_sha256") != meta_sha(meta):
        raise SavedFitCorruptError(
            f"`{meta_file}` was changed after saving (its content does not match the SHA-256 "
            "recorded in it); save the fit again"
        )
    return meta


def _check_file(path: Path, name: str, expected: str | None) -> None:
    f = path / name
    if not f.exists():
        raise SavedFitCorruptError(f"`{f}` is missing; the saved fit is incomplete")
    if sha256_file(f) != expected:
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


def read_fit[F: FitLike](
    path: str | Path, fit_cls: Callable[..., F], model_cls: Callable[..., ModelLike]
) -> F:
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


def _load[F: FitLike](
    path: Path, meta: dict[str, Any], fit_cls: Callable[..., F], model_cls: Callable[..., ModelLike]
) -> F:
    _check_file(path, DATA_FILE, meta["data_sha256"])
    try:
        with np.load(path / DATA_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        frame = decode_frame(meta["columns"], arrays)
    except (SaveLoadError, KeyError):
        raise
    except Exception as exc:  # noqa: BLE001 - zip/npy errors of a damaged file
        raise SavedFitCorruptError(
            f"`{path / DATA_FILE}` cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    idata = _load_posterior(path, meta)
    try:
        model = rebuild_model(meta, frame, arrays, model_cls)
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
    bad = design_mismatches(meta["design"], design_digest(model.design))
    if bad:
        raise SavedFitMismatchError(
            f"the design rebuilt from `{path}` differs from the one the fit used: {'; '.join(bad)}"
        )
    rows = meta["rows"]
    priors = priors_from_dict(meta["priors"])
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
        ml=ml_from_json(meta["ml"]) if meta["ml"] is not None else None,
        elapsed=float(from_json(meta["elapsed"])),
        options=from_json(meta["options"]),
        # (a fit saved before FitInfo existed has its diagnostics among its options)
        info=FitInfo.from_dict(from_json(meta.get("info", {}))),
        health=from_json(meta["health"]) if meta["health"] else None,
        model=model,
    )
