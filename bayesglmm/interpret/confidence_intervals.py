"""lme4's ``confint``: Wald or profile-likelihood intervals for ML fits; equal-tailed
intervals of the draws for Bayesian fits."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayesglmm.errors import ArgumentError, BayesGLMMWarning
from bayesglmm.intervals import CI_PROB, wald_z


def _sd_rows(fit: Any) -> list[tuple[str, int, int]]:
    """(row name, block, term) for every random-effect SD, named as ``summary()``."""
    rows = []
    for i, b in enumerate(fit.design.blocks):
        for j, t in enumerate(b.terms):
            rows.append((f"sd({b.group}: {t})", i, j))
    return rows


def confint(
    fit: Any,
    parm: list[str] | None = None,
    *,
    level: float = CI_PROB,
    method: Literal["Wald", "profile"] | None = None,
) -> pd.DataFrame:
    """Confidence (ML) or credible (Bayesian) intervals.

    Parameters
    ----------
    fit : GLMMFit
    parm : list of str, optional
        Row names to keep (default: all).
    level : float
        Interval level (default 0.95).
    method : {"Wald", "profile"}, optional
        ML fits: ``"Wald"`` (default; the fixed effects, ``estimate +- z * SE``; lme4 gives
        no Wald interval for variance components either) or ``"profile"`` (profile
        likelihood, by re-optimizing the Laplace/AGQ deviance with the parameter held fixed,
        for the fixed effects and the SD of every one-column random-effect term; SDs of
        multi-column terms are left out with a warning; a lower SD limit is 0 when the
        deviance at SD = 0 is within the cut-off).  Gaussian (linear mixed) fits profile
        the fixed effects only, each point an exact ML refit with the coefficient moved
        into the offset (a warning says the SDs are not profiled).  PQL fits raise (no
        likelihood; use Wald or ``fit.bootstrap()``).  Ignored for Bayesian fits.

    Returns
    -------
    pandas.DataFrame
        Rows named as ``summary()`` and ``fixef()``: ``(Intercept)``, the predictors,
        ``sd(g: term)`` (and ``cor(g: a, b)`` and the family's dispersion parameters by
        name, ``sigma``, ``shape``, ``phi``, ``nu``, for Bayesian fits);
        columns ``estimate``, the lower and upper limits named ``2.5 %`` and ``97.5 %``
        (R's names at level 0.95), and ``method``.

    Raises
    ------
    ArgumentError
        Bad level or method; profile asked for a PQL fit.
    """
    if not (isinstance(level, int | float) and 0.0 < float(level) < 1.0):
        raise ArgumentError(f"level must be in (0, 1), got {level!r}")
    lo_name = f"{100 * (1 - level) / 2:g} %"
    hi_name = f"{100 * (1 + level) / 2:g} %"
    if fit.is_bayesian:
        tab = _confint_draws(fit, level, lo_name, hi_name)
    else:
        method = method or "Wald"
        if method == "Wald":
            est = fit.fixef()
            se = fit.se()
            z = wald_z(level)
            tab = pd.DataFrame(
                {"estimate": est, lo_name: est - z * se, hi_name: est + z * se, "method": "Wald"}
            )
        elif method == "profile":
            tab = _confint_profile(fit, level, lo_name, hi_name, parm)
        else:
            raise ArgumentError(f"method must be 'Wald' or 'profile', not {method!r}")
    if parm is not None:
        missing = [p for p in parm if p not in tab.index]
        if missing:
            raise ArgumentError(f"confint: unknown parameter(s) {missing}; have {list(tab.index)}")
        tab = tab.loc[list(parm)]
    tab.attrs["level"] = level
    return tab


def _confint_draws(fit: Any, level: float, lo_name: str, hi_name: str) -> pd.DataFrame:
    a = (1.0 - level) / 2.0
    rows: dict[str, np.ndarray] = {}
    beta = fit.draws_fixed()
    for j, name in enumerate(fit.design.x_names):
        rows[name] = beta[:, j]
    for name, i, j in _sd_rows(fit):
        cov = fit.draws_cov(i)
        rows[name] = np.sqrt(cov[:, j, j])
    for i, b in enumerate(fit.design.blocks):
        if b.correlated and b.n_terms > 1:
            cov = fit.draws_cov(i)
            for j in range(b.n_terms):
                for k in range(j + 1, b.n_terms):
                    with np.errstate(invalid="ignore", divide="ignore"):
                        c = cov[:, j, k] / np.sqrt(cov[:, j, j] * cov[:, k, k])
                    rows[f"cor({b.group}: {b.terms[j]}, {b.terms[k]})"] = np.nan_to_num(c)
    rows.update(fit.draws_dispersion())  # by name: sigma, shape, phi, nu
    out = []
    for name, v in rows.items():
        lo, hi = np.quantile(v, [a, 1.0 - a])
        out.append((name, float(np.median(v)), float(lo), float(hi)))
    tab = pd.DataFrame(out, columns=["parameter", "estimate", lo_name, hi_name])
    tab = tab.set_index("parameter")
    tab.index.name = None
    from bayesglmm.interpret.effects import draws_label

    tab["method"] = f"{draws_label(fit)} (equal-tailed)"
    return tab


def _confint_profile(
    fit: Any, level: float, lo_name: str, hi_name: str, parm: list[str] | None
) -> pd.DataFrame:
    from scipy import optimize, stats

    ml = fit.ml
    d = fit.design
    if ml.method != "ml":
        raise ArgumentError(
            "confint(method='profile') needs a maximum-likelihood fit (method='ml'); PQL has "
            "no likelihood to profile: use method='Wald' or fit.bootstrap()"
        )
    if d.family.is_linear:
        return _confint_profile_lmm(fit, level, lo_name, hi_name, parm)
    from bayesglmm.engines.ml.laplace import LaplaceObjective

    obj = LaplaceObjective(d)
    nagq = int(getattr(ml, "nagq", 1))
    nt = obj.n_theta
    xhat = np.concatenate([np.asarray(ml.theta, float), np.asarray(ml.beta, float)])
    dev_hat = obj.deviance(xhat, nagq)
    cut = float(stats.chi2.ppf(level, 1))
    se_beta = np.sqrt(np.diag(np.asarray(ml.vcov_beta, float)))

    # which parameters: fixed effects, and the theta of each one-column term (= its SD)
    targets: list[tuple[str, int, float]] = []
    for j, name in enumerate(d.x_names):
        targets.append((name, nt + j, float(se_beta[j]) if np.isfinite(se_beta[j]) else 0.5))
    pos = 0
    skipped = []
    for i, b in enumerate(d.blocks):
        size = obj.layout.sizes[i]
        if b.n_terms == 1:
            sd = abs(float(xhat[pos]))
            targets.append((f"sd({b.group}: {b.terms[0]})", pos, max(0.25 * sd, 0.05)))
        else:
            skipped.append(b.name)
        pos += size
    if parm is not None:
        targets = [t for t in targets if t[0] in parm]
    if skipped:
        warnings.warn(
            "confint(method='profile'): the SDs of multi-column terms "
            f"{', '.join(f'({s})' for s in skipped)} are not profiled (their Cholesky "
            "parameters are not SDs); use fit.bootstrap() for intervals on them",
            BayesGLMMWarning,
            stacklevel=3,
        )
    lower = obj.lower

    def profile_dev(idx: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        x0 = start.copy()
        x0[idx] = value
        bounds: list[tuple[float | None, float | None]] = [
            (lo if np.isfinite(lo) else None, None) for lo in lower
        ]
        bounds[idx] = (value, value)

        def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
            try:
                f, g = obj.deviance_grad(x, nagq)
            except Exception:  # noqa: BLE001 - a failed mode search is an infinitely bad point
                return np.inf, np.zeros_like(x)
            return f, g

        res = optimize.minimize(
            fg, x0, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-7},
        )  # fmt: skip
        return float(res.fun), res.x

    rows = []
    for name, idx, step in targets:
        est = float(xhat[idx])
        is_sd = idx < nt
        if is_sd:
            est = abs(est)
        limits = []
        for direction in (-1.0, 1.0):
            start = xhat.copy()
            if is_sd:
                start[idx] = est
            prev_v, prev_z = est, 0.0
            v = est
            found: float | tuple[float, float, float, float] | None = None
            for _ in range(60):
                v = prev_v + direction * step
                if is_sd and v <= 0.0:
                    dev0, _ = profile_dev(idx, 0.0, start)
                    if dev0 - dev_hat < cut:
                        found = 0.0
                        break
                    v = 0.0
                dev, xs = profile_dev(idx, v, start)
                z = math.sqrt(max(dev - dev_hat, 0.0))
                if z >= math.sqrt(cut):
                    found = (prev_v, v, prev_z, z)
                    break
                start, prev_v, prev_z = xs, v, z
                step *= 1.5 if z < 0.5 * math.sqrt(cut) else 1.0
            if found is None:
                limits.append(np.inf * direction)
                continue
            if isinstance(found, float):
                limits.append(found)
                continue
            a_v, b_v, _, _ = found
            s0 = start

            def root(val: float, s0: np.ndarray = s0, idx: int = idx) -> float:
                dv, _ = profile_dev(idx, val, s0)
                return dv - dev_hat - cut

            limits.append(float(optimize.brentq(root, a_v, b_v, xtol=1e-7 * max(1, abs(b_v)))))
        rows.append((name, est, limits[0], limits[1]))
    tab = pd.DataFrame(rows, columns=["parameter", "estimate", lo_name, hi_name])
    tab = tab.set_index("parameter")
    tab.index.name = None
    tab["method"] = "profile"
    return tab


def _confint_profile_lmm(
    fit: Any, level: float, lo_name: str, hi_name: str, parm: list[str] | None
) -> pd.DataFrame:
    """Profile intervals of the fixed effects of a linear mixed model: each profile point is
    an exact ML refit with ``x_j * value`` moved into the offset (``sigma`` and the variance
    components re-estimated).  The SDs are not profiled (a warning says so)."""
    import dataclasses

    from scipy import optimize, stats

    from bayesglmm.engines.ml.laplace import fit_ml

    d = fit.design
    dev_hat = -2.0 * float(fit.ml.loglik)
    cut = float(stats.chi2.ppf(level, 1))
    names = [n for n in d.x_names if parm is None or n in parm]
    warnings.warn(
        "confint(method='profile') on a linear mixed model profiles the fixed effects only; "
        "use fit.bootstrap() for intervals on the SDs",
        BayesGLMMWarning,
        stacklevel=4,
    )

    def excess(j: int, v: float) -> float:
        keep = [k for k in range(d.k) if k != j]
        dj = dataclasses.replace(
            d,
            X=d.X[:, keep],
            x_names=tuple(d.x_names[k] for k in keep),
            offset=d.offset + v * d.X[:, j],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayesGLMMWarning)
            return -2.0 * float(fit_ml(dj).loglik) - dev_hat - cut

    se = np.sqrt(np.diag(np.asarray(fit.ml.vcov_beta, float)))
    rows = []
    for name in names:
        j = d.x_names.index(name)
        est = float(fit.ml.beta[j])
        lims = []
        for direction in (-1.0, 1.0):
            step = 2.0 * se[j] if np.isfinite(se[j]) and se[j] > 0 else 1.0
            far = est + direction * step
            for _ in range(30):
                if excess(j, far) > 0:
                    break
                step *= 2.0
                far = est + direction * step
            else:
                lims.append(direction * np.inf)
                continue
            a, b = (far, est) if direction < 0 else (est, far)
            lims.append(
                float(
                    optimize.brentq(lambda v, j=j: excess(j, v), a, b, xtol=1e-7 * max(1, abs(est)))
                )
            )
        rows.append((name, est, lims[0], lims[1]))
    tab = pd.DataFrame(rows, columns=["parameter", "estimate", lo_name, hi_name])
    tab = tab.set_index("parameter")
    tab.index.name = None
    tab["method"] = "profile"
    return tab
