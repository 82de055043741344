"""The policy stage of the read path behind one small interface, so the Engine can swap it atomically.

:class:`PolicyStage` answers the hard eligibility mask pushed into retrieval and re-checks/orders the
ranked list, returning the chosen items and a trace of rule firings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features import purchase_suppression_mask
from shopkeep.features.context import Context, ScoredItem
from shopkeep.retrieval.base import Mask
from shopkeep.storage.base import Store

__all__ = ["Chosen", "PolicyStage", "default_policy_stage"]


@dataclass(frozen=True, slots=True)
class Chosen:
    """An item the policy stage kept, in slate order."""

    item_id: str
    score: float
    sources: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    display_price_minor: int | None = None


class PolicyStage(Protocol):
    """Eligibility before retrieval, rules after ranking; versioned; replaced by validated documents."""

    @property
    def version(self) -> str:
        """The policy version in force."""

    def eligibility(self, snapshot: CatalogSnapshot, context: Context) -> Mask:
        """True for items the request may be shown at all."""

    def apply(self, context: Context, ranked: Sequence[ScoredItem],
              snapshot: CatalogSnapshot) -> tuple[list[Chosen], list[dict[str, Any]]]:
        """The items to show, in order, and the trace of what each rule moved or removed."""

    def to_dict(self) -> dict[str, Any]:
        """The wire form (with the version)."""

    def replaced(self, raw: Mapping[str, Any]) -> PolicyStage:
        """A stage for the validated document ``raw`` (persisted)."""


def _anchors(context: Context) -> list[str]:
    return [i for i in (context.request.item_id, *context.cart_items) if i]


def base_mask(snapshot: CatalogSnapshot, context: Context) -> Mask:
    """Active, in stock where the shopper is served, not suppressed by a purchase, not the anchor items."""
    mask = snapshot.active & snapshot.in_stock(context.store)
    if context.purchased:
        mask &= ~purchase_suppression_mask(snapshot, context.purchased, context.now_ms)
    anchors = _anchors(context)
    if anchors:
        idx = snapshot.indices(anchors)
        mask[idx[idx >= 0]] = False
    return np.asarray(mask, dtype=np.bool_)


@dataclass(frozen=True)
class _BasicPolicy:
    """Only the built-in hard rules (no merchant document): used until a policy package is wired in."""

    version: str = "builtin"

    def eligibility(self, snapshot: CatalogSnapshot, context: Context) -> Mask:
        return base_mask(snapshot, context)

    def apply(self, context: Context, ranked: Sequence[ScoredItem],
              snapshot: CatalogSnapshot) -> tuple[list[Chosen], list[dict[str, Any]]]:
        mask = base_mask(snapshot, context)
        out = []
        for it in ranked:
            i = snapshot.index.get(it.item_id)
            if i is not None and mask[i]:
                out.append(Chosen(it.item_id, it.score, it.sources, tuple(f"found by {s}" for s in sorted(it.sources))))
            if len(out) >= context.request.k:
                break
        return out, []

    def to_dict(self) -> dict[str, Any]:
        return {"name": "builtin", "version": self.version, "rules": []}

    def replaced(self, raw: Mapping[str, Any]) -> PolicyStage:
        from shopkeep.errors import ValidationError

        raise ValidationError("policy", "rules", "merchant policy rules are not available in this build")


def default_policy_stage(store: Store) -> PolicyStage:
    """The policy stage for ``store``."""
    return _BasicPolicy()
