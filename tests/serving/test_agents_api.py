"""/v1/agents over a real engine (memory store) through the FastAPI app with auth on: product facts,
availability, policy constraints, offer eligibility, explanations, and shopper-granted tokens."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from fastapi.testclient import TestClient

from shopkeep.config import Config
from shopkeep.offers.decide import ACTIONS
from shopkeep.pipeline.engine import Engine
from shopkeep.profiles.model import Profile
from shopkeep.serving.app import create_app
from shopkeep.serving.auth import hash_entries
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import open_online_state, open_store
from shopkeep.types import Item, Money

from .conftest import event

READ, ADMIN = "agent-read-key", "agent-admin-key"


@dataclass
class Env:
    client: TestClient
    engine: Engine
    items: dict[str, Item]

    def get(self, path: str, key: str | None = READ, **params: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        res = self.client.get(path, params=params, headers=headers)
        return res.status_code, res.json()

    def post(self, path: str, body: dict, key: str | None = READ) -> tuple[int, dict]:  # type: ignore[type-arg]
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        res = self.client.post(path, json=body, headers=headers)
        return res.status_code, res.json()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SHOPKEEP_SEARCH_ENCODER", "hashing")
    items = list(generate_store(StoreConfig(n_items=300, n_shoppers=5, n_days=1, seed=11)).items)
    base = items[0]
    items[1] = replace(items[1], price=Money(1000, "USD"), map_price=Money(1500, "USD"))  # priced under MAP
    items[2] = replace(items[2], regulated_class="alcohol", regulated_regions=("US-UT",))
    engine = Engine(open_store("memory://"), open_online_state("memory://"), Config())
    engine.upsert_items(items)
    engine.profiles.upsert(Profile("u1", budget_max=Money(4000, "USD"), preferences={"skin_type": ("dry",)},
                                   avoid={"ingredients": ("fragrance",)}, loyalty_tier="gold"))
    engine.profiles.upsert(Profile("u2", preferences={"skin_type": ("oily",)}))
    config = Config(serving=replace(Config().serving, api_keys=hash_entries(f"{READ}:read,{ADMIN}:admin")))
    with TestClient(create_app(config, engine, auth=True)) as c:
        e = Env(c, engine, {it.item_id: it for it in items})
        code, _ = e.post("/v1/events", {"events": [
            event("purchase", "a-u1", user_id="u1", item_id=base.item_id, order_id="o-1", quantity=1, offset_s=-60),
            event("return", "a-u1", user_id="u1", item_id=base.item_id, order_id="o-1", reason="too_small"),
            event("purchase", "a-u2", user_id="u2", item_id=items[5].item_id, order_id="o-2", quantity=1)]}, ADMIN)
        assert code == 200
        yield e
    mp.undo()


def test_product_facts_match_the_catalog(env: Env) -> None:
    for item in list(env.items.values())[:20]:
        code, doc = env.get(f"/v1/agents/products/{item.item_id}")
        assert code == 200
        assert doc["title"] == item.title and doc["brand"] == item.brand
        assert doc["price"] == item.price.to_dict()  # type: ignore[union-attr]
        assert doc["display_price"]["amount"] >= (item.map_price.amount if item.map_price else 0)
        assert set(doc["attributes"]) == set(item.attributes)
        assert doc["rating"] == {"average": item.rating_avg, "count": item.rating_count}
    under_map = list(env.items.values())[1]
    _, doc = env.get(f"/v1/agents/products/{under_map.item_id}")
    assert doc["price"]["amount"] == 1000 and doc["display_price"]["amount"] == 1500
    code, err = env.get("/v1/agents/products/no-such-item")
    assert code == 404 and err["error"]["code"] == "not_found"
    code, err = env.get(f"/v1/agents/products/{under_map.item_id}", key=None)
    assert code == 401 and err["error"]["code"] == "unauthorized"


def test_availability_by_location(env: Env) -> None:
    checked_pickup = False
    for item in list(env.items.values())[:40]:
        code, doc = env.get(f"/v1/agents/availability/{item.item_id}")
        assert code == 200 and doc["inventory"] == dict(item.inventory)
        expected = sorted(o.location for o in item.fulfillment if o.kind == "pickup" and o.same_day and o.location
                          and item.inventory.get(o.location, 0) > 0)
        assert sorted(doc["same_day_pickup_stores"]) == expected
        assert [s["sla_days"] for s in doc["ship"]] == [o.sla_days for o in item.fulfillment if o.kind == "ship"]
        for store in ("store-01", "store-03"):
            _, here = env.get(f"/v1/agents/availability/{item.item_id}", location=store)
            assert here["location"]["units"] == item.inventory.get(store, 0)
            assert here["location"]["same_day_pickup"] == (store in expected)
            checked_pickup |= here["location"]["same_day_pickup"]
    assert checked_pickup


def test_policy_constraints_and_promotions(env: Env) -> None:
    items = list(env.items.values())
    boosted, regulated, excluded = items[3], items[2], items[4]
    doc = {"name": "agents-test", "rules": [
        {"kind": "regulated", "id": "alcohol-21", "class": "alcohol", "min_age": 21},
        {"kind": "exclude", "id": "no-x", "select": {"item_ids": [excluded.item_id]}},
        {"kind": "boost", "id": "promo", "select": {"item_ids": [boosted.item_id]}, "multiply": 1.5}]}
    code, _ = env.client.put("/v1/policies", json=doc, headers={"Authorization": f"Bearer {ADMIN}"}).status_code, None
    assert code == 200
    _, reg = env.get("/v1/agents/policy", item_id=regulated.item_id, region="US-UT")
    assert not reg["eligible"] and [b["rule_id"] for b in reg["blocked_by"]] == ["alcohol-21"]
    assert reg["rules"][0]["min_age"] == 21
    _, elsewhere = env.get("/v1/agents/policy", item_id=regulated.item_id, region="US-CA")
    assert elsewhere["eligible"] and elsewhere["rules"][0]["id"] == "alcohol-21"
    _, exc = env.get("/v1/agents/policy", item_id=excluded.item_id)
    assert not exc["eligible"] and exc["blocked_by"][0]["rule_id"] == "no-x"
    _, promo = env.get("/v1/agents/policy", item_id=boosted.item_id, region="US-CA")
    assert promo["eligible"] and [p["id"] for p in promo["promotions"]] == ["promo"]
    assert promo["promotions"][0]["multiply"] == 1.5
    _, plain = env.get("/v1/agents/policy", item_id=items[7].item_id, region="US-CA")
    assert plain["promotions"] == [] and plain["rules"] == []


def test_offer_eligibility_uses_catalog_prices(env: Env) -> None:
    item = list(env.items.values())[6]
    code, doc = env.post("/v1/agents/offer-eligibility", {"user_id": "u1", "item_id": item.item_id})
    assert code == 200, doc
    assert doc["price"] == item.price.to_dict()  # type: ignore[union-attr]
    assert doc["offer"] is not None, doc  # the offer stack decided (its demo model fits on first use)
    assert doc["offer"]["decision_id"] and doc["offer"]["action"] in ACTIONS
    assert doc["eligible"] == (doc["offer"]["action"] != "no_action")
    assert doc["features_used"]["log_price"] == pytest.approx(math.log(item.price.amount / 100))  # type: ignore[union-attr]
    code, audit = env.get(f"/v1/audit/decisions/{doc['offer']['decision_id']}", key=ADMIN)
    assert code == 200 and audit["action"] == doc["offer"]["action"]
    code, err = env.post("/v1/agents/offer-eligibility", {"user_id": "u1", "item_id": "nope"})
    assert code == 404 and err["error"]["code"] == "not_found"


def test_explanation_of_a_served_slate(env: Env) -> None:
    code, slate = env.get("/v1/recommendations", anonymous_id="a-x", k="5")
    assert code == 200 and slate["items"]
    code, doc = env.get(f"/v1/agents/explanations/{slate['trace_id']}")
    assert code == 200
    assert list(doc["items"]) == [it["item_id"] for it in slate["items"]]
    assert set(doc["titles"]) == set(doc["items"])
    code, _err = env.get("/v1/agents/explanations/unknown-trace")
    assert code == 404


def test_grants_scope_the_shopper_context(env: Env) -> None:
    code, grant = env.post("/v1/agents/grants", {"user_id": "u1", "scopes": ["orders"]}, ADMIN)
    assert code == 200 and grant["token"].startswith("skt_")
    code, ctx = env.get("/v1/agents/me/context", key=grant["token"])
    assert code == 200 and ctx["user_id"] == "u1"
    bought = next(iter(env.items.values())).item_id
    assert [(o["item_id"], o["order_id"], o["quantity"]) for o in ctx["recent_orders"]] == [(bought, "o-1", 1)]
    assert [(r["item_id"], r["reason"]) for r in ctx["returns"]] == [(bought, "too_small")]
    assert "preferences" not in ctx  # not granted
    code, full = env.post("/v1/agents/grants", {"user_id": "u1", "scopes": ["orders", "preferences"]}, ADMIN)
    _, ctx = env.get("/v1/agents/me/context", key=full["token"])
    assert ctx["preferences"]["budget_max"] == {"amount": 4000, "currency": "USD"}
    assert ctx["preferences"]["avoid"] == {"ingredients": ["fragrance"]}
    assert ctx["preferences"]["preferences"] == {"skin_type": ["dry"]}
    assert "u2" not in str(ctx) and "oily" not in str(ctx)
    for bad in (None, "skt_forged", READ, ADMIN):
        code, err = env.get("/v1/agents/me/context", key=bad)
        assert code == 401 and err["error"]["code"] == "unauthorized", (bad, err)


def test_grants_refuse_wrong_callers_and_expire(env: Env) -> None:
    code, err = env.post("/v1/agents/grants", {"user_id": "u1"}, READ)  # a read key is no shopper token
    assert code == 401 and err["error"]["code"] == "unauthorized"
    code, err = env.post("/v1/agents/grants", {"user_id": "u1", "scopes": ["wallet"]}, ADMIN)
    assert code == 422 and "scopes" in err["error"]["message"]
    _, parent = env.post("/v1/agents/grants", {"user_id": "u1", "scopes": ["orders", "delegate"]}, ADMIN)
    code, child = env.post("/v1/agents/grants", {"user_id": "u1", "scopes": ["orders"], "ttl_s": 60},
                           parent["token"])
    assert code == 200 and child["scopes"] == ["orders"]
    code, err = env.post("/v1/agents/grants", {"user_id": "u2", "scopes": ["orders"]}, parent["token"])
    assert code == 403 and err["error"]["code"] == "forbidden"
    code, err = env.post("/v1/agents/grants", {"user_id": "u1", "scopes": ["preferences"]}, parent["token"])
    assert code == 403
    code, err = env.post("/v1/agents/grants", {"user_id": "u1", "scopes": ["orders"]}, child["token"])
    assert code == 403  # the child has no delegate scope
    _, short = env.post("/v1/agents/grants", {"user_id": "u2", "scopes": ["orders"], "ttl_s": 1}, ADMIN)
    code, ctx = env.get("/v1/agents/me/context", key=short["token"])
    assert code == 200 and ctx["user_id"] == "u2"
    time.sleep(1.2)
    code, err = env.get("/v1/agents/me/context", key=short["token"])
    assert code == 401 and "expired" in err["error"]["message"]

