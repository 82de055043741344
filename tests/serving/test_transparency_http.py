"""Transparency over HTTP against a real server: every recommendation, search result and offer carries
plain-language reasons; the personalization switch is stored in the profile and the engine then
serves non-personalized slates (no session signals, only non-personal sources); automation and
personalized prices are disclosed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.serving.conftest import Service, build_store, event, launch, stop

NOT_PERSONAL = "Personalization is off for you"
PERSONAL_SOURCES = {"affinity", "stated", "sequential", "covisit", "content", "lookalike", "two_tower"}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A small server (200 items) for this module."""
    folder = tmp_path_factory.mktemp("transparency")
    uri, artifacts, snapshot = build_store(folder, n_items=200, seed=13)
    service = launch(folder, uri, artifacts, snapshot)
    try:
        yield service
    finally:
        stop(service.proc)


def browse_one_category(svc: Service, anon: str) -> str:
    """Post views of three in-stock items of the largest leaf category; that category."""
    snap = svc.snapshot
    stock = snap.in_stock()
    leaves = [snap.category_paths[i][-1] for i in range(snap.n) if stock[i] and snap.category_paths[i]]
    leaf = max(set(leaves), key=leaves.count)
    ids = [snap.item_ids[i] for i in range(snap.n) if stock[i] and snap.category_paths[i][-1:] == (leaf,)][:3]
    with svc.client(svc.ingest) as client:
        r = client.post("/v1/events", json={"events": [event("view", anon, item_id=i, offset_s=n - 5)
                                                       for n, i in enumerate(ids)]})
        assert r.json()["accepted"] == 3, r.text
    return leaf


def why_slate(client: httpx.Client, user: str, anon: str) -> dict[str, Any]:
    """GET /v1/transparency/recommendations for the home page, with the raw trace."""
    r = client.get("/v1/transparency/recommendations",
                   params={"surface": "home", "user_id": user, "anonymous_id": anon, "k": 10, "explain": "true"})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_personalization_switch_and_why(svc: Service) -> None:
    user, anon = "tr-user-1", "tr-anon-1"
    leaf = browse_one_category(svc, anon)
    with svc.client(svc.read) as read, svc.client(svc.ingest) as ingest:
        assert read.get(f"/v1/transparency/settings/{user}").json()["personalization"] is True
        on = why_slate(read, user, anon)
        assert on["personalized"] is True and len(on["items"]) == 10
        assert all(it["why"] and all(isinstance(w, str) and w for w in it["why"]) for it in on["items"])
        whys = " ".join(w for it in on["items"] for w in it["why"])
        assert f"You have been looking at {leaf}" in whys, whys
        assert NOT_PERSONAL not in whys
        assert on["explain"]["affinities"], "the session's views are used while personalization is on"

        assert read.put(f"/v1/transparency/settings/{user}", json={"personalization": False}).status_code == 403
        r = ingest.put(f"/v1/transparency/settings/{user}", json={"personalization": False})
        assert r.status_code == 200 and r.json()["personalization"] is False and r.json()["updated_at"]
        assert read.get(f"/v1/transparency/settings/{user}").json()["personalization"] is False
        with svc.client(svc.admin) as admin:  # stored in the profile the engine reads
            assert admin.get(f"/v1/users/{user}").json()["profile"]["consent"]["personalization"] is False

        off = why_slate(read, user, anon)
        assert off["personalized"] is False and off["items"]
        assert off["explain"]["affinities"] == {} and off["explain"]["recent_items"] == []
        for it in off["items"]:
            assert not set(it["sources"]) & PERSONAL_SOURCES, it
            assert any(NOT_PERSONAL in w for w in it["why"]) and not any("You have been" in w for w in it["why"])
        plain = read.get("/v1/recommendations", params={"surface": "home", "user_id": user, "anonymous_id": anon,
                                                        "k": 10}).json()
        assert [it["item_id"] for it in plain["items"]] == [it["item_id"] for it in off["items"]], \
            "the plain API serves the same non-personalized slate"

        assert ingest.put(f"/v1/transparency/settings/{user}", json={"personalization": True}).status_code == 200
        again = why_slate(read, user, anon)
        assert again["personalized"] is True and again["explain"]["affinities"]
        bad = ingest.put(f"/v1/transparency/settings/{user}", json={"personalization": "maybe"})
        assert bad.status_code == 422 and "personalization" in bad.text


def test_search_results_say_why(svc: Service) -> None:
    snap = svc.snapshot
    word = snap.category_paths[0][-1].split()[0]
    with svc.client(svc.read) as read:
        # the first search builds the index (the server's default encoder): allow it time
        r = read.post("/v1/transparency/search", json={"query": word, "anonymous_id": "tr-search", "k": 5},
                      timeout=120.0)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert items and all(it["why"] for it in items)
        assert any("words you searched for" in w or "Matches your search" in w for it in items for w in it["why"])
        plain = read.post("/v1/search", json={"query": word, "anonymous_id": "tr-search", "k": 5}).json()
        assert [it["item_id"] for it in plain["items"]] == [it["item_id"] for it in items]


def test_offer_why_and_disclosures(svc: Service) -> None:
    body = {"shopper_key": "psk-tr", "item": {"item_id": "sku-1", "price": {"amount": 4000, "currency": "USD"},
                                              "cost": {"amount": 2000, "currency": "USD"}},
            "features": {"loyalty_member": 0, "deal_affinity": 4.0, "engagement": -1.5, "log_price": 3.7,
                         "offers_seen": 0}}
    with svc.client(svc.read) as read:
        decision = read.post("/v1/offers/decide", json=body, timeout=120.0).json()
        r = read.get(f"/v1/transparency/offers/{decision['decision_id']}", params={"shopper_key": "psk-tr"})
        assert r.status_code == 200, r.text
        why = r.json()
        assert why["automated"] is True and why["action"] == decision["action"] and why["why"]
        assert why["personalized_price"] == decision["personalized_price"]
        if why["personalized_price"]:
            assert why["disclosure"] == "personalized price" and any("other shoppers" in w for w in why["why"])
        other = read.get(f"/v1/transparency/offers/{decision['decision_id']}", params={"shopper_key": "psk-else"})
        assert other.status_code == 404, "another shopper's decision is not confirmed"
        text = read.get("/v1/transparency/disclosures").json()
        assert "automated assistant" in text["assistant"] and "different price" in text["personalized_prices"]
        reply = read.post("/v1/concierge/messages", json={"conversation_id": "tr-c", "message": "a gift",
                                                         "anonymous_id": "tr-c"}, timeout=120.0)
        assert reply.status_code == 200 and reply.json()["automated"] is True
