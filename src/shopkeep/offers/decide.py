"""The offer decision stack: propensity -> uplift -> costs and floors -> best margin -> guardrails.

For one shopper and one item, right now: (1) the purchase propensity without intervention and
(2) with each action, from the :class:`UpliftModel` learned on randomized exposure logs; (3) the unit
contribution of each action from the item's Money price, cost, fulfilment cost and the action's
incentive, with a stock-aging bonus for items that must move; (4) the action with the best expected
contribution margin, and among those within ``tolerance`` of the best the one with the lowest
expected incentive spend; (5) every candidate passes :func:`check_offer` before it can be returned
(refused candidates are kept in the record with their reason codes; ``no_action`` is the fallback).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shopkeep.offers.guardrails import (
    NO_ACTION,
    GuardrailRules,
    GuardrailState,
    ItemFacts,
    Offer,
    ShopperFacts,
    Verdict,
    allowed,
    check_offer,
)
from shopkeep.offers.uplift import UpliftModel
from shopkeep.types import Money, utc_now

__all__ = ["ACTIONS", "ActionSpec", "Candidate", "Decision", "DecisionRequest", "DecisionStack"]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An intervention: price change (bps or cents), shipping subsidy, loyalty-only, message timing."""

    name: str
    kind: str
    discount_bps: int = 0
    amount_off_cents: int = 0
    bundle_discount_bps: int = 0
    ship_subsidy: bool = False
    loyalty_only: bool = False
    timing: str = "now"
    channel: str = "onsite"

    @property
    def personalized_price(self) -> bool:
        """Whether the shopper sees a price other shoppers may not (disclosure required)."""
        return self.discount_bps > 0 or self.amount_off_cents > 0

    def paid(self, price: Money) -> Money:
        """The displayed unit price after this action's discount."""
        off = price.amount * self.discount_bps // 10_000 + self.amount_off_cents
        return Money(max(0, price.amount - off), price.currency)


