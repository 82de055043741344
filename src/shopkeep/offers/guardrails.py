"""Deterministic offer guardrails: deny by default, one stable reason code per refusal.

:func:`check_offer` evaluates every rule on one candidate offer and returns all verdicts; the offer
may be returned only if every verdict passed. Money is integer minor units throughout; rates are in
basis points. ``no_action`` is the only action that needs no permission (it changes nothing).

>>> from shopkeep.types import Money
>>> item = ItemFacts("sku-1", Money(1000, "USD"), Money(600, "USD"))
>>> offer = Offer("amount_off", "sku-1", Money(900, "USD"), Money(0, "USD"), Money(100, "USD"))
>>> rules = GuardrailRules(allowed_actions=frozenset({"amount_off"}), min_margin_bps=2000,
...                        budgets={"default": Money(50_000, "USD")})
>>> verdicts = check_offer(offer, item, ShopperFacts("k1"), rules, GuardrailState(), {})
>>> allowed(verdicts), [v.code for v in verdicts if not v.passed]
(True, [])
>>> deep = Offer("amount_off", "sku-1", Money(700, "USD"), Money(0, "USD"), Money(300, "USD"))
>>> [v.code for v in check_offer(deep, item, ShopperFacts("k1"), rules, GuardrailState(), {}) if not v.passed]
['below_margin_target']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shopkeep.types import Money

__all__ = [
    "NO_ACTION",
    "PROTECTED_ATTRIBUTES",
    "GuardrailRules",
    "GuardrailState",
    "ItemFacts",
    "Offer",
    "Override",
    "ShopperFacts",
    "Verdict",
    "allowed",
    "check_offer",
]

NO_ACTION = "no_action"
#: Inputs that may never feed an offer decision, whatever the whitelist says.
PROTECTED_ATTRIBUTES: frozenset[str] = frozenset({
    "age", "gender", "sex", "race", "ethnicity", "religion", "disability", "pregnancy", "marital_status",
    "national_origin", "sexual_orientation", "zip_income", "health",
})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the guardrails need to know about the item: list price, unit cost, MAP, regulation."""

    item_id: str
    price: Money
    cost: Money | None
    map_price: Money | None = None
    category: str = ""
    regulated_class: str | None = None
    brand: str | None = None


@dataclass(frozen=True, slots=True)
class ShopperFacts:
    """The pseudonymous shopper key and the non-protected facts rules may use."""

    shopper_key: str
    region: str = ""
    channel: str = "web"
    loyalty_member: bool = False
    segment: str = "default"


@dataclass(frozen=True, slots=True)
class Offer:
    """A candidate: displayed unit price, fulfilment cost, and total incentive cost (markdown + subsidy)."""

    action: str
    item_id: str
    display_price: Money
    fulfillment_cost: Money
    incentive_cost: Money
    campaign: str = "default"
    loyalty_only: bool = False
    personalized: bool = False
    stacks_with: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Override:
    """An operator override: ``allow`` lifts the action whitelist, ``deny`` blocks; both expire."""

    effect: str
    expires_at: datetime
    action: str | None = None
    item_id: str | None = None

    def applies(self, offer: Offer, now: datetime) -> bool:
        """Whether this override is live and matches the offer."""
        return (now < self.expires_at and self.action in (None, offer.action)
                and self.item_id in (None, offer.item_id))


@dataclass(frozen=True, slots=True)
class GuardrailRules:
    """Merchant rules. Empty ``allowed_actions`` means only ``no_action`` (deny by default)."""

    allowed_actions: frozenset[str] = frozenset()
    min_margin_bps: int = 1000
    stackable: frozenset[frozenset[str]] = frozenset()
    excluded_regions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    excluded_channels: Mapping[str, frozenset[str]] = field(default_factory=dict)
    consistent_channels: frozenset[str] = frozenset()
    regulated_no_offer: frozenset[str] = frozenset()
    shopper_cap: int = 3
    offer_cap: int = 1000
    budgets: Mapping[str, Money] = field(default_factory=dict)
    allowed_inputs: frozenset[str] = frozenset()
    max_dispersion_bps: int = 1500
    kill_switch: bool = False
    overrides: tuple[Override, ...] = ()


