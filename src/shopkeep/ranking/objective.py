"""Business objectives and the default (non-learned) ranker.

An item's score is ``relevance * r + margin * m + conversion * p`` where, within one request's
candidates, ``r`` is the fused retrieval score divided by the best one, ``p`` the purchase probability
divided by the best one and ``m`` the expected contribution margin
``p(purchase) x (price - cost - expected return cost)`` divided by the largest absolute one. Items
without a known price or cost have margin 0. The purchase probability comes from a
:class:`PurchaseModel` (default :class:`RelevancePrior`: ``base_rate`` x ``r``).

>>> from shopkeep.features.context import Context, ContextRequest
>>> from shopkeep.types import Item, Money
>>> snap = CatalogSnapshot.from_items([
...     Item("cheap", "A", price=Money(1000, "USD"), cost=Money(900, "USD")),
...     Item("rich", "B", price=Money(9000, "USD"), cost=Money(3000, "USD"))])
>>> fused = [ScoredItem("cheap", 0.03), ScoredItem("rich", 0.02)]  # any item_id/score/sources objects
>>> ctx = Context(ContextRequest(), now_ms=0)
>>> [s.item_id for s in Ranker().rank(ctx, fused, snap)]
['cheap', 'rich']
>>> [s.item_id for s in Ranker(Objective(relevance=1.0, margin=1.0)).rank(ctx, fused, snap)]
['rich', 'cheap']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context

__all__ = ["Fused", "Objective", "PurchaseModel", "Ranker", "RelevancePrior", "ScoredItem"]

FloatArray = npt.NDArray[np.float64]


class Fused(Protocol):
    """What the ranker reads from a fused candidate (retrieval's ``Fused`` fits; duck-typed so
    that ranking does not import retrieval, a sibling layer)."""

    @property
    def item_id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def sources(self) -> Mapping[str, tuple[float, int]]: ...


@dataclass(frozen=True, slots=True)
class Objective:
    """Weights of the ranking objective (each >= 0, not all 0) and a version string for the audit trail."""

    relevance: float = 1.0
    margin: float = 0.0
    conversion: float = 0.0
    version: str = "1"

    def __post_init__(self) -> None:
        for name in ("relevance", "margin", "conversion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValidationError(f"objective.{name}", value, "must be a finite number >= 0")
        if self.relevance + self.margin + self.conversion <= 0:
            raise ValidationError("objective", (self.relevance, self.margin, self.conversion), "weights are all 0")
        if not isinstance(self.version, str) or not self.version:
            raise ValidationError("objective.version", self.version, "must be a non-empty string")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Objective:
        """Parse ``{"relevance": .., "margin": .., "conversion": .., "version": ..}`` (unknown keys rejected)."""
        if not isinstance(raw, Mapping):
            raise ValidationError("objective", raw, "must be a mapping")
        unknown = sorted(set(raw) - {"relevance", "margin", "conversion", "version"})
        if unknown:
            raise ValidationError("objective", unknown[0], "unknown key")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        """The objective as JSON-able data."""
        return {"relevance": self.relevance, "margin": self.margin, "conversion": self.conversion,
                "version": self.version}


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """A ranked candidate: the objective ``score``, the retrieval ``sources`` (name → (score, rank)),
    and the parts of the score (relevance in [0, 1], purchase probability, expected margin in minor units)."""

    item_id: str
    score: float
    sources: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    relevance: float = 0.0
    p_purchase: float = 0.0
    expected_margin_minor: float = 0.0


@runtime_checkable
class PurchaseModel(Protocol):
    """Capability: purchase probabilities for a request's fused candidates."""

    def predict(self, context: Context, fused: Sequence[Fused], snapshot: CatalogSnapshot) -> FloatArray:
        """P(purchase) per candidate, in [0, 1]."""


@dataclass(frozen=True)
class RelevancePrior:
    """P(purchase) = ``base_rate`` x the candidate's fused score relative to the best one (no learning)."""

    base_rate: float = 0.02

    def predict(self, context: Context, fused: Sequence[Fused], snapshot: CatalogSnapshot) -> FloatArray:
        """``base_rate * score / max(score)`` per candidate."""
        rel = _relative(np.array([f.score for f in fused], dtype=np.float64))
        return np.asarray(self.base_rate * rel, dtype=np.float64)


def _relative(values: FloatArray) -> FloatArray:
    """``values / max(|values|)`` (zeros when all are 0)."""
    top = float(np.abs(values).max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


class Ranker:
    """Scores fused candidates for an :class:`Objective` (see the module docstring).

    ``return_cost_fraction``: expected return cost as a fraction of the price (return rate x loss per
    return), used in the expected margin.
    """

    def __init__(self, objective: Objective | None = None, model: PurchaseModel | None = None,
                 return_cost_fraction: float = 0.0) -> None:
        if not 0.0 <= return_cost_fraction <= 1.0:
            raise ValidationError("return_cost_fraction", return_cost_fraction, "must be within [0, 1]")
        self.objective = objective or Objective()
        self.model: PurchaseModel = model or RelevancePrior()
        self.return_cost_fraction = return_cost_fraction

    def unit_margin_minor(self, snapshot: CatalogSnapshot, indices: npt.NDArray[np.int64]) -> FloatArray:
        """``price - cost - return_cost_fraction * price`` per snapshot index (0 where price or cost is unknown)."""
        price = snapshot.price_minor[indices].astype(np.float64)
        cost = snapshot.cost_minor[indices].astype(np.float64)
        known = (indices >= 0) & (price >= 0) & (cost >= 0)
        return np.where(known, price - cost - self.return_cost_fraction * price, 0.0)

    def rank_many(self, contexts: Sequence[Context], fused: Sequence[Sequence[Fused]],
                  snapshot: CatalogSnapshot) -> list[list[ScoredItem]]:
        """For each context, its candidates scored and sorted best first (ties: fused order)."""
        if len(fused) != len(contexts):
            raise ValidationError("fused", len(fused), f"need one candidate list per context ({len(contexts)})")
        obj = self.objective
        out: list[list[ScoredItem]] = []
        for ctx, cands in zip(contexts, fused, strict=True):
            if not cands:
                out.append([])
                continue
            idx = snapshot.indices([f.item_id for f in cands])
            rel = _relative(np.array([f.score for f in cands], dtype=np.float64))
            p = np.clip(np.asarray(self.model.predict(ctx, cands, snapshot), dtype=np.float64), 0.0, 1.0)
            margin = p * self.unit_margin_minor(snapshot, idx)
            score = obj.relevance * rel + obj.margin * _relative(margin) + obj.conversion * _relative(p)
            order = np.lexsort((np.arange(len(cands)), -score))
            out.append([ScoredItem(cands[i].item_id, float(score[i]), cands[i].sources, float(rel[i]), float(p[i]),
                                   float(margin[i])) for i in order.tolist()])
        return out

    def rank(self, context: Context, fused: Sequence[Fused], snapshot: CatalogSnapshot) -> list[ScoredItem]:
        """The batch call for one context."""
        return self.rank_many([context], [fused], snapshot)[0]
