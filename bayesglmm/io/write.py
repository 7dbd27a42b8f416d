"""``fit.save(path)``: write a fit to a directory (see :mod:`bayesglmm.io`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesglmm.errors import BayesGLMMError, SavedFitExistsError, SaveLoadError
from bayesglmm.io.checksums import design_digest, design_mismatches, posterior_sha, sha256_file
from bayesglmm.io.fit_json import (
    DATA_FILE,
    FIT_FILE,
    FIT_ID_ATTR,
    FORMAT_VERSION,
    KNOWN_FILES,
    POSTERIOR_FILE,
    is_plain,
    jsonable,
    meta_sha,
    ml_to_json,
)
from bayesglmm.io.frame_codec import decode_frame, encode_frame
from bayesglmm.io.rebuild import model_frame, rebuild_model


def _existing_id(path: Path) -> str | None:
    try:
        return json.loads((path / FIT_FILE).read_text(encoding="utf-8")).get("fit_id")
    except Exception:  # noqa: BLE001 - any unreadable fit.json: not known to be this fit
        return None


def _write_atomic(target: Path, write: Callable[[Path], object]) -> None:
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
    frame = model_frame(model, d)
    schema, arrays = encode_frame(frame)
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
    digest = design_digest(d)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "package_version": bayesglmm.__version__,
        "formula": model.formula,
        "family": d.family.name,
        "link": d.family.link,
        "trials": trials_col,
        **row_cols,
        "priors": fit.priors.to_dict(),
        "prior_spec": jsonable(model.prior_spec),
        "centered": model.centered,
        "method": fit.method,
        "options": jsonable({k: v for k, v in fit.user_options.items() if is_plain(v)}),
        "info": jsonable({k: v for k, v in fit.info.as_options().items() if is_plain(v)}),
        "elapsed": jsonable(fit.elapsed),
        "ml": ml_to_json(fit.ml) if fit.ml is not None else None,
        "health": jsonable(fit.health) if fit.health else None,
        "columns": schema,
        "rows": {"n_input": int(d.n_input), "n_dropped": int(d.n_dropped)},
        "design": digest,
    }
    try:
        rebuilt = rebuild_model(meta, decode_frame(schema, arrays), arrays, type(model))
    except BayesGLMMError as exc:
        raise SaveLoadError(f"this fit cannot be saved: its data do not rebuild: {exc}") from exc
    built = design_digest(rebuilt.design)
    built["sha256"]["y"] = digest["sha256"]["y"]  # the fitted y is saved as is
    bad = design_mismatches(digest, built)
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
        "posterior": None if fit.idata is None else posterior_sha(fit.idata),
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
        meta["posterior_sha256"] = sha256_file(path / POSTERIOR_FILE)
        written.add(POSTERIOR_FILE)
    else:
        meta["posterior_sha256"] = None

    def write_npz(t: Path) -> None:
        # (typed Any: numpy's stub reads ``**arrays`` as possibly its ``allow_pickle`` flag)
        named: dict[str, Any] = arrays
        with open(t, "wb") as fh:
            np.savez(fh, **named)

    _write_atomic(path / DATA_FILE, write_npz)
    meta["data_sha256"] = sha256_file(path / DATA_FILE)
    meta["fit_json_sha256"] = meta_sha(meta)
    text = json.dumps(meta, indent=1, allow_nan=False)
    _write_atomic(path / FIT_FILE, lambda t: t.write_text(text, encoding="utf-8"))
    for p in existing:  # files of the replaced fit that this one does not have
        if p.name not in written and p.exists():
            p.unlink()
    return path
