"""POST /v1/concierge/messages over a real engine (memory store) through the FastAPI app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shopkeep.config import Config
from shopkeep.pipeline.engine import Engine
from shopkeep.profiles.model import Profile
from shopkeep.serving.app import create_app
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import open_online_state, open_store


@pytest.fixture(scope="module")
def client() -> Iterator[tuple[TestClient, Engine]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SHOPKEEP_SEARCH_ENCODER", "hashing")
    engine = Engine(open_store("memory://"), open_online_state("memory://"), Config())
    engine.upsert_items(generate_store(StoreConfig(n_items=800, n_shoppers=5, n_days=1, seed=5)).items)
    engine.profiles.upsert(Profile("u1"))
    with TestClient(create_app(Config(), engine, auth=False)) as c:
        yield c, engine
    mp.undo()


def test_concierge_turns_over_http(client: tuple[TestClient, Engine]) -> None:
    c, engine = client
    body = {"conversation_id": "h1", "user_id": "u1",
            "message": "fragrance-free moisturizer for sensitive skin under $60"}
    first = c.post("/v1/concierge/messages", json=body)
    assert first.status_code == 200, first.text
    out = first.json()
    assert out["automated"] is True and "automated" in out["reply"] and out["turn"] == 1
    labels = {s["label"] for s in out["slots"]}
    assert {"fragrance_free=true", "skin_type=sensitive", "price<=6000", "category=moisturizer"} <= labels
    assert out["saved_preferences"]["avoid"] == {"fragrance_free": ["false"]}
    while out["question"] is not None:
        out = c.post("/v1/concierge/messages", json={**body, "message": "no preference"}).json()
    assert out["products"] and out["turn"] <= 4
    snap, _ = engine.read_view()
    for p in out["products"]:
        it = snap.items[snap.index[p["item_id"]]]
        assert it.attributes["fragrance_free"] is True and "sensitive" in it.attributes["skin_type"]
        assert it.price is not None and p["price"]["amount"] <= 6000 and p["reasons"]
    # the saved exclusion now shapes recommendations (the avoid rule is hard)
    slate = c.get("/v1/recommendations", params={"user_id": "u1", "k": 20}).json()
    assert slate["items"]
    assert all(snap.items[snap.index[i["item_id"]]].attributes.get("fragrance_free") is not False
               for i in slate["items"])


def test_concierge_bad_body(client: tuple[TestClient, Engine]) -> None:
    c, _ = client
    r = c.post("/v1/concierge/messages", json={"conversation_id": "x", "message": "hi"})
    assert r.status_code == 422 and "anonymous_id" in r.text
