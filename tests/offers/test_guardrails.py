"""Guardrails: each rule's reason code, and property tests that no returned decision crosses any rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopkeep.offers.decide import ACTIONS, DecisionRequest, DecisionStack
from shopkeep.offers.guardrails import (
    NO_ACTION,
    GuardrailRules,
    GuardrailState,
    ItemFacts,
    Offer,
    Override,
    ShopperFacts,
    allowed,
    check_offer,
)
from shopkeep.offers.uplift import FEATURES, UpliftModel
from shopkeep.simulate.pricing import CONFIGS, TREATMENTS, PriceWorld
from shopkeep.types import Money

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USD = "USD"
ITEM = ItemFacts("sku-1", Money(1000, USD), Money(500, USD), Money(850, USD), "juice")
ALL = frozenset(ACTIONS)
RULES = GuardrailRules(allowed_actions=ALL, min_margin_bps=1000, allowed_inputs=frozenset({"x"}),
                       budgets={"default": Money(10_000, USD)}, max_dispersion_bps=5000)


def _offer(action: str = "pct_10", price: int = 900, incentive: int = 100, **kw: object) -> Offer:
    return Offer(action, "sku-1", Money(price, USD), Money(0, USD), Money(incentive, USD), **kw)  # type: ignore[arg-type]


def _codes(offer: Offer, rules: GuardrailRules = RULES, shopper: ShopperFacts | None = None,
           state: GuardrailState | None = None, inputs: dict[str, float] | None = None,
           item: ItemFacts = ITEM) -> list[str]:
    vs = check_offer(offer, item, shopper or ShopperFacts("k"), rules, state or GuardrailState(),
                     inputs if inputs is not None else {"x": 1.0}, NOW)
    return [v.code for v in vs if not v.passed]


def test_each_rule_refuses_with_its_code() -> None:
    assert _codes(_offer()) == []
    assert _codes(_offer(price=800, incentive=200)) == ["below_map"]
    assert _codes(_offer(price=900, incentive=450)) == ["below_margin_target"]  # 350 of subsidy on top
    assert "below_cost_floor" in _codes(_offer(price=450, incentive=550))
    assert _codes(_offer(), GuardrailRules()) [0] == "input_not_allowed"
    assert "action_not_allowed" in _codes(_offer(), GuardrailRules(allowed_inputs=frozenset({"x"})))
    assert _codes(_offer(), inputs={"x": 1.0, "gender": 1.0})[:2] == ["protected_input", "input_not_allowed"]
    assert _codes(_offer(), GuardrailRules(**{**_kw(), "kill_switch": True})) == ["kill_switch"]
    assert _codes(_offer(loyalty_only=True)) == ["not_loyalty_member"]
    assert _codes(_offer(loyalty_only=True), shopper=ShopperFacts("k", loyalty_member=True)) == []
    assert _codes(_offer(stacks_with=("bundle",))) == ["not_stackable"]
    stack_ok = GuardrailRules(**{**_kw(), "stackable": frozenset({frozenset({"bundle", "pct_10"})})})
    assert _codes(_offer(stacks_with=("bundle",)), stack_ok) == []
    region = GuardrailRules(**{**_kw(), "excluded_regions": {"pct_10": frozenset({"CA-QC"})}})
    assert _codes(_offer(), region, ShopperFacts("k", region="CA-QC")) == ["region_excluded"]
    chan = GuardrailRules(**{**_kw(), "excluded_channels": {"pct_10": frozenset({"app"})}})
    assert _codes(_offer(), chan, ShopperFacts("k", channel="app")) == ["channel_excluded"]
    reg = GuardrailRules(**{**_kw(), "regulated_no_offer": frozenset({"alcohol"})})
    assert _codes(_offer(), reg, item=ItemFacts("sku-1", Money(1000, USD), Money(500, USD), None, "", "alcohol")) \
        == ["regulated_category"]
    assert _codes(_offer(), item=ItemFacts("sku-1", Money(1000, USD), None)) == ["missing_cost"]


def _kw() -> dict[str, object]:
    return {"allowed_actions": ALL, "min_margin_bps": 1000, "allowed_inputs": frozenset({"x"}),
            "budgets": {"default": Money(10_000, USD)}, "max_dispersion_bps": 5000}


def test_caps_budget_dispersion_consistency_and_overrides() -> None:
    state = GuardrailState()
    capped = GuardrailRules(**{**_kw(), "shopper_cap": 1, "offer_cap": 2})
    shopper = ShopperFacts("k")
    state.record(_offer(), shopper)
    assert _codes(_offer(), capped, shopper, state) == ["shopper_frequency_cap"]
    state.record(_offer(), ShopperFacts("j"))
    assert "offer_frequency_cap" in _codes(_offer(), capped, ShopperFacts("z"), state)
    assert _codes(_offer(incentive=20_000, price=900)) .count("budget_exhausted") == 1
    tight = GuardrailRules(**{**_kw(), "max_dispersion_bps": 500})
    assert _codes(_offer(personalized=True), tight) == ["price_dispersion"]
    pub = GuardrailState()
    cons = GuardrailRules(**{**_kw(), "consistent_channels": frozenset({"web", "app"})})
    pub.record(_offer(price=950, incentive=50), ShopperFacts("a", channel="web"))
    assert _codes(_offer(), cons, ShopperFacts("b", channel="app"), pub) == ["channel_inconsistent"]
    deny = GuardrailRules(**{**_kw(), "overrides": (Override("deny", NOW + timedelta(hours=1), "pct_10"),)})
    assert _codes(_offer(), deny) == ["operator_override_deny"]
    expired = GuardrailRules(**{**_kw(), "overrides": (Override("deny", NOW - timedelta(hours=1), "pct_10"),)})
    assert _codes(_offer(), expired) == []
    lift = GuardrailRules(allowed_inputs=frozenset({"x"}), budgets={"default": Money(10_000, USD)},
                          max_dispersion_bps=5000, overrides=(Override("allow", NOW + timedelta(hours=1), "pct_10"),))
    assert _codes(_offer(), lift) == []  # the whitelist is lifted, the money rules still hold
    assert "below_map" in _codes(_offer(price=800, incentive=200), lift)


# ---- property tests -------------------------------------------------------------------------------

_MODEL_CACHE: dict[str, UpliftModel] = {}


def _model() -> UpliftModel:
    if "m" not in _MODEL_CACHE:
        world = PriceWorld.create(CONFIGS["responsive"], 1, n_shoppers=300)
        ratios = {n: 1 - t.discount_bps / 10_000 for n, t in TREATMENTS.items() if t.discount_bps}
        _MODEL_CACHE["m"] = UpliftModel(discounts=ratios).fit(world.log_randomized(rng_seed=2))
    return _MODEL_CACHE["m"]


items = st.builds(
    lambda i, price, cost_pct, map_pct, reg: ItemFacts(
        f"sku-{i}", Money(price, USD), Money(price * cost_pct // 100, USD) if cost_pct else None,
        Money(price * map_pct // 100, USD) if map_pct else None, "c", reg),
    st.integers(0, 5), st.integers(100, 20_000), st.integers(0, 110), st.integers(0, 100),
    st.sampled_from([None, "alcohol", "retinoid"]))
shoppers = st.builds(ShopperFacts, st.sampled_from(["k1", "k2", "k3"]), st.sampled_from(["", "US-UT", "CA-QC"]),
                     st.sampled_from(["web", "app"]), st.booleans(), st.sampled_from(["member", "guest", "new"]))
rules_st = st.builds(
    lambda acts, margin, regions, channels, reg, cap, budget, kill, disp, extra_input, consistent: GuardrailRules(
        allowed_actions=frozenset(acts), min_margin_bps=margin, excluded_regions={a: frozenset(regions) for a in acts},
        excluded_channels={"pct_20": frozenset(channels)}, regulated_no_offer=frozenset(reg), shopper_cap=cap,
        offer_cap=cap * 2, budgets={"default": Money(budget, USD)}, kill_switch=kill, max_dispersion_bps=disp,
        allowed_inputs=frozenset(FEATURES) - ({"offers_seen"} if extra_input else set()),
        consistent_channels=frozenset({"web", "app"}) if consistent else frozenset()),
    st.sets(st.sampled_from(sorted(ACTIONS))), st.integers(0, 6000), st.sets(st.sampled_from(["US-UT", "CA-QC"])),
    st.sets(st.sampled_from(["web", "app"])), st.sets(st.sampled_from(["alcohol", "retinoid"])), st.integers(0, 4),
    st.integers(0, 3000), st.booleans(), st.integers(0, 3000), st.booleans(), st.booleans())
features = st.fixed_dictionaries({f: st.floats(-3, 5, allow_nan=False) for f in FEATURES})


def _oracle_violations(offer: Offer, item: ItemFacts, shopper: ShopperFacts, rules: GuardrailRules,
                       state: GuardrailState, inputs: dict[str, float]) -> list[str]:
    """Plain restatement of every rule, independent of check_offer's code."""
    if offer.action == NO_ACTION:
        return [] if offer.display_price == item.price and offer.incentive_cost.amount == 0 else ["no_action"]
    bad = []
    price = offer.display_price.amount
    extra = max(0, offer.incentive_cost.amount - max(0, item.price.amount - price))
    costs = (item.cost.amount if item.cost else 10**12) + offer.fulfillment_cost.amount + extra
    if rules.kill_switch:
        bad.append("kill")
    if offer.action not in rules.allowed_actions:
        bad.append("not allowed")
    if set(inputs) - rules.allowed_inputs:
        bad.append("inputs")
    if item.cost is None or price < costs or (price - costs) * 10_000 < rules.min_margin_bps * price:
        bad.append("margin")
    if item.map_price is not None and price < item.map_price.amount:
        bad.append("map")
    if shopper.region in rules.excluded_regions.get(offer.action, frozenset()):
        bad.append("region")
    if shopper.channel in rules.excluded_channels.get(offer.action, frozenset()):
        bad.append("channel")
    if item.regulated_class in rules.regulated_no_offer:
        bad.append("regulated")
    if offer.loyalty_only and not shopper.loyalty_member:
        bad.append("loyalty")
    if state.shopper_counts.get(shopper.shopper_key, 0) >= rules.shopper_cap:
        bad.append("cap")
    if offer.incentive_cost.amount and state.spent.get("default", 0) + offer.incentive_cost.amount > \
            rules.budgets["default"].amount:
        bad.append("budget")
    if offer.personalized:
        lows = [min(v, item.price.amount) for v in state.segment_low.get(item.item_id, {}).values()] + [price]
        if (item.price.amount - min(lows)) * 10_000 > rules.max_dispersion_bps * item.price.amount:
            bad.append("dispersion")
    return bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rules_st, visits=st.lists(st.tuples(items, shoppers, features), min_size=1, max_size=12))
