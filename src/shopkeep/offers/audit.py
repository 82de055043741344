"""The offer audit trail: every decision stored in the Store, listable, and replayable to the same result.

A record holds the pseudonymous shopper key (an HMAC of the person's id: erasing the key mapping cuts
the link to the person without touching the record), the input digest and the full inputs, every
candidate with its P(buy), expected value and guardrail verdicts, the chosen action, the model version
and the guardrail counters the decision read (so a replay sees the same caps and budgets).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict
from typing import Any

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.offers.decide import ACTIONS, Decision, DecisionRequest, DecisionStack
from shopkeep.offers.guardrails import GuardrailState, ItemFacts, ShopperFacts, Verdict
from shopkeep.storage.base import LogRecord, Store
from shopkeep.types import Money, parse_timestamp, to_epoch_ms, utc_now

__all__ = ["AUDIT_COLLECTION", "AUDIT_LOG", "AuditTrail", "pseudonymize"]

AUDIT_COLLECTION = "offer_decisions"
AUDIT_LOG = "offer_decisions"


def pseudonymize(person_id: str, secret: bytes) -> str:
    """A stable pseudonymous key for a person id (HMAC-SHA256, 32 hex chars).

    >>> pseudonymize("user-1", b"k") == pseudonymize("user-1", b"k") != pseudonymize("user-2", b"k")
    True
    """
    if not person_id:
        raise ValidationError("person_id", person_id, "must be a non-empty string")
    return "psk-" + hmac.new(secret, person_id.encode(), hashlib.sha256).hexdigest()[:32]


def _money(m: Money | None) -> dict[str, Any] | None:
    return m.to_dict() if m else None


def _state_slice(state: GuardrailState, req: DecisionRequest) -> dict[str, Any]:
    return {"shopper_counts": {req.shopper.shopper_key: state.shopper_counts.get(req.shopper.shopper_key, 0)},
            "offer_counts": dict(state.offer_counts), "spent": dict(state.spent),
            "segment_low": {req.item.item_id: dict(state.segment_low.get(req.item.item_id, {}))},
            "public_price": {req.item.item_id: dict(state.public_price.get(req.item.item_id, {}))}}


def _verdict(v: Verdict) -> dict[str, Any]:
    """A passed verdict is stored as its rule name only (code ``ok``): the record stays small."""
    if v.passed:
        return {"rule": v.rule, "passed": True}
    return {"rule": v.rule, "passed": False, "code": v.code, "detail": v.detail}


def request_to_dict(req: DecisionRequest) -> dict[str, Any]:
    """The decision's inputs as JSON (the shopper only by its pseudonymous key)."""
    it = req.item
    return {"shopper": asdict(req.shopper), "features": dict(req.features), "ship_cost": _money(req.ship_cost),
            "item": {"item_id": it.item_id, "price": _money(it.price), "cost": _money(it.cost),
                     "map_price": _money(it.map_price), "category": it.category,
                     "regulated_class": it.regulated_class, "brand": it.brand},
            "fulfillment_cost": _money(req.fulfillment_cost), "complement_price": _money(req.complement_price),
            "stock_age_days": req.stock_age_days,
            "campaign": req.campaign, "actions": list(req.actions),
            "now": req.now.isoformat() if req.now else None}


def request_from_dict(doc: dict[str, Any]) -> DecisionRequest:
    """Inverse of :func:`request_to_dict`."""
    it = doc["item"]

    def m(x: Any) -> Money | None:
        return Money.parse(x) if x else None

    item = ItemFacts(it["item_id"], Money.parse(it["price"]), m(it["cost"]), m(it["map_price"]), it["category"],
                     it["regulated_class"], it.get("brand"))
    return DecisionRequest(ShopperFacts(**doc["shopper"]), item, doc["features"], Money.parse(doc["ship_cost"]),
                           m(doc["fulfillment_cost"]), m(doc.get("complement_price")), doc["stock_age_days"],
                           doc["campaign"],
                           tuple(doc["actions"]), parse_timestamp(doc["now"]) if doc["now"] else None)


