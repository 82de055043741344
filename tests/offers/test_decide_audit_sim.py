"""Decision stack, audit trail (real SQLite file), simulator price response and the small policy comparison."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopkeep.cli.main import main
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.offers.audit import AuditTrail, pseudonymize
from shopkeep.offers.decide import DecisionRequest, DecisionStack
from shopkeep.offers.guardrails import GuardrailState, ItemFacts, ShopperFacts
from shopkeep.offers.simulation import default_rules, evaluate_config, summarize
from shopkeep.offers.uplift import UpliftModel
from shopkeep.simulate.pricing import CONFIGS, TREATMENTS, PriceWorld
from shopkeep.storage import open_store
from shopkeep.types import Money

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RATIOS = {n: 1 - t.discount_bps / 10_000 for n, t in TREATMENTS.items() if t.discount_bps}


@pytest.fixture(scope="module")
def model() -> UpliftModel:
    world = PriceWorld.create(CONFIGS["responsive"], 11, n_shoppers=2000)
    return UpliftModel(discounts=RATIOS).fit(world.log_randomized(rng_seed=3))


def _req(key: str = "psk-1", price: int = 4000, cost: int = 2000, deal: float = 4.0) -> DecisionRequest:
    feats = {"loyalty_member": 1.0, "deal_affinity": deal, "engagement": -1.5, "log_price": 3.7, "offers_seen": 0.0}
    return DecisionRequest(ShopperFacts(key, loyalty_member=True, segment="member"),
                           ItemFacts("sku-1", Money(price, "USD"), Money(cost, "USD")), feats, Money(599, "USD"),
                           now=NOW)


def test_simulator_truth_has_price_response_halo_and_fatigue() -> None:
    w = PriceWorld.create(CONFIGS["responsive"], 0, n_shoppers=50)
    s = int(max(range(50), key=lambda i: w.beta_h[i]))
    p0, sub0, comp0 = w.probabilities(s, 0, TREATMENTS["no_action"])
    p20, sub20, _ = w.probabilities(s, 0, TREATMENTS["pct_20"])
    _, _, comp_b = w.probabilities(s, 0, TREATMENTS["bundle"])
    assert p20 > p0 and sub20 < sub0 and comp_b > comp0  # price response, cannibalization, halo
    w.states[s].incentives = 5
    assert w.probabilities(s, 0, TREATMENTS["pct_20"])[0] - p0 < p20 - p0  # coupon fatigue
    w.states[s].incentives = 0
    w.step(s, 0, TREATMENTS["pct_20"], (0.0, 1.0, 1.0))
    assert w.probabilities(s, 0, TREATMENTS["no_action"])[0] < p0  # stock-up pulls demand forward


def test_decision_has_runner_ups_disclosure_and_tolerance(model: UpliftModel) -> None:
    stack = DecisionStack(model, default_rules())
    d = stack.decide(_req())
    assert d.decision_id.startswith("dec-") and d.runner_ups
    assert all(c.allowed for c in d.runner_ups)
    assert d.personalized_price == (d.offer.display_price.amount < 4000)
    best = max(c.score for c in d.candidates if c.allowed)
    chosen = next(c for c in d.candidates if c.action == d.action)
    assert chosen.score >= best - stack.tolerance * abs(best)
    # A razor-thin margin item: every discount is refused and the reason codes are kept.
    thin = stack.decide(_req(price=1000, cost=990))
    refused = next(c for c in thin.candidates if c.action == "pct_20")
    assert not refused.allowed and "below_margin_target" in {v.code for v in refused.verdicts}
    assert thin.offer.display_price.amount == 1000


def test_audit_trail_records_lists_and_replays(model: UpliftModel, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/audit.db")
    try:
        trail = AuditTrail(store)
        stack = DecisionStack(model, default_rules(), GuardrailState())
        key = pseudonymize("user-42", b"secret")
        docs = [trail.decide(stack, _req(key, deal=d))[1] for d in (4.0, -2.0, 1.0)]
        trail.decide(stack, _req("psk-other"))
        assert len(trail.list(shopper_key=key)) == 3 and len(trail.list()) == 4
        assert {d["action"] for d in trail.list(action=docs[0]["action"])} == {docs[0]["action"]}
        got = trail.get(docs[1]["decision_id"])
        assert got["shopper_key"] == key and "user-42" not in json.dumps(got)
        assert all(c["verdicts"] for c in got["candidates"]) and got["model_versions"]["uplift"] == model.version_
        for doc in docs:
            replay = AuditTrail.replay(trail.get(doc["decision_id"]), stack)
            assert (replay.decision_id, replay.action, replay.expected_value) == (
                doc["decision_id"], doc["action"], doc["expected_value"])
        with pytest.raises(NotFoundError):
            trail.get("dec-nope")
        with pytest.raises(ValidationError):
            trail.list(k=0)
    finally:
        store.close()


def test_small_policy_comparison_stack_wins_without_violations() -> None:
    res = evaluate_config(CONFIGS["thin_margin"], seeds=(0, 1), n_log=1500, n_eval=300)
    out = summarize(res, 300)
    assert out["policies"]["decision_stack"]["violations"] == 0
    assert out["policies"]["oracle"]["violations"] == 0
    for rival in ("blanket_10", "blanket_20", "random"):
        assert out["stack_minus"][rival]["mean"] > 0
    assert out["policies"]["blanket_20"]["discount_spend"] > out["policies"]["decision_stack"]["discount_spend"]


def test_cli_simulate_json_small(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["offers", "simulate", "--configs", "responsive", "--seeds", "1", "--log-shoppers", "800",
                 "--eval-shoppers", "150", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pol = out["configs"]["responsive"]["policies"]
    assert set(pol) == {"decision_stack", "no_discount", "blanket_10", "blanket_20", "random", "oracle",
                        "ablation_constant_prior"}
    assert {"contribution_margin", "conversion", "discount_spend", "violations"} <= set(pol["decision_stack"])
    assert main(["offers", "simulate", "--configs", "nope"]) == 2