def test_no_returned_decision_violates_a_guardrail(
        rules: GuardrailRules, visits: list[tuple[ItemFacts, ShopperFacts, dict[str, float]]]) -> None:
    stack = DecisionStack(_model(), rules, GuardrailState())
    for item, shopper, feats in visits:
        before = GuardrailState(dict(stack.state.shopper_counts), dict(stack.state.offer_counts),
                                dict(stack.state.spent), {k: dict(v) for k, v in stack.state.segment_low.items()},
                                {k: dict(v) for k, v in stack.state.public_price.items()})
        d = stack.decide(DecisionRequest(shopper, item, feats, Money(599, USD), now=NOW))
        assert _oracle_violations(d.offer, item, shopper, rules, before, feats) == [], d
        if d.action != NO_ACTION:
            assert allowed(check_offer(d.offer, item, shopper, rules, before, feats, NOW))


@settings(max_examples=40, deadline=None)
@given(item=items, shopper=shoppers, rules=rules_st, action=st.sampled_from(sorted(ACTIONS)),
       price=st.integers(0, 25_000), incentive=st.integers(0, 5000), personalized=st.booleans())
def test_check_offer_never_allows_what_the_plain_oracle_refuses(
        item: ItemFacts, shopper: ShopperFacts, rules: GuardrailRules, action: str, price: int, incentive: int,
        personalized: bool) -> None:
    offer = Offer(action, item.item_id, Money(price, USD), Money(0, USD), Money(incentive, USD),
                  personalized=personalized)
    feats = dict.fromkeys(FEATURES, 0.0)
    if allowed(check_offer(offer, item, shopper, rules, GuardrailState(), feats, NOW)) and action != NO_ACTION:
        assert _oracle_violations(offer, item, shopper, rules, GuardrailState(), feats) == []
