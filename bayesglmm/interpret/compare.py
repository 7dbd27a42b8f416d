"""Side-by-side comparison of fits by different methods (the course's toenail table)."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayesglmm.errors import BayesGLMMError
from bayesglmm.quiet import ignoring_warnings

if TYPE_CHECKING:
    from bayesglmm.fit_protocol import FitLike


def _unique_labels(fits: Sequence[FitLike]) -> list[str]:
    labels: list[str] = []
    seen: dict[str, int] = {}
    for f in fits:
        lab = f.label
        seen[lab] = seen.get(lab, 0) + 1
        labels.append(lab if seen[lab] == 1 else f"{lab}_{seen[lab]}")
    return labels


def param_draws(
    fit: FitLike, *, extras: bool = True, dispersion: bool | None = None
) -> dict[str, np.ndarray]:
    """Parameter name -> draws ``(S,)`` (ML: one value): fixed effects and group SDs.

    With ``extras`` also the group correlations, the family's dispersion parameters by name
    (``sigma``, negative binomial ``shape``; ``dispersion`` overrides: SBC ranks them) and
    the latent-scale ICCs.  Shared
    by :func:`compare`, :func:`bayesglmm.interpret.forest_plot.plot_compare` and SBC.
    """
    out: dict[str, np.ndarray] = {}
    B = fit.draws_fixed()
    for j, name in enumerate(fit.design.x_names):
        out[name] = B[:, j]
    for i, b in enumerate(fit.design.blocks):
        cov = fit.draws_cov(i)
        sd = np.sqrt(np.einsum("sii->si", cov))
        for j, t in enumerate(b.terms):
            out[f"sd({b.group}: {t})"] = sd[:, j]
        if extras and b.correlated:
            for j in range(b.n_terms):
                for k in range(j + 1, b.n_terms):
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[f"cor({b.group}: {b.terms[j]}, {b.terms[k]})"] = cov[:, j, k] / (
                            sd[:, j] * sd[:, k]
                        )
    if extras if dispersion is None else dispersion:
        out.update(fit.draws_dispersion())
    if not extras:
        return out
    if fit.design.blocks:
        from bayesglmm.interpret.icc import icc_draws

        with ignoring_warnings():
            for which, v in icc_draws(fit).items():
                if which != "conditional":
                    out[f"ICC({which})"] = v
    return out


def _loglik_aic(fit: FitLike) -> tuple[float, float]:
    """An ML fit's properly normalized log-likelihood and its AIC (NaN for other fits).

    The normalized value, not glmer's ``nAGQ > 1`` convention (relative to the saturated
    model), so that every ML fit in the table, a GLM's included, is on one scale.
    """
    if fit.ml is None or fit.method != "ml":
        return np.nan, np.nan
    ll = float(getattr(fit.ml, "loglik_normalized", np.nan))
    if not np.isfinite(ll):
        ll = float(fit.loglik)
    return ll, -2.0 * ll + 2.0 * fit.n_params


_METHOD_WORDS = {
    "nuts": "posterior mean (NUTS)",
    "laplace": "posterior mean (integrated Laplace)",
    "advi": "posterior mean (mean-field ADVI)",
    "fullrank_advi": "posterior mean (full-rank ADVI)",
    "pql": "estimate (PQL)",
    "ml": "estimate (ML)",
}


def _column_word(fit: FitLike) -> str:
    """What a fit's column holds, with the scale of its logLik for ML fits."""
    if fit.ml is not None and fit.method == "ml":
        nagq = int(getattr(fit.ml, "nagq", 1) or 1)
        how = "Laplace" if nagq <= 1 else f"adaptive Gauss-Hermite, {nagq} nodes"
        if not fit.design.blocks:
            how = "GLM, exact"
        word = f"estimate (ML, {how}); logLik normalized"
        norm = float(getattr(fit.ml, "loglik_normalized", np.nan))
        if nagq > 1 and np.isfinite(fit.loglik) and abs(fit.loglik - norm) > 1e-6:
            word += f" (glmer's nAGQ > 1 value, fit.loglik, is {fit.loglik:.2f})"
        return word
    return _METHOD_WORDS.get(fit.method, f"estimate ({fit.method})") + "; no logLik"


class CompareTable(pd.DataFrame):
    """:func:`compare`'s table: a :class:`pandas.DataFrame` whose printed form (``print``,
    the notebook's HTML) ends with a legend saying what every column and row holds.

    The legend is ``table.attrs["legend"]`` (a list of lines); anything derived from the
    table (a slice, ``round()``) is a plain DataFrame without it.
    """

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def legend(self) -> str:
        """The legend as text (empty if there is none)."""
        return "\n".join(self.attrs.get("legend", []))

    def __repr__(self) -> str:
        text = super().__repr__()
        return f"{text}\n\n{self.legend()}" if self.attrs.get("legend") else text

    def _repr_html_(self) -> str | None:
        html = super()._repr_html_()
        if html is None or not self.attrs.get("legend"):
            return html
        import html as _html

        items = "".join(f"<li>{_html.escape(line)}</li>" for line in self.attrs["legend"])
        return f"{html}<ul style='font-size:smaller'>{items}</ul>"