@dataclass
class GuardrailState:
    """Counters the caps and consistency checks read; :meth:`record` updates them after a decision."""

    shopper_counts: dict[str, int] = field(default_factory=dict)
    offer_counts: dict[str, int] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    segment_low: dict[str, dict[str, int]] = field(default_factory=dict)
    public_price: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self, offer: Offer, shopper: ShopperFacts) -> None:
        """Count a returned (non-``no_action``) offer against caps, budget and price records."""
        if offer.action == NO_ACTION:
            return
        self.shopper_counts[shopper.shopper_key] = self.shopper_counts.get(shopper.shopper_key, 0) + 1
        key = f"{offer.campaign}:{offer.action}"
        self.offer_counts[key] = self.offer_counts.get(key, 0) + 1
        self.spent[offer.campaign] = self.spent.get(offer.campaign, 0) + offer.incentive_cost.amount
        lows = self.segment_low.setdefault(offer.item_id, {})
        lows[shopper.segment] = min(lows.get(shopper.segment, offer.display_price.amount), offer.display_price.amount)
        if not offer.personalized:
            self.public_price.setdefault(offer.item_id, {})[shopper.channel] = offer.display_price.amount


@dataclass(frozen=True, slots=True)
class Verdict:
    """One rule's outcome; ``code`` is stable (``ok`` when passed)."""

    rule: str
    passed: bool
    code: str
    detail: str = ""


def allowed(verdicts: tuple[Verdict, ...]) -> bool:
    """True only if there is at least one verdict and every one passed."""
    return bool(verdicts) and all(v.passed for v in verdicts)


def _v(rule: str, ok: bool, code: str, detail: str = "") -> Verdict:
    return Verdict(rule, ok, "ok" if ok else code, "" if ok else detail)


def _price_rules(offer: Offer, item: ItemFacts, rules: GuardrailRules) -> list[Verdict]:
    if item.cost is None or item.cost.currency != offer.display_price.currency:
        return [_v("cost_floor", False, "missing_cost", "no unit cost in the item's currency")]
    net = offer.display_price.amount
    # The incentive includes the markdown already netted out of the displayed price; count the rest.
    extra = max(0, offer.incentive_cost.amount - max(0, item.price.amount - net))
    floor = item.cost.amount + offer.fulfillment_cost.amount + extra
    contribution = net - floor
    out = [_v("cost_floor", net >= item.cost.amount and contribution >= 0, "below_cost_floor",
              f"price {net} - costs {floor} < 0")]
    out.append(_v("margin_target", contribution * 10_000 >= rules.min_margin_bps * max(net, 1),
                  "below_margin_target", f"contribution {contribution} < {rules.min_margin_bps} bps of {net}"))
    map_ok = item.map_price is None or net >= item.map_price.amount
    out.append(_v("map", map_ok, "below_map", f"displayed {net} < MAP {item.map_price}"))
    out.append(_v("price_ceiling", net <= item.price.amount, "above_list_price", f"{net} > list {item.price.amount}"))
    return out


def _audience_rules(offer: Offer, item: ItemFacts, shopper: ShopperFacts, rules: GuardrailRules) -> list[Verdict]:
    out = [
        _v("region", shopper.region not in rules.excluded_regions.get(offer.action, frozenset()),
           "region_excluded", f"{offer.action} excluded in {shopper.region}"),
        _v("channel", shopper.channel not in rules.excluded_channels.get(offer.action, frozenset()),
           "channel_excluded", f"{offer.action} excluded on {shopper.channel}"),
        _v("regulated", item.regulated_class is None or item.regulated_class not in rules.regulated_no_offer,
           "regulated_category", f"no offers on {item.regulated_class}"),
        _v("loyalty", not offer.loyalty_only or shopper.loyalty_member, "not_loyalty_member",
           "loyalty-only offer to a non-member"),
    ]
    bad = [s for s in offer.stacks_with if frozenset({s, offer.action}) not in rules.stackable]
    out.append(_v("stackability", not bad, "not_stackable", f"{offer.action} does not stack with {bad}"))
    return out