class AuditTrail:
    """Decision records in a Store: a document per decision plus a log partitioned by shopper key."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, decision: Decision, req: DecisionRequest, state_before: dict[str, Any]) -> dict[str, Any]:
        """Store one decision; returns the stored document."""
        doc = {
            "decision_id": decision.decision_id, "shopper_key": req.shopper.shopper_key,
            "input_digest": decision.input_digest, "inputs": request_to_dict(req),
            "candidates": [{"action": c.action, "p_buy": c.p_buy, "expected_value": c.expected_value,
                            "expected_spend": c.expected_spend, "allowed": c.allowed,
                            "verdicts": [_verdict(v) for v in c.verdicts]} for c in decision.candidates],
            "action": decision.action, "expected_value": decision.expected_value,
            "personalized_price": decision.personalized_price, "offer_price": decision.offer.display_price.to_dict(),
            "model_versions": {"uplift": decision.model_version,
                               "elasticity": decision.prior_version},
            "prior": decision.prior, "arm": decision.arm, "propensity": decision.propensity,
            "ship_subsidy": ACTIONS[decision.action].ship_subsidy,
            "guardrail_state": state_before,
            "recorded_at": utc_now().isoformat(),
        }
        self.store.put_many(AUDIT_COLLECTION, {decision.decision_id: doc})
        self.store.append(AUDIT_LOG, [LogRecord(decision.decision_id, to_epoch_ms(utc_now()),
                                                json.dumps({"action": decision.action}), req.shopper.shopper_key)])
        return doc

    def get(self, decision_id: str) -> dict[str, Any]:
        """The stored record, or NotFoundError."""
        found = self.store.get_many(AUDIT_COLLECTION, [decision_id])
        if decision_id not in found:
            raise NotFoundError(f"no decision {decision_id!r}", {"decision_id": decision_id})
        return found[decision_id]

    def list(self, *, shopper_key: str | None = None, action: str | None = None, k: int = 100) -> list[dict[str, Any]]:
        """Up to ``k`` records, oldest first, optionally of one shopper key and/or one chosen action."""
        if k < 1 or k > 1000:
            raise ValidationError("k", k, "must be 1..1000")
        out: list[dict[str, Any]] = []
        after = 0
        while len(out) < k:
            page = self.store.read(AUDIT_LOG, after_seq=after, k=500, partition=shopper_key)
            if not page:
                break
            after = page[-1].seq
            keep = [r.key for r in page if action is None or json.loads(r.payload)["action"] == action]
            docs = self.store.get_many(AUDIT_COLLECTION, keep)
            out.extend(docs[key] for key in keep if key in docs)
        return out[:k]

    def decide(self, stack: DecisionStack, req: DecisionRequest) -> tuple[Decision, dict[str, Any]]:
        """Decide and record in one call."""
        before = _state_slice(stack.state, req)
        decision = stack.decide(req)
        return decision, self.record(decision, req, before)

    @staticmethod
    def replay(doc: dict[str, Any], stack: DecisionStack) -> Decision:
        """Re-run a stored decision with its stored inputs and guardrail counters (nothing is recorded)."""
        if doc["model_versions"]["uplift"] != stack.model.version_:
            raise ValidationError("model_version", stack.model.version_,
                                  f"replay needs the model {doc['model_versions']['uplift']}")
        s = doc["guardrail_state"]
        state = GuardrailState(dict(s["shopper_counts"]), dict(s["offer_counts"]), dict(s["spent"]),
                               {k: dict(v) for k, v in s["segment_low"].items()},
                               {k: dict(v) for k, v in s["public_price"].items()})
        replayer = DecisionStack(stack.model, stack.rules, state, stack.tolerance, stack.margin_weight,
                                 stack.aging_bonus_per_day, stack.explore_rate)
        return replayer.decide(request_from_dict(doc["inputs"]), record=False)
