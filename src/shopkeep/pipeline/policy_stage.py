"""The policy stage of the read path behind one small interface, so the Engine can swap it atomically.

:class:`PolicyStage` answers the hard eligibility mask pushed into retrieval and re-checks/orders the
ranked list, returning the chosen items and a trace of rule firings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features.config import DEFAULT_REPURCHASE_DAYS
from shopkeep.features.context import Context
from shopkeep.policy import PolicySet, PolicyStore, apply_policy, eligibility_mask, pacing_keys, parse_policy
from shopkeep.ranking import ScoredItem
from shopkeep.retrieval.base import Mask
from shopkeep.storage.base import OnlineState, Store

__all__ = ["DEFAULT_DOCUMENT", "Chosen", "MerchantPolicy", "PolicyStage", "default_policy_stage"]


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

    def refreshed(self) -> PolicyStage:
        """The stage for the newest persisted version (self when unchanged)."""


def _anchors(context: Context) -> list[str]:
    return [i for i in (context.request.item_id, *context.cart_items) if i]


#: The policy in force while the store holds none: inventory, repurchase (replenishable categories
#: come back after their interval, everything else stays hidden for a year), consent, MAP raise.
DEFAULT_DOCUMENT: dict[str, Any] = {
    "name": "default", "description": "built-in defaults (PUT /v1/policies replaces them)",
    "rules": [{"kind": "inventory"},
              {"kind": "repurchase", "categories": dict(DEFAULT_REPURCHASE_DAYS), "default_days": 365},
              {"kind": "consent"}, {"kind": "map", "mode": "raise"}],
}


class MerchantPolicy:
    """The merchant's :class:`~shopkeep.policy.PolicySet` (persisted in a :class:`PolicyStore`) with
    pacing counters in the online state; the request's anchor items are never recommended to it."""

    def __init__(self, policy: PolicySet, store: PolicyStore, online: OnlineState | None = None) -> None:
        self.policy = policy
        self.store = store
        self.online = online

    @property
    def version(self) -> str:
        """``<number>-<hash>`` (number 0: the built-in default, never saved)."""
        return f"{self.policy.version.number}-{self.policy.version.hash}"

    def eligibility(self, snapshot: CatalogSnapshot, context: Context) -> Mask:
        """The policy's hard rules, minus the request's own anchor items."""
        mask = eligibility_mask(snapshot, context, self.policy)
        anchors = _anchors(context)
        if anchors:
            idx = snapshot.indices(anchors)
            mask[idx[idx >= 0]] = False
        return mask

    def apply(self, context: Context, ranked: Sequence[ScoredItem],
              snapshot: CatalogSnapshot) -> tuple[list[Chosen], list[dict[str, Any]]]:
        """Rules after ranking (re-checks the hard ones); pacing counters read and incremented."""
        anchors = set(_anchors(context))
        if anchors:
            ranked = [r for r in ranked if r.item_id not in anchors]
        keys = pacing_keys(self.policy, context.now_ms) if self.online is not None else ()
        pacing: dict[str, float] = {}
        if keys and self.online is not None:
            pacing = {k: float(v) for k, v in self.online.get_many(list(keys)).items()}
        result = apply_policy(context, ranked, snapshot, self.policy, k=context.request.k, pacing=pacing)
        if result.pacing_increments and self.online is not None:
            self.online.incr_many(dict(result.pacing_increments))
        chosen = [Chosen(it.item_id, it.score, it.sources, it.reasons, it.display_price_minor) for it in result.items]
        trace = [{"rule_id": f.rule_id, "kind": f.kind, "item_id": f.item_id, "effect": f.effect}
                 for f in result.trace]
        return chosen, trace

    def to_dict(self) -> dict[str, Any]:
        """The policy document with its version."""
        return {**dict(self.policy.document), "version": self.policy.version.number,
                "hash": self.policy.version.hash}

    def replaced(self, raw: Mapping[str, Any]) -> PolicyStage:
        """Validate and save ``raw`` as the new active version; the stage for it."""
        body = {k: v for k, v in raw.items() if k not in ("version", "hash")}
        return MerchantPolicy(self.store.save(body), self.store, self.online)

    def refreshed(self) -> PolicyStage:
        """The stage for the store's active version (another worker may have saved a newer one)."""
        active = self.store.active()
        if active.version == self.policy.version or active.version.number == 0:
            return self
        return MerchantPolicy(active, self.store, self.online)


def default_policy_stage(store: Store, online: OnlineState | None = None) -> MerchantPolicy:
    """The stage for ``store``'s active policy, or the built-in default when none was saved."""
    policies = PolicyStore(store)
    active = policies.active()
    if active.version.number == 0:
        active = parse_policy(DEFAULT_DOCUMENT)
    return MerchantPolicy(active, policies, online)
