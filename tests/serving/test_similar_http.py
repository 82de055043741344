"""``POST /v1/search/similar`` over HTTP against a real server: image vectors the test builds (three
well-separated clusters in 12 dimensions) are set through ``PUT /v1/items``; the answer stays inside
the anchor's cluster, obeys the policy's exclusions and inventory, and refuses bad vectors clearly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from tests.serving.conftest import Service, build_store, launch, stop

DIM = 12
PER_CLUSTER = 8


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A small server (200 items) for this module."""
    folder = tmp_path_factory.mktemp("similar")
    uri, artifacts, snapshot = build_store(folder, n_items=200, seed=11)
    service = launch(folder, uri, artifacts, snapshot)
    try:
        yield service
    finally:
        stop(service.proc)


@pytest.fixture(scope="module")
def clusters(svc: Service) -> dict[str, int]:
    """Give 3 x 8 in-stock items image vectors near one of three orthogonal centres; item -> cluster."""
    rng = np.random.default_rng(0)
    centres = np.eye(DIM, dtype=np.float64)[:3] * 5.0
    snap = svc.snapshot
    stock = snap.in_stock() & snap.active
    ids = [snap.item_ids[i] for i in np.flatnonzero(stock)[: 3 * PER_CLUSTER].tolist()]
    out: dict[str, int] = {}
    with svc.client(svc.admin) as admin:
        for n, item_id in enumerate(ids):
            c = n % 3
            wire = admin.get(f"/v1/items/{item_id}").json()
            wire["image_vector"] = (centres[c] + rng.normal(0, 0.4, DIM)).round(5).tolist()
            r = admin.put(f"/v1/items/{item_id}", json=wire)
            assert r.status_code == 200, r.text
            out[item_id] = c
    return out


def similar(client: httpx.Client, **body: Any) -> httpx.Response:
    """POST /v1/search/similar for an anonymous shopper."""
    return client.post("/v1/search/similar", json={"anonymous_id": "sim-shopper", **body})


def test_item_query_answers_its_own_cluster_best_first(svc: Service, clusters: dict[str, int]) -> None:
    anchor = next(iter(clusters))
    with svc.client(svc.read) as client:
        r = similar(client, item_id=anchor, k=PER_CLUSTER - 1)
    assert r.status_code == 200, r.text
    body = r.json()
    got = [it["item_id"] for it in body["items"]]
    assert len(got) == PER_CLUSTER - 1
    assert anchor not in got, "the anchor itself is never answered"
    assert {clusters[i] for i in got} == {clusters[anchor]}, got
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0.8
    assert body["dim"] == DIM and body["indexed"] == len(clusters)
    assert "looks similar" in body["items"][0]["reasons"][0]


def test_vector_query_and_policy_exclusion_and_stock(svc: Service, clusters: dict[str, int]) -> None:
    query = [0.0] * DIM
    query[2] = 1.0  # cluster 2's direction
    members = [i for i, c in clusters.items() if c == 2]
    with svc.client(svc.read) as client, svc.client(svc.admin) as admin:
        first = similar(client, vector=query, k=PER_CLUSTER).json()["items"]
        assert {it["item_id"] for it in first} == set(members)
        excluded, sold_out = first[0]["item_id"], first[1]["item_id"]
        policy = admin.get("/v1/policies").json()
        rules = [*policy["rules"], {"id": "no-sim", "kind": "exclude", "select": {"item_ids": [excluded]}}]
        assert admin.put("/v1/policies", json={"name": "similar-test", "rules": rules}).status_code == 200
        wire = admin.get(f"/v1/items/{sold_out}").json()
        assert admin.put(f"/v1/items/{sold_out}", json={**wire, "inventory": {"web": 0}}).status_code == 200
        try:
            after = [it["item_id"] for it in similar(client, vector=query, k=PER_CLUSTER - 2).json()["items"]]
        finally:
            admin.put("/v1/policies", json={"name": "restored", "rules": policy["rules"]})
            admin.put(f"/v1/items/{sold_out}", json=wire)
    assert excluded not in after, "an excluded item is never answered"
    assert sold_out not in after, "an out-of-stock item is not answered (inventory rule)"
    assert set(after) <= set(members) and len(after) == PER_CLUSTER - 2


def test_bad_requests_name_the_field(svc: Service, clusters: dict[str, int]) -> None:
    anchor = next(iter(clusters))
    plain = next(i for i in svc.snapshot.item_ids if i not in clusters)
    with svc.client(svc.read) as client, svc.client(svc.admin) as admin:
        cases = [
            (similar(client, vector=[1.0] * (DIM - 1)), 422, "vector"),
            (similar(client, vector=[0.0] * DIM), 422, "vector"),
            (similar(client, item_id=plain), 422, "item_id"),
            (similar(client, item_id="no-such-item"), 404, None),
            (similar(client, item_id=anchor, vector=[1.0] * DIM), 422, "item_id"),
            (similar(client), 422, "item_id"),
            (client.post("/v1/search/similar", content=b'{"anonymous_id": "x", "vector": [1e999'
                         + b", 0" * (DIM - 1) + b"]}", headers={"Content-Type": "application/json"}), 422, "vector[0]"),
        ]
        for response, status, field in cases:
            assert response.status_code == status, response.text
            error = response.json()["error"]
            if field is not None:
                assert field in str(error["details"]) or field in error["message"], error
        # a vector of another dimension is refused on write, and the catalog keeps its vectors
        wire = admin.get(f"/v1/items/{plain}").json()
        r = admin.put(f"/v1/items/{plain}", json={**wire, "image_vector": [1.0] * (DIM + 3)})
        assert r.status_code == 422 and "image_vector" in r.text and str(DIM) in r.json()["error"]["message"]
        assert admin.get(f"/v1/items/{plain}").json().get("image_vector") is None
        r = admin.put(f"/v1/items/{plain}", json={**wire, "image_vector": [1.0, "x"] + [0.0] * (DIM - 2)})
        assert r.status_code == 422 and "image_vector[1]" in r.text
    with httpx.Client(base_url=svc.base) as anonymous:
        assert similar(anonymous, item_id=anchor).status_code == 401
