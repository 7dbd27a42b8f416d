"""The priors a model uses, resolved against its design (:class:`PriorSet`), and the
variable-name label of each random-effect block (:func:`block_labels`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bayesglmm.design.types import Design
from bayesglmm.priors.distribution import Prior

__all__ = ["PriorSet", "block_labels"]


@dataclass(frozen=True)
class PriorSet:
    """The priors actually used, resolved against a design.

    Attributes
    ----------
    intercept : Prior or None
        Prior of the ``(Intercept)`` column, when the design has one.
    fixed : dict
        Slope name -> Prior (all slopes share one distribution family).
    sd : dict
        Block label -> tuple of Priors, one per term.
    cor : dict
        Block label -> LKJ Prior (correlated blocks only).
    dispersions : dict
        The family's dispersion parameters (``Family.dispersion``), name -> Prior: gaussian
        ``sigma``; empty for families without one.
    """

    intercept: Prior | None
    fixed: dict[str, Prior]
    sd: dict[str, tuple[Prior, ...]]
    cor: dict[str, Prior]
    dispersions: dict[str, Prior] = field(default_factory=dict)

    @property
    def sigma(self) -> Prior | None:
        """The residual SD prior of a gaussian family (None for other families)."""
        return self.dispersions.get("sigma")

    def dispersion(self, name: str) -> Prior:
        """The prior of the family's dispersion parameter ``name`` (gaussian ``sigma``)."""
        if name in self.dispersions:
            return self.dispersions[name]
        raise KeyError(f"no prior for the dispersion `{name}`")

    def table(self) -> list[tuple[str, str, str]]:
        """Rows (class, term, prior) for :meth:`GLMMFit.prior_summary`."""
        rows: list[tuple[str, str, str]] = []
        if self.intercept is not None:
            rows.append(("intercept", "(Intercept)", str(self.intercept)))
        rows += [("fixed", k, str(v)) for k, v in self.fixed.items()]
        for label, priors in self.sd.items():
            rows += (
                [("sd", f"{label}", str(p)) for p in priors[:1]]
                if len(set(map(str, priors))) == 1
                else [("sd", f"{label}[{i}]", str(p)) for i, p in enumerate(priors)]
            )
        rows += [("cor", k, str(v)) for k, v in self.cor.items()]
        rows += [(name, "", str(p)) for name, p in self.dispersions.items()]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for saving)."""
        return {
            "intercept": self.intercept.to_dict() if self.intercept else None,
            "fixed": {k: v.to_dict() for k, v in self.fixed.items()},
            "sd": {k: [p.to_dict() for p in v] for k, v in self.sd.items()},
            "cor": {k: v.to_dict() for k, v in self.cor.items()},
            "dispersions": {k: v.to_dict() for k, v in self.dispersions.items()},
        }


def block_labels(design: Design) -> tuple[str, ...]:
    """Unique variable-name labels for the random-effect blocks (group name, deduplicated)."""
    labels: list[str] = []
    for b in design.blocks:
        base = b.group.replace(":", "_")
        label, i = base, 2
        while label in labels:
            label, i = f"{base}_{i}", i + 1
        labels.append(label)
    return tuple(labels)
