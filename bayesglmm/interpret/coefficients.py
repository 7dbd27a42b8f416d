"""lme4's ``coef``: per grouping factor, the fixed effects plus that factor's random
effects for every level."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def coef(fit: Any) -> dict[str, pd.DataFrame]:
    """Fixed plus random effects per level of each grouping factor (lme4's ``coef``).

    Returns
    -------
    dict of str -> DataFrame
        One entry per grouping factor (blocks of the same factor combined): levels x
        coefficients, with every fixed effect (the fixed value where the factor has no
        random effect for it) and any random-only term.  Bayesian fits give posterior means
        (the mean of ``beta + b``); ML fits the estimate plus the conditional modes.
    """
    d = fit.design
    fixef = fit.draws_fixed().mean(axis=0)
    out: dict[str, pd.DataFrame] = {}
    for i, b in enumerate(d.blocks):
        r = fit.draws_ranef(i).mean(axis=0)  # (L, p)
        if b.group not in out:
            out[b.group] = pd.DataFrame(
                np.broadcast_to(fixef, (b.n_levels, d.k)).copy(),
                index=pd.Index(list(b.levels), name=b.group),
                columns=list(d.x_names),
            )
        tab = out[b.group]
        for j, t in enumerate(b.terms):
            if t not in tab.columns:
                tab[t] = 0.0
            vals = pd.Series(r[:, j], index=list(b.levels))
            tab.loc[vals.index, t] = tab.loc[vals.index, t].to_numpy() + vals.to_numpy()
    return out
