"""SHA-256 checksums of saved files, of a design's arrays and of the draws, and the comparison
of two design digests that names what differs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_array(a: np.ndarray | None) -> str | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def design_digest(design: Any) -> dict[str, Any]:
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
            "X": sha256_array(np.asarray(design.X, dtype=float)),
            "y": sha256_array(np.asarray(design.y, dtype=float)),
            "trials": sha256_array(
                None if design.trials is None else np.asarray(design.trials, dtype=float)
            ),
            "offset": sha256_array(np.asarray(design.offset, dtype=float)),
            "weights": sha256_array(
                None if design.weights is None else np.asarray(design.weights, dtype=float)
            ),
            **{
                f"Z[{i}]": sha256_array(np.asarray(b.Z, dtype=float))
                for i, b in enumerate(design.blocks)
            },
            **{
                f"index[{i}]": sha256_array(np.asarray(b.index, dtype=np.int64))
                for i, b in enumerate(design.blocks)
            },
        },
    }


def _first_diff(a: list[Any], b: list[Any]) -> str:
    if len(a) != len(b):
        return f"{len(a)} saved, {len(b)} rebuilt"
    i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return f"saved {a[i]!r}, rebuilt {b[i]!r} at position {i}"


def design_mismatches(saved: dict[str, Any], built: dict[str, Any]) -> list[str]:
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


def posterior_sha(idata: Any) -> str:
    """SHA-256 of the draws' values (every data variable of every group; not attrs)."""
    h = hashlib.sha256()
    for node in sorted(idata.subtree, key=lambda n: n.path):
        ds = node.to_dataset(inherit=False)
        for name in sorted(map(str, ds.data_vars)):
            v = ds[name].values
            h.update(f"{node.path}/{name}{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes() if v.dtype != object else repr(v).encode())
    return h.hexdigest()
