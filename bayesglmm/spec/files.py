"""Spec files on disk: :func:`load_spec` reads and validates one, :func:`list_specs` a
directory of them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from bayesglmm.errors import SpecError
from bayesglmm.spec.model_spec import ModelSpec

__all__ = ["list_specs", "load_spec"]


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a ``models/*.toml`` spec.

    Parameters
    ----------
    path : path
        The TOML file.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML, or fails validation (the message names
        the file and the bad key or value).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file `{p}`: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"{p}: not valid UTF-8 text: byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"line {line} (offset {exc.start}); save the file as UTF-8"
        ) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: invalid TOML: {exc}") from exc
    return ModelSpec.from_dict(raw, source=str(p), base_dir=p.parent)


def list_specs(directory: str | Path) -> pd.DataFrame:
    """Load every ``*.toml`` spec in ``directory``.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``title``, ``data``, ``formula``, ``family``, ``methods``,
        ``reference`` (the reference's nAGQ, or empty), ``path``; sorted by name.

    Raises
    ------
    SpecError
        If the directory does not exist or a spec in it is invalid.
    """
    d = Path(directory)
    if not d.is_dir():
        raise SpecError(f"spec directory `{d}` does not exist")
    rows = []
    for f in sorted(d.glob("*.toml")):
        s = load_spec(f)
        rows.append(
            (
                s.name,
                s.title,
                s.source_label,
                s.formula,
                s.family if s.link is None else f"{s.family}/{s.link}",
                ", ".join(s.methods),
                "" if s.reference is None else f"ml nAGQ={s.reference.nagq}",
                str(f),
            )
        )
    return pd.DataFrame(
        rows,
        columns=["name", "title", "data", "formula", "family", "methods", "reference", "path"],
    )