def _legend(fits: Sequence[FitLike], labels: list[str], ref: int | None) -> list[str]:
    """The table's legend, one wrapped item per line."""
    items = [f"{lab}: {_column_word(f)}" for lab, f in zip(labels, fits, strict=True)]
    if ref is not None:
        r = labels[ref]
        items.append(
            f"<fit> dist: (the fit's value - {r}'s posterior mean) / {r}'s posterior SD, the "
            f"distance from the reference fit `{r}` in posterior SDs"
        )
    items += [
        "rows: fixed effects on the link scale; sd(group: term), cor(group: a, b): the "
        "random-effect SDs and correlations; ICC(...) on the latent scale",
        "logLik: the log-likelihood at the ML estimate (ML fits only), properly normalized for "
        "every nAGQ, as lme4 reports it for nAGQ = 1 (not glmer's nAGQ > 1 value, which is "
        "relative to the saturated model): all ML columns, a GLM's too, are on one scale; "
        "AIC = -2 logLik + 2 x parameters",
        "elapsed_s: the fit's wall time in seconds",
    ]
    return [textwrap.fill(t, width=100, subsequent_indent="    ") for t in items]


def compare(fits: Sequence[FitLike], reference: int | str | None = None) -> CompareTable:
    """Compare fits by any methods in one table.

    Parameters
    ----------
    fits : sequence of GLMMFit
        Fits of the same model by different methods.
    reference : int or str, optional
        Index or label of the reference fit for the distances; default the NUTS fit if
        present (else none).

    Returns
    -------
    CompareTable
        A :class:`pandas.DataFrame` that prints a legend below itself
        (``table.attrs["legend"]``).  Rows: fixed effects, group SDs and correlations, ICCs
        (latent scale), ``logLik`` and ``AIC`` (ML fits only; the log-likelihood properly
        normalized for every ``nagq``, so a GLM's and a GLMM's, Laplace and AGQ, are on one
        scale; glmer's ``nAGQ > 1`` value, relative to the saturated model, is not used),
        ``elapsed_s``.  Columns: one per fit (posterior mean, or the estimate), plus
        ``<method> dist`` columns with each fit's distance from the reference fit in units
        of the reference's posterior SD (``table.attrs["reference"]`` names it).
    """
    fits = list(fits)
    if not fits:
        raise BayesGLMMError("compare() needs at least one fit")
    labels = _unique_labels(fits)
    per = [param_draws(f) for f in fits]
    names = list(dict.fromkeys(k for p in per for k in p))
    table = pd.DataFrame(
        {
            lab: [float(np.mean(p[n])) if n in p else np.nan for n in names]
            for lab, p in zip(labels, per, strict=True)
        },
        index=names,
    )
    extra = pd.DataFrame(
        {lab: [*_loglik_aic(f), f.elapsed] for lab, f in zip(labels, fits, strict=True)},
        index=["logLik", "AIC", "elapsed_s"],
    )
    table = pd.concat([table, extra])
    if reference is None:
        ref = next((i for i, f in enumerate(fits) if f.method == "nuts"), None)
    elif isinstance(reference, str):
        if reference not in labels:
            raise BayesGLMMError(f"unknown reference `{reference}`; have {labels}")
        ref = labels.index(reference)
    else:
        ref = int(reference)
    if ref is not None:
        if not fits[ref].is_bayesian:
            raise BayesGLMMError("the reference fit must carry posterior draws (e.g. NUTS)")
        rp = per[ref]
        for lab, p in zip(labels, per, strict=True):
            if lab == labels[ref]:
                continue
            dist = []
            for n in names:
                if n in p and n in rp and np.std(rp[n]) > 0:
                    dist.append(float((np.mean(p[n]) - np.mean(rp[n])) / np.std(rp[n], ddof=1)))
                else:
                    dist.append(np.nan)
            table[f"{lab} dist"] = dist + [np.nan] * len(extra)
        table.attrs["reference"] = labels[ref]
    table.index.name = "parameter"
    out = CompareTable(table)
    out.attrs.update(table.attrs)
    out.attrs["legend"] = _legend(fits, labels, ref)
    return out


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`compare`.

    Importing ``bayesglmm.interpret.compare`` (``plots`` and ``calibration`` do, for
    :func:`param_draws`) makes the import system set the package attribute
    ``bayesglmm.interpret.compare`` to this module, replacing the lazily loaded function: after
    ``fit.plot_ranef()``, ``bg.compare([...])`` raised "'module' object is not callable".
    """

    def __call__(self, fits: Sequence[FitLike], reference: int | str | None = None) -> CompareTable:  # noqa: D102
        return compare(fits, reference)


sys.modules[__name__].__class__ = _CallableModule
