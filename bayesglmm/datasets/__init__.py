"""The course datasets, shipped with the package.

Provenance of every file is in ``PROVENANCE.md`` next to this module (copied from the
course's data README).  ``load(name)`` returns a fresh :class:`pandas.DataFrame`.

Two datasets get factor codings that the CSV files cannot store: toenail's ``outcome`` and
``treatment`` are categoricals in HSAUR3's level order (so ``outcome`` models
P("moderate or severe"), as in R), and polls gets labelled ``edu_label`` / ``age_label``
factors from the ``edu`` / ``age`` codes.
"""

from __future__ import annotations

import difflib
from importlib import resources

import pandas as pd

from bayesglmm.errors import DesignError

_FILES: dict[str, tuple[str, str]] = {
    "rikz": ("RIKZ.csv", "Zuur et al. (2009) beaches: species richness on 9 beaches (45 rows)"),
    "polls": (
        "polls_subset.csv",
        "CBS News 1988 pre-election survey, Gelman & Hill ch. 14 (2193 rows, 178 NA in bush)",
    ),
    "toenail": (
        "toenail.csv",
        "De Backer et al. (1998) onychomycosis trial (1908 rows, 294 patients)",
    ),
    "epilepsy": ("epilepsy_long.csv", "Thall & Vail (1990) seizure counts (295 rows, 59 subjects)"),
    "hdp": ("hdp.csv", "UCLA simulated hospital-doctor-patient data (8525 rows, 407 doctors)"),
}
_ALIASES = {
    "beaches": "rikz",
    "polls_subset": "polls",
    "epilepsy_long": "epilepsy",
    "hospital": "hdp",
}


def list() -> pd.DataFrame:  # noqa: A001 - public name fixed by the API contract
    """The available datasets with a one-line description.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``file``, ``description``.
    """
    return pd.DataFrame(
        [(k, f, d) for k, (f, d) in _FILES.items()], columns=["name", "file", "description"]
    )


def load(name: str) -> pd.DataFrame:
    """Load a course dataset by name.

    Parameters
    ----------
    name : str
        One of ``rikz``, ``polls``, ``toenail``, ``epilepsy``, ``hdp`` (case-insensitive;
        the file stem such as ``polls_subset`` also works).

    Returns
    -------
    pandas.DataFrame
    """
    key = str(name).lower().removesuffix(".csv")
    key = _ALIASES.get(key, key)
    if key not in _FILES:
        close = difflib.get_close_matches(key, [*_FILES, *_ALIASES], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DesignError(f"unknown dataset `{name}`{hint} Available: {', '.join(_FILES)}")
    path = resources.files(__name__).joinpath(_FILES[key][0])
    with resources.as_file(path) as p:
        df = pd.read_csv(p)
    return _FACTORS.get(key, lambda d: d)(df)


def _toenail(df: pd.DataFrame) -> pd.DataFrame:
    # HSAUR3 stores `outcome` as a factor with levels in this order, so R (and we) model
    # P(outcome == "moderate or severe"); the CSV loses that order.
    df["outcome"] = pd.Categorical(df["outcome"], categories=["none or mild", "moderate or severe"])
    df["treatment"] = pd.Categorical(df["treatment"], categories=["itraconazole", "terbinafine"])
    return df


_EDU = {1: "< HS", 2: "HS", 3: "Some College", 4: "College Grad"}
_AGE = {1: "18-29", 2: "30-44", 3: "45-64", 4: "65+"}


def _polls(df: pd.DataFrame) -> pd.DataFrame:
    # Labelled factors of the Gelman & Hill ch. 14 codes (edu 1-4, age 1-4), as the course uses
    df["edu_label"] = pd.Categorical(df["edu"].map(_EDU), categories=[*_EDU.values()])
    df["age_label"] = pd.Categorical(df["age"].map(_AGE), categories=[*_AGE.values()])
    return df


_FACTORS = {"toenail": _toenail, "polls": _polls}
