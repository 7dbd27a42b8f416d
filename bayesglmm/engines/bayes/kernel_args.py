"""The NUTS log density's argument record and the layout of its parameter vector.

:class:`KernelArgs` is the typed record of :func:`~bayesglmm.engines.bayes.log_density.logp_and_grad`'s
arguments after ``x`` (checked once when built); :class:`KernelLayout` says where each
parameter sits in the flat unconstrained vector and holds the data the record is made from
(built by :func:`~bayesglmm.engines.bayes.kernel_layout.kernel_layout`).  A new response
(SBC refits, ``GLMM.with_response``) only swaps ``y`` and the likelihood constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from bayesglmm.families import Family

__all__ = ["KernelArgs", "KernelLayout", "lik_constant", "weighted_y"]

_F8, _I8 = np.dtype("float64"), np.dtype("int64")


class KernelArgs(NamedTuple):
    """The arguments of :func:`logp_and_grad` after ``x``, by name (a typed record).

    Built by :meth:`KernelLayout.args` and checked once there (:meth:`checked`); the kernel
    is called as ``logp_and_grad(x, *args)``, so the record costs nothing per call.  The
    field order is the kernel's parameter order (asserted at import).
    """

    X: np.ndarray
    xmean: np.ndarray
    offset: np.ndarray
    y: np.ndarray
    trials: np.ndarray
    family: int
    const: float
    beta_off: int
    ic_off: int
    Z: np.ndarray
    idx: np.ndarray
    sd_off: np.ndarray
    z_off: np.ndarray
    nterm: np.ndarray
    nlev: np.ndarray
    zcol: np.ndarray
    bcorr: np.ndarray
    bcent: np.ndarray
    csd_code: np.ndarray
    csd_a: np.ndarray
    csd_b: np.ndarray
    csd_c: np.ndarray
    lkj_eta: np.ndarray
    sigma_off: int
    ndisp: int
    pr_pos: np.ndarray
    pr_code: np.ndarray
    pr_a: np.ndarray
    pr_b: np.ndarray
    pr_c: np.ndarray
    pr_log: np.ndarray
    zunit: np.ndarray

    def checked(self) -> KernelArgs:
        """Self, after checking every field's type, dtype and row count (a wrong record
        would make the kernel read out of bounds); raises ``ValueError`` naming the field."""
        n = self.X.shape[0]
        for name, value in zip(self._fields, self, strict=True):
            want = _ARG_KINDS[name]
            if want is int or want is float:
                if not isinstance(value, int | float | np.integer | np.floating):
                    raise ValueError(f"kernel argument `{name}` must be a scalar, not {value!r}")
                continue
            dtype, ndim = want
            if not (
                isinstance(value, np.ndarray)
                and value.dtype == dtype
                and value.ndim == ndim
                and value.flags.c_contiguous
            ):
                got = getattr(value, "dtype", type(value).__name__), getattr(value, "ndim", None)
                raise ValueError(
                    f"kernel argument `{name}` must be a C-contiguous {dtype} array with "
                    f"{ndim} dimension(s); got {got}"
                )
        for name in ("offset", "y", "trials", "Z", "idx"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"kernel argument `{name}` must have {n} rows (those of X)")
        return self


_ARG_KINDS: dict[str, Any] = {
    "family": int,
    "const": float,
    "beta_off": int,
    "ic_off": int,
    "sigma_off": int,
    "ndisp": int,
    **{k: (_F8, 1) for k in ("xmean", "offset", "y", "trials", "lkj_eta")},
    **{k: (_F8, 1) for k in ("pr_a", "pr_b", "pr_c", "zunit")},
    **{k: (_F8, 2) for k in ("X", "Z", "csd_a", "csd_b", "csd_c")},
    "idx": (_I8, 2),
    "csd_code": (_I8, 2),
    **{k: (_I8, 1) for k in ("sd_off", "z_off", "nterm", "nlev", "zcol", "bcorr", "bcent")},
    **{k: (_I8, 1) for k in ("pr_pos", "pr_code", "pr_log")},
}


@dataclass(frozen=True)
class KernelLayout:
    """Where each parameter sits in the flat unconstrained vector, and the kernel's data."""

    ndim: int
    names: tuple[str, ...]  # value-variable names, PyMC order
    slices: tuple[slice, ...]
    shapes: tuple[tuple[int, ...], ...]
    arrays: dict[str, np.ndarray] = field(repr=False)
    ints: dict[str, int]
    labels: tuple[str, ...]
    family: Family

    def args(self, y: np.ndarray | None = None) -> KernelArgs:
        """Arguments of :func:`logp_and_grad` after ``x`` (a checked :class:`KernelArgs`;
        ``y`` replaces the response)."""
        a = self.arrays
        return KernelArgs(
            a["X"],
            a["xmean"],
            a["offset"],
            a["y"] if y is None else weighted_y(self.family, y, a),
            a["trials"],
            self.ints["family"],
            float(a["prior_const"][0])
            + (float(a["const"][0]) if y is None else lik_constant(self.family, y, a)),
            self.ints["beta_off"],
            self.ints["ic_off"],
            a["Z"],
            a["idx"],
            a["sd_off"],
            a["z_off"],
            a["nterm"],
            a["nlev"],
            a["zcol"],
            a["bcorr"],
            a["bcent"],
            a["csd_code"],
            a["csd_a"],
            a["csd_b"],
            a["csd_c"],
            a["lkj_eta"],
            self.ints["sigma_off"],
            self.ints["ndisp"],
            a["pr_pos"],
            a["pr_code"],
            a["pr_a"],
            a["pr_b"],
            a["pr_c"],
            a["pr_log"],
            a["zunit"],
        ).checked()


def row_constants(family: Family, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Data-only terms of each row's log likelihood (binomial coefficient, -log y!)."""
    return family.spec.row_constants(y, trials)


def lik_constant(family: Family, y: np.ndarray, arrays: dict[str, np.ndarray]) -> float:
    """Sum of the data-only terms for response ``y`` (unweighted), with the prior weights."""
    w = arrays["w"]
    c = float(np.sum(w * row_constants(family, y, arrays["n0"])))
    if family.spec.precision_weights:  # + 0.5 sum log w over the rows that count
        c += 0.5 * float(np.log(w[w > 0]).sum())
    return c


def weighted_y(family: Family, y: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The kernel's ``y``: case weights times the response (binomial, Poisson)."""
    if family.spec.precision_weights or not family.spec.case_weights_fold:
        return y  # gaussian: precision weights; gamma: case weights in ``trials``
    return np.ascontiguousarray(arrays["w"] * y)
