"""Exploration over HTTP against a real ``shopkeep serve`` process (the default config: epsilon 0.05 on
home): propensities in (0, 1) in the response and the slate log, a replayed request reproduces its
slate (explored or not), a new item gets its exposure floor, and the learned ranker serves."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving.conftest import Service, event, launch, stop

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.config import ExploreConfig
from shopkeep.events.log import read_slates
from shopkeep.pipeline.artifacts import read_manifest, train_artifacts
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.simulate import StoreConfig, event_to_wire, generate_store
from shopkeep.storage import open_store


def _build(folder: Path) -> tuple[str, Path, CatalogSnapshot]:
    """A 14-day synthetic store (enough next-item requests for the re-ranker) with trained artifacts."""
    synthetic = generate_store(StoreConfig(n_items=300, n_shoppers=300, n_days=14, seed=11))
    uri = f"sqlite:///{folder}/store.db"
    store = open_store(uri)
    try:
        CatalogRepository(store).upsert_many(synthetic.items)
        Ingestor(store).ingest_batch([event_to_wire(e) for e in synthetic.events])
        manifest = train_artifacts(store, folder / "artifacts", ["itemknn"])
    finally:
        store.close()
    assert manifest.ranker is not None and manifest.ranker["mode"] == "next_item", manifest.ranker
    assert read_manifest(folder / "artifacts" / manifest.version).ranker == manifest.ranker
    return uri, folder / "artifacts", CatalogSnapshot.from_items(synthetic.items)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("explore")
    uri, artifacts, snapshot = _build(folder)
    svc = launch(folder, uri, artifacts, snapshot)
    try:
        yield svc
    finally:
        stop(svc.proc)


def _home(c: httpx.Client, anon: str) -> dict[str, Any]:
    r = c.get("/v1/recommendations", params={"anonymous_id": anon, "k": 10, "explain": "true"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_propensities_lie_strictly_between_0_and_1_and_are_logged(service: Service) -> None:
    explored = 0
    traces = {}
    with service.client(service.read) as c:
        for n in range(40):
            body = _home(c, f"p-{n}-{secrets.token_hex(3)}")
            items = body["items"]
            assert isinstance(items, list) and len(items) == 10
            props = [it["propensity"] for it in items]
            assert all(0.0 < p < 1.0 for p in props), props
            info = body["explain"]["exploration"]
            explored += bool(info["explored"])
            if not info["explored"]:  # exploit branch: P(ranked item at its own position) = 1 - eps + eps/|pool|
                assert props[0] == pytest.approx(1 - info["epsilon"] + info["epsilon"] / info["pool"], abs=1e-6)
            traces[body["trace_id"]] = (tuple(it["item_id"] for it in items), tuple(props))
        pdp = c.get("/v1/recommendations", params={"anonymous_id": "p-pdp", "surface": "pdp", "k": 5,
                                                   "item_id": service.snapshot.item_ids[3]}).json()
        assert [it["propensity"] for it in pdp["items"]] == [1.0] * len(pdp["items"])  # no exploration on pdp
        assert c.get("/healthz").json()["ranker"] == "learned"
    assert explored < 20  # epsilon 0.05: nearly all slates are the ranked ones
    time.sleep(0.5)  # the slate log is written every 50 ms off the request path
    store = open_store(service.store_uri)
    try:
        logged = read_slates(store, traces)
    finally:
        store.close()
    assert set(logged) == set(traces)
    for trace_id, (served, probs) in traces.items():
        assert logged[trace_id].items == served and logged[trace_id].propensities == probs
        assert len(logged[trace_id].features["candidates"]) == len(served)
        assert logged[trace_id].features["ranker"] == "learned"


def test_a_replayed_request_reproduces_its_slate_explored_or_not(service: Service) -> None:
    seen_explored = 0
    with service.client(service.read) as c:
        for n in range(60):
            anon = f"r-{n}"
            a, b = _home(c, anon), _home(c, anon)
            assert [(i["item_id"], i["propensity"]) for i in a["items"]] == \
                [(i["item_id"], i["propensity"]) for i in b["items"]]
            assert a["trace_id"] != b["trace_id"]
            seen_explored += bool(a["explain"]["exploration"]["explored"])
            if seen_explored >= 1 and n >= 20:
                break
    assert seen_explored >= 1, "no explored slate in 60 requests at epsilon 0.05 (p ~ 0.05)"


def test_an_event_redraws_the_seed(service: Service) -> None:
    anon = f"ev-{secrets.token_hex(3)}"
    with service.client(service.admin) as c:
        before = _home(c, anon)["explain"]["exploration"]["seed_key"]
        item = service.snapshot.item_ids[5]
        assert c.post("/v1/events", json={"events": [event("view", anon, item_id=item)]}).json()["accepted"] == 1
        after = _home(c, anon)["explain"]["exploration"]["seed_key"]
    assert before != after


def test_a_new_item_gets_its_exposure_floor(service: Service) -> None:
    token = secrets.token_hex(3)
    new_id = f"fresh-{token}"
    item = {"item_id": new_id, "title": f"Fresh arrival {token}", "category": ["Novelties"],
            "price": {"amount": 2599, "currency": "USD"}, "inventory": {"warehouse": 50},
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    floor = ExploreConfig().new_item_share
    n, k = 120, 10
    shown = 0
    with service.client(service.admin) as c:
        assert c.put(f"/v1/items/{new_id}", json=item).status_code == 200
        for i in range(n):
            body = _home(c, f"nf-{token}-{i}")
            ids = [it["item_id"] for it in body["items"]]
            assert new_id in body["explain"]["exploration"]["new_items"]
            if new_id in ids:
                shown += 1
                prop = body["items"][ids.index(new_id)]["propensity"]
                info = body["explain"]["exploration"]
                assert prop == pytest.approx(info["epsilon"] / info["pool"], abs=1e-6)
                assert info["epsilon"] * 1 >= floor * info["pool"] - 1e-9  # eps raised to buy the floor
    share = shown / (n * k)
    # expected share = floor (0.02: ~24 of 120 slates); binomial sd ~ 4 slates
    assert share >= 0.5 * floor, (shown, share)
    assert shown < n  # still exploration, not a pin