def _state_rules(offer: Offer, item: ItemFacts, shopper: ShopperFacts, rules: GuardrailRules,
                 state: GuardrailState) -> list[Verdict]:
    n_shopper = state.shopper_counts.get(shopper.shopper_key, 0)
    n_offer = state.offer_counts.get(f"{offer.campaign}:{offer.action}", 0)
    budget = rules.budgets.get(offer.campaign)
    spent = state.spent.get(offer.campaign, 0)
    budget_ok = budget is not None and spent + offer.incentive_cost.amount <= budget.amount
    if offer.incentive_cost.amount == 0:
        budget_ok = True
    lows = dict(state.segment_low.get(offer.item_id, {}))
    lows[shopper.segment] = min(lows.get(shopper.segment, item.price.amount), offer.display_price.amount)
    for seg in lows:  # segments never offered anything saw the list price
        lows[seg] = min(lows[seg], item.price.amount)
    spread = (max(max(lows.values()), item.price.amount) - min(lows.values())) if offer.personalized else 0
    public = state.public_price.get(offer.item_id, {})
    others = {p for ch, p in public.items() if ch != shopper.channel and ch in rules.consistent_channels}
    consistent = (offer.personalized or shopper.channel not in rules.consistent_channels
                  or not others or others == {offer.display_price.amount})
    return [
        _v("shopper_cap", n_shopper < rules.shopper_cap, "shopper_frequency_cap", f"{n_shopper} offers already"),
        _v("offer_cap", n_offer < rules.offer_cap, "offer_frequency_cap", f"{n_offer} shown already"),
        _v("budget", budget_ok, "budget_exhausted", f"spent {spent} of {budget}"),
        _v("dispersion", spread * 10_000 <= rules.max_dispersion_bps * item.price.amount, "price_dispersion",
           f"segment price spread {spread} over {rules.max_dispersion_bps} bps"),
        _v("cross_channel", consistent, "channel_inconsistent", f"public price differs from {sorted(others)}"),
    ]


def check_offer(offer: Offer, item: ItemFacts, shopper: ShopperFacts, rules: GuardrailRules,
                state: GuardrailState, inputs: Mapping[str, Any], now: datetime | None = None) -> tuple[Verdict, ...]:
    """Every guardrail verdict for ``offer``; the offer is allowed only if all passed (see :func:`allowed`).

    ``inputs`` are the named features the decision used: each must be whitelisted and none protected.
    """
    now = now or _EPOCH
    protected = sorted(k for k in inputs if k.lower() in PROTECTED_ATTRIBUTES)
    unlisted = sorted(k for k in inputs if k not in rules.allowed_inputs)
    head = [
        _v("inputs_protected", not protected, "protected_input", f"protected inputs {protected}"),
        _v("inputs_whitelist", not unlisted, "input_not_allowed", f"inputs not whitelisted {unlisted}"),
        _v("item", offer.item_id == item.item_id and offer.display_price.currency == item.price.currency,
           "item_mismatch", "offer does not match the item or its currency"),
    ]
    if offer.action == NO_ACTION:
        return (*head, _v("no_action", offer.display_price == item.price and offer.incentive_cost.amount == 0,
                          "no_action_changed_price", "no_action must keep the list price and cost nothing"))
    denied = any(o.effect == "deny" and o.applies(offer, now) for o in rules.overrides)
    lifted = any(o.effect == "allow" and o.applies(offer, now) for o in rules.overrides)
    head += [
        _v("kill_switch", not rules.kill_switch, "kill_switch", "offers are switched off"),
        _v("override", not denied, "operator_override_deny", "a live operator override denies it"),
        _v("action_allowed", offer.action in rules.allowed_actions or lifted, "action_not_allowed",
           f"{offer.action} is not enabled"),
    ]
    if offer.incentive_cost.currency != item.price.currency or offer.fulfillment_cost.currency != item.price.currency:
        return (*head, _v("currency", False, "currency_mismatch", "costs in another currency"))
    return (*head, *_price_rules(offer, item, rules), *_audience_rules(offer, item, shopper, rules),
            *_state_rules(offer, item, shopper, rules, state))