ACTIONS: dict[str, ActionSpec] = {a.name: a for a in (
    ActionSpec(NO_ACTION, "none"),
    ActionSpec("speed_cue", "availability_cue"),
    ActionSpec("loyalty_reminder", "loyalty_early_access", loyalty_only=True, channel="email"),
    ActionSpec("free_shipping", "free_shipping_nudge", ship_subsidy=True),
    ActionSpec("bundle", "bundle_complement", bundle_discount_bps=1500),
    ActionSpec("pct_10", "percentage_discount", discount_bps=1000),
    ActionSpec("pct_20", "percentage_discount", discount_bps=2000),
    ActionSpec("amount_off", "amount_off", amount_off_cents=300),
    ActionSpec("time_bound", "time_bound_offer", discount_bps=1000, timing="next_24h"),
)}


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """One decision's inputs. ``features`` are the named model inputs (checked against the whitelist)."""

    shopper: ShopperFacts
    item: ItemFacts
    features: Mapping[str, float]
    ship_cost: Money
    fulfillment_cost: Money | None = None
    complement_price: Money | None = None
    stock_age_days: int = 0
    campaign: str = "default"
    actions: tuple[str, ...] = tuple(ACTIONS)
    now: datetime | None = None

    def digest(self) -> str:
        """A stable digest of every input (the audit trail's input fingerprint)."""
        body = json.dumps({
            "shopper": self.shopper.shopper_key, "region": self.shopper.region, "channel": self.shopper.channel,
            "member": self.shopper.loyalty_member, "segment": self.shopper.segment, "item": self.item.item_id,
            "price": self.item.price.to_dict(), "cost": self.item.cost.to_dict() if self.item.cost else None,
            "map": self.item.map_price.to_dict() if self.item.map_price else None,
            "features": {k: round(float(v), 9) for k, v in sorted(self.features.items())},
            "brand": self.item.brand, "category": self.item.category,
            "complement": self.complement_price.to_dict() if self.complement_price else None,
            "ship": self.ship_cost.to_dict(), "age": self.stock_age_days, "campaign": self.campaign,
            "actions": list(self.actions),
        }, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One scored action: P(buy), expected contribution margin (cents), expected spend, verdicts."""

    action: str
    p_buy: float
    expected_value: float
    expected_spend: float
    score: float
    allowed: bool
    verdicts: tuple[Verdict, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The returned decision: the action, its EV, the runner-ups, disclosure flag and a decision id."""

    decision_id: str
    action: str
    expected_value: float
    offer: Offer
    personalized_price: bool
    runner_ups: tuple[Candidate, ...]
    candidates: tuple[Candidate, ...]
    model_version: str
    input_digest: str
    timing: str = "now"
    channel: str = "onsite"
    propensity: float = 1.0
    arm: str = "greedy"
    prior: str = ""
    prior_version: str | None = None


@dataclass
class DecisionStack:
    """Scores every action, picks by expected contribution margin, enforces the guardrails.

    ``margin_weight`` in [0, 1] trades expected margin (1) for expected revenue (0) in the what-if.
    ``explore_rate`` is the share of decisions made by the *randomized arm*: a uniform draw among the
    actions the guardrails allow, seeded by the decision's digest (so a replay draws the same), with
    its propensity recorded, so the exposures it produces can train the next uplift model.
    """

    model: UpliftModel
    rules: GuardrailRules
    state: GuardrailState = field(default_factory=GuardrailState)
    tolerance: float = 0.01
    margin_weight: float = 1.0
    aging_bonus_per_day: float = 0.0
    explore_rate: float = 0.0

    def _offer(self, spec: ActionSpec, req: DecisionRequest) -> Offer:
        paid = spec.paid(req.item.price)
        cur = req.item.price.currency
        incentive = req.item.price.amount - paid.amount + (req.ship_cost.amount if spec.ship_subsidy else 0)
        if spec.bundle_discount_bps and req.complement_price is not None:  # the complement's markdown is spend too
            incentive += req.complement_price.amount * spec.bundle_discount_bps // 10_000
        return Offer(spec.name, req.item.item_id, paid, req.fulfillment_cost or Money(0, cur), Money(incentive, cur),
                     campaign=req.campaign, loyalty_only=spec.loyalty_only, personalized=spec.personalized_price)

    def score(self, req: DecisionRequest) -> list[Candidate]:
        """Every requested action, scored and checked, best first (ties broken by lower spend, then name)."""
        # A bundle whose complement price is unknown has an unknown cost: it is not a candidate.
        names = [a for a in req.actions if a in ACTIONS and a in self.model.fits_
                 and (not ACTIONS[a].bundle_discount_bps or req.complement_price is not None)] or [NO_ACTION]
        if NO_ACTION not in names:
            names.append(NO_ACTION)
        offers = [self._offer(ACTIONS[n], req) for n in names]
        list_price = max(req.item.price.amount, 1)
        ratios = [o.display_price.amount / list_price for o in offers]
        p, other = self.model.predict(req.features, names, ratios=ratios, group=self.group(req))
        out: list[Candidate] = []
        for i, name in enumerate(names):
            spec, offer = ACTIONS[name], offers[i]
            cost = req.item.cost.amount if req.item.cost else req.item.price.amount
            unit = float(offer.display_price.amount - cost - offer.fulfillment_cost.amount)
            unit -= req.ship_cost.amount if spec.ship_subsidy else 0
            unit += self.aging_bonus_per_day * req.stock_age_days  # aged stock is worth moving
            ev = float(p[i] * unit + other[i])
            revenue = float(p[i] * offer.display_price.amount)
            score = self.margin_weight * ev + (1.0 - self.margin_weight) * revenue
            verdicts = check_offer(offer, req.item, req.shopper, self.rules, self.state, req.features, req.now)
            out.append(Candidate(name, float(p[i]), ev, float(p[i] * offer.incentive_cost.amount), score,
                                 allowed(verdicts), verdicts))
        out.sort(key=lambda c: (-c.score, c.expected_spend, c.action))
        return out

    @staticmethod
    def group(req: DecisionRequest) -> str:
        """The item's group for the elasticity prior: its brand, else its category."""
        return req.item.brand or req.item.category

    def choose(self, cands: Sequence[Candidate]) -> Candidate:
        """Best allowed score; among allowed ones within tolerance of it, the lowest expected spend."""
        ok = [c for c in cands if c.allowed]
        if not ok:
            return next(c for c in cands if c.action == NO_ACTION)
        best = ok[0].score
        near = [c for c in ok if c.score >= best - self.tolerance * max(abs(best), 1.0)]
        return min(near, key=lambda c: (c.expected_spend, -c.score, c.action))

    def decide(self, req: DecisionRequest, *, record: bool = True) -> Decision:
        """Score, choose, re-check, and (by default) count the offer against caps and budgets."""
        cands = self.score(req)
        chosen = self.choose(cands)
        digest = req.digest()
        now = req.now or utc_now()
        propensity, arm = 1.0, "greedy"
        if self.explore_rate > 0:
            draw = hashlib.sha256(f"explore|{digest}|{now.isoformat()}".encode()).digest()
            ok = sorted(c.action for c in cands if c.allowed) or [NO_ACTION]
            if int.from_bytes(draw[:8]) / 2**64 < self.explore_rate:
                pick = ok[int.from_bytes(draw[8:16]) % len(ok)]
                chosen = next(c for c in cands if c.action == pick)
                propensity, arm = 1.0 / len(ok), "randomized"
        offer = self._offer(ACTIONS[chosen.action], req)
        if not allowed(check_offer(offer, req.item, req.shopper, self.rules, self.state, req.features, req.now)):
            chosen = next(c for c in cands if c.action == NO_ACTION)  # pragma: no cover - belt and braces
            offer = self._offer(ACTIONS[NO_ACTION], req)
        if record:
            self.state.record(offer, req.shopper)
        did = hashlib.sha256(f"{digest}|{now.isoformat()}|{self.model.version_}".encode()).hexdigest()[:24]
        spec = ACTIONS[chosen.action]
        return Decision(f"dec-{did}", chosen.action, chosen.expected_value, offer, spec.personalized_price,
                        tuple(c for c in cands if c.action != chosen.action and c.allowed)[:3], tuple(cands),
                        self.model.version_, digest, spec.timing, spec.channel, propensity, arm,
                        self.model.slope(self.group(req))[1],
                        self.model.prior.version if self.model.prior is not None else None)
