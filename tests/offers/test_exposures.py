"""Events -> exposures adapter, the fitted elasticity prior and the model artifacts, on real SQLite stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeep.catalog import CatalogRepository
from shopkeep.cli.main import main
from shopkeep.config import load_config
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.offers.audit import AUDIT_COLLECTION, AuditTrail
from shopkeep.offers.decide import DecisionRequest, DecisionStack
from shopkeep.offers.exposures import read_exposures, write_events
from shopkeep.offers.guardrails import GuardrailState, ItemFacts, ShopperFacts
from shopkeep.offers.priors import ElasticityPrior, prior_from_exposures
from shopkeep.offers.simlog import log_documents, log_to_store
from shopkeep.offers.simulation import default_rules, learn_from_log
from shopkeep.offers.uplift import UpliftModel
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.serving.app import create_app
from shopkeep.simulate.pricing import CONFIGS, PriceWorld
from shopkeep.storage import open_store
from shopkeep.types import Item, Money


def _key(e: object) -> tuple[object, ...]:
    o = e.outcome  # type: ignore[attr-defined]
    return (e.action, round(e.propensity, 9), bool(o.focal), o.contribution, o.focal_contribution,  # type: ignore[attr-defined]
            e.later_contribution, e.group, round(e.price_ratio, 9), dict(e.features))  # type: ignore[attr-defined]


def test_adapter_reads_back_exactly_what_the_simulator_logged(tmp_path: Path) -> None:
    world = PriceWorld.create(CONFIGS["fatigued"], 7, n_shoppers=250)
    logs = world.log_randomized(rng_seed=8)
    direct = open_store(f"sqlite:///{tmp_path}/direct.db")
    ingested = open_store(f"sqlite:///{tmp_path}/ingested.db")
    try:
        assert log_to_store(world, logs, direct) > len(logs)
        items, records, events = log_documents(world, logs)
        CatalogRepository(ingested).upsert_many(items)
        ingested.put_many(AUDIT_COLLECTION, records)
        report = Ingestor(ingested).ingest_batch(events)  # the production ingest path
        assert report.accepted == len(events) and not report.errors
        got_direct, got_ingested = read_exposures(direct), read_exposures(ingested)
        by_id = {e.offer_id: e for e in got_direct}
        assert len(got_direct) == len(logs) == len(got_ingested)
        for e in logs:  # outcome, later (pull-forward) contribution, features, propensity: all identical
            assert _key(by_id[f"x-{e.shopper_key}-{e.visit}"]) == _key(e)
        assert [_key(e) for e in got_direct] == [_key(e) for e in got_ingested]
        # Replaying the same events stores nothing new and reads back the same exposures.
        assert write_events(direct, events[:50]).duplicates
        assert [_key(e) for e in read_exposures(direct)] == [_key(e) for e in got_direct]
    finally:
        direct.close()
        ingested.close()


def test_production_decisions_with_a_randomized_arm_become_exposures(tmp_path: Path) -> None:
    world = PriceWorld.create(CONFIGS["responsive"], 3, n_shoppers=600)
    model = UpliftModel().fit(world.log_randomized(rng_seed=4))
    store = open_store(f"sqlite:///{tmp_path}/prod.db")
    try:
        CatalogRepository(store).upsert_many([Item("sku-1", "Juice", price=Money(4000, "USD"),
                                                   cost=Money(2000, "USD"))])
        stack = DecisionStack(model, default_rules(), GuardrailState(), explore_rate=0.5)
        trail, t0 = AuditTrail(store), datetime(2026, 1, 5, tzinfo=UTC)
        events, arms = [], {}
        for n in range(40):
            feats = {"loyalty_member": 0.0, "deal_affinity": n / 10, "engagement": -1.0, "log_price": 3.7,
                     "offers_seen": 0.0}
            req = DecisionRequest(ShopperFacts(f"psk-{n}"), ItemFacts("sku-1", Money(4000, "USD"), Money(2000, "USD"),
                                                                     category="juice"),
                                  feats, Money(599, "USD"), now=t0 + timedelta(minutes=n))
            d, doc = trail.decide(stack, req)
            arms[d.decision_id] = (doc["arm"], doc["propensity"], d.action)
            ts = (t0 + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
            events.append({"event_id": f"{d.decision_id}:s", "type": "offer_shown", "timestamp": ts,
                           "anonymous_id": f"anon-{n}", "offer_id": d.decision_id, "item_id": "sku-1"})
            if n % 3 == 0:
                events.append({"event_id": f"{d.decision_id}:b", "type": "purchase", "timestamp": ts,
                               "anonymous_id": f"anon-{n}", "item_id": "sku-1", "order_id": f"o{n}", "quantity": 1,
                               "price": d.offer.display_price.to_dict()})
        Ingestor(store).ingest_batch(events)
        got = read_exposures(store)
        randomized = {k for k, (arm, _, _) in arms.items() if arm == "randomized"}
        assert {e.offer_id for e in got} == randomized and 5 < len(randomized) < 35
        for e in got:
            _, propensity, action = arms[e.offer_id]
            assert e.action == action and e.propensity == propensity and 0 < propensity < 1
            assert e.group == "juice"
        bought = [e for e in got if e.outcome.focal]
        assert bought and all(e.outcome.focal_contribution == round(4000 * e.price_ratio) - 2000
                              - (599 if e.action == "free_shipping" else 0) for e in bought)
        assert {e.action for e in read_exposures(store, arm="greedy")} <= {a for _, _, a in arms.values()}
    finally:
        store.close()


def test_prior_artifact_round_trip_lookup_and_fitted_level() -> None:
    p = ElasticityPrior({"cat-1": -2.0, "Tropicana": -3.1}, "test", {"cat-1": (-2.5, -1.5)})
    assert ElasticityPrior.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.lookup("Tropicana", "cat-1") == (-3.1, "fitted: Tropicana")
    e, why = p.lookup("nope")
    assert e == -2.5 and why.startswith("fallback")
    with pytest.raises(ValidationError):
        ElasticityPrior.from_dict({**p.to_dict(), "elasticities": {"cat-1": -9.0}})  # content changed, same version
    with pytest.raises(ValidationError):
        ElasticityPrior({"x": 0.5})
    fitted = {}
    for name in ("responsive", "thin_margin"):
        world = PriceWorld.create(CONFIGS[name], 1001, n_shoppers=4000)
        fitted[name] = prior_from_exposures(world.log_randomized(rng_seed=5))
    mean = {k: sum(v.elasticities.values()) / len(v.elasticities) for k, v in fitted.items()}
    # The thin-margin world's shoppers are far less price sensitive (hidden 0.8 vs 3.0): the fit sees it.
    assert mean["thin_margin"] > mean["responsive"] + 0.5 and mean["responsive"] < -1.0


def test_fit_command_stores_the_model_the_service_then_serves(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/shop.db"
    world = PriceWorld.create(CONFIGS["responsive"], 5, n_shoppers=1500)
    store = open_store(uri)
    try:
        log_to_store(world, world.log_randomized(rng_seed=6), store)
        with pytest.raises(NotFoundError):
            UpliftModel.latest(store)
    finally:
        store.close()
    assert main(["offers", "fit", "--store", uri, "--out", str(tmp_path / "uplift.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exposures"] == 4500 and out["prior"]["version"].startswith("elasticity-")
    assert set(out["prior"]["elasticities"]) == {f"cat-{i}" for i in range(5)}
    restored = UpliftModel.from_dict(json.loads((tmp_path / "uplift.json").read_text()))
    assert restored.version_ == out["uplift_version"]
    feats = {"loyalty_member": 1.0, "deal_affinity": 2.0, "engagement": -1.0, "log_price": 3.0, "offers_seen": 1.0}
    store = open_store(uri)
    try:
        latest = UpliftModel.latest(store)
    finally:
        store.close()
    for a, b in zip(latest.predict(feats, ["pct_10", "bundle"], ratios=[0.9, 1.0], group="cat-2"),
                    restored.predict(feats, ["pct_10", "bundle"], ratios=[0.9, 1.0], group="cat-2"), strict=True):
        assert a.tolist() == b.tolist()
    config = load_config(None, env={"SHOPKEEP_STORAGE__URI": uri})
    with TestClient(create_app(config, auth=False)) as client:
        body = {"shopper_key": "psk-x", "item": {"item_id": "item-3", "category": "cat-3",
                                                 "price": {"amount": 3000, "currency": "USD"},
                                                 "cost": {"amount": 1500, "currency": "USD"}},
                "features": feats, "ship_cost": {"amount": 599, "currency": "USD"}}
        d = client.post("/v1/offers/decide", json=body).json()
        assert d["model_versions"] == {"uplift": out["uplift_version"], "elasticity": out["prior"]["version"]}
        assert d["elasticity_prior"] == "fitted: cat-3"
        other = client.post("/v1/offers/decide", json={**body, "item": {**body["item"], "category": "toys"}}).json()
        assert other["elasticity_prior"].startswith("fallback -2.5: no fitted elasticity for 'toys'")
    assert main(["offers", "fit", "--store", f"sqlite:///{tmp_path}/empty.db"]) == 2


def test_too_small_a_log_falls_back_on_the_constant_prior_and_says_so() -> None:
    learned = learn_from_log(CONFIGS["responsive"], 0, 60)
    assert learned.prior is None and learned.n_exposures == 180
    feats = {"loyalty_member": 0.0, "deal_affinity": 1.0, "engagement": -1.0, "log_price": 3.0, "offers_seen": 0.0}
    d = DecisionStack(learned.model, default_rules()).decide(
        DecisionRequest(ShopperFacts("psk-1"), ItemFacts("item-1", Money(2000, "USD"), Money(900, "USD"),
                                                         category="cat-1"), feats, Money(599, "USD")))
    assert d.prior == "fallback -2.5: no elasticity prior fitted" and d.prior_version is None
