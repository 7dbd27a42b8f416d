"""lme4's parameterization of the random-effect covariances: per block the column-major
lower-triangular elements of the Cholesky factor ``Lambda_b`` (``theta``), with bounds, the
default start and singularity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesglmm.design.types import RandomBlock

__all__ = ["ThetaLayout"]


@dataclass(frozen=True)
class ThetaLayout:
    """Where each block's covariance parameters live in the flat ``theta`` vector.

    Per block: the column-major lower-triangular elements of the relative Cholesky factor
    (lme4's order), or only the diagonal for an uncorrelated (``||``) block.
    """

    sizes: tuple[int, ...]
    n_terms: tuple[int, ...]
    correlated: tuple[bool, ...]

    @classmethod
    def from_blocks(cls, blocks: tuple[RandomBlock, ...]) -> ThetaLayout:
        """Layout for a design's blocks."""
        sizes, ps, cors = [], [], []
        for b in blocks:
            p = b.n_terms
            corr = bool(b.correlated) and p > 1
            sizes.append(p * (p + 1) // 2 if corr else p)
            ps.append(p)
            cors.append(corr)
        return cls(tuple(sizes), tuple(ps), tuple(cors))

    @property
    def size(self) -> int:
        """Total number of theta elements."""
        return int(sum(self.sizes))

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        """A Cholesky diagonal below ``tol``: a boundary fit (lme4's ``isSingular``)."""
        diag = self.lower_bounds() == 0.0
        return bool(np.any(np.abs(np.asarray(theta)[diag]) < tol))

    def lower_bounds(self) -> np.ndarray:
        """0 for diagonal elements, ``-inf`` for off-diagonal ones (lme4's ``lower``)."""
        out = []
        for p, corr in zip(self.n_terms, self.correlated, strict=True):
            if corr:
                L = np.full((p, p), -np.inf)
                np.fill_diagonal(L, 0.0)
                out.append(L.T[np.triu_indices(p)])
            else:
                out.append(np.zeros(p))
        return np.concatenate(out) if out else np.zeros(0)

    def default(self) -> np.ndarray:
        """lme4's start: identity factors (1 on the diagonal, 0 elsewhere)."""
        lo = self.lower_bounds()
        return np.where(lo == 0.0, 1.0, 0.0)

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-block lower-triangular factors ``Lambda_b`` (``p x p``)."""
        out, pos = [], 0
        for s, p, corr in zip(self.sizes, self.n_terms, self.correlated, strict=True):
            t = np.asarray(theta[pos : pos + s], dtype=float)
            if corr:
                L = np.zeros((p, p))
                L.T[np.triu_indices(p)] = t
            else:
                L = np.diag(t)
            out.append(L)
            pos += s
        return out

    def from_factors(self, factors: list[np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`factors`."""
        out = []
        for L, corr in zip(factors, self.correlated, strict=True):
            p = L.shape[0]
            out.append(L.T[np.triu_indices(p)] if corr else np.diag(L).copy())
        return np.concatenate(out) if out else np.zeros(0)
