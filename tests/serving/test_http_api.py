"""The HTTP API against a real server process: idempotent events, the error envelope, size limits,
API key scopes, items, policies, metrics and OpenAPI."""

from __future__ import annotations

import secrets

import numpy as np
from tests.serving.conftest import Service, event


def _envelope(body: dict[str, object], code: str) -> None:
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict) and set(err) == {"code", "message", "details"}, err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]


def test_events_are_idempotent_over_http(service: Service) -> None:
    anon = f"idem-{secrets.token_hex(4)}"
    item = service.snapshot.item_ids[5]
    batch = [event("view", anon, item_id=item), event("click", anon, item_id=item)]
    bad = {"event_id": "x1", "type": "view", "anonymous_id": anon, "timestamp": "yesterday", "item_id": item}
    with service.client(service.ingest) as c:
        first = c.post("/v1/events", json={"events": [*batch, bad]}).json()
        assert (first["accepted"], first["duplicates"], first["rejected"]) == (2, 0, 1)
        assert first["errors"][0]["index"] == 2 and first["errors"][0]["field"] == "timestamp"
        again = c.post("/v1/events", json={"events": batch}).json()
        assert (again["accepted"], again["duplicates"], again["conflicts"]) == (0, 2, 0)
        changed = dict(batch[0], item_id=service.snapshot.item_ids[6])
        conflict = c.post("/v1/events", json={"events": [changed]}).json()
        assert conflict["conflicts"] == 1 and conflict["accepted"] == 0
        assert conflict["errors"][0]["code"] == "conflict"


def test_error_envelope_for_bad_requests(service: Service) -> None:
    with service.client(service.admin) as c:
        r = c.post("/v1/events", content=b'{"events": [', headers={"content-type": "application/json"})
        assert r.status_code == 400
        _envelope(r.json(), "bad_request")
        r = c.post("/v1/events", json={"events": [], "surprise": 1})
        assert r.status_code == 422
        _envelope(r.json(), "invalid_input")
        assert r.json()["error"]["details"]["errors"][0]["field"] == "surprise"
        r = c.post("/v1/events", json={"events": "not a list"})
        assert r.status_code == 422
        _envelope(r.json(), "invalid_input")
        r = c.get("/v1/recommendations", params={"anonymous_id": "a", "k": "ten"})
        assert r.status_code == 422
        _envelope(r.json(), "invalid_input")
        r = c.get("/v1/recommendations", params={"anonymous_id": "a", "surface": "checkout"})
        assert r.status_code == 422
        r = c.get("/v1/recommendations", params={"surface": "home"})
        assert r.status_code == 422 and "anonymous_id" in r.json()["error"]["message"]
        r = c.post("/v1/events", content=b" " * 1_100_000, headers={"content-type": "application/json"})
        assert r.status_code == 413
        _envelope(r.json(), "payload_too_large")
        r = c.get("/v1/items/no-such-item")
        assert r.status_code == 404
        _envelope(r.json(), "not_found")
        r = c.get("/v1/nowhere")
        assert r.status_code == 404
        _envelope(r.json(), "not_found")
        r = c.put("/v1/items/abc", json={"item_id": "other", "title": "x"})
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "item_id"


def test_api_key_scopes(service: Service) -> None:
    params = {"anonymous_id": "scoped"}
    with service.client() as anon_client:
        r = anon_client.get("/v1/recommendations", params=params)
        assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
        _envelope(r.json(), "unauthorized")
        assert anon_client.get("/healthz").status_code == 200
        assert anon_client.get("/openapi.json").status_code == 200
    with service.client("wrong-key") as c:
        assert c.get("/v1/recommendations", params=params).status_code == 401
    with service.client(service.read) as c:
        assert c.get("/v1/recommendations", params=params).status_code == 200
        r = c.post("/v1/events", json={"events": []})
        assert r.status_code == 403
        _envelope(r.json(), "forbidden")
        assert c.put("/v1/policies", json={"rules": []}).status_code == 403
    with service.client(service.ingest) as c:
        assert c.post("/v1/events", json={"events": []}).status_code == 200
        assert c.get("/v1/recommendations", params=params).status_code == 403
    with httpx_headers(service, {"X-API-Key": service.admin}) as c:  # admin implies every scope
        assert c.get("/v1/recommendations", params=params).status_code == 200
        assert c.post("/v1/events", json={"events": []}).status_code == 200


def httpx_headers(service: Service, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.Client(base_url=service.base, headers=headers, timeout=30.0)


def test_put_item_is_recommendable_at_once(service: Service) -> None:
    token = secrets.token_hex(3)
    new_id = f"new-{token}"
    item = {"item_id": new_id, "title": f"Brand new thing {token}", "category": ["Novelties"],
            "attributes": {"edition": f"e{token}"}, "price": {"amount": 1999, "currency": "USD"},
            "inventory": {"warehouse": 10}}
    anon = f"newbie-{token}"
    with service.client(service.admin) as c:
        r = c.put(f"/v1/items/{new_id}", json=item)
        assert r.status_code == 200 and r.json()["item_id"] == new_id
        assert c.get(f"/v1/items/{new_id}").json()["title"] == item["title"]
        events = [event("filter", anon, attribute="edition", value=f"e{token}", offset_s=-i) for i in range(3)]
        assert c.post("/v1/events", json={"events": events}).json()["accepted"] == 3
        slate = c.get("/v1/recommendations", params={"anonymous_id": anon, "k": 10}).json()
        assert new_id in [it["item_id"] for it in slate["items"]]
        r = c.put(f"/v1/items/{new_id}", json={**item, "price": {"amount": 2.5, "currency": "USD"}})
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "price.amount"


def test_policies_validation_and_exclusion(service: Service) -> None:
    brand = service.snapshot.brands[int(np.bincount(service.snapshot.brand[service.snapshot.brand >= 0]).argmax())]
    with service.client(service.admin) as c:
        before = c.get("/v1/policies").json()
        r = c.put("/v1/policies", json={"rules": [{"kind": "exclude", "select": {"colour": ["x"]}}]})
        assert r.status_code == 422
        _envelope(r.json(), "invalid_input")
        assert "rules[0]" in r.json()["error"]["details"]["field"]
        assert c.get("/v1/policies").json() == before  # a refused policy changes nothing
        r = c.put("/v1/policies", json={"name": "no-top-brand", "rules": [
            {"kind": "inventory"}, {"kind": "exclude", "select": {"brands": [brand]}}]})
        assert r.status_code == 200, r.text
        assert r.json()["version"] > 0 and c.get("/v1/policies").json()["name"] == "no-top-brand"
        for n in range(8):
            slate = c.get("/v1/recommendations", params={"anonymous_id": f"p{n}", "k": 20}).json()
            for it in slate["items"]:
                assert service.snapshot.items[service.snapshot.index[it["item_id"]]].brand != brand
        c.put("/v1/policies", json={"name": "inventory-only", "rules": [{"kind": "inventory"}]})


def test_metrics_and_openapi(service: Service) -> None:
    with service.client(service.read) as c:
        c.get("/v1/recommendations", params={"anonymous_id": "m"})
        text = c.get("/metrics").text
        assert 'shopkeep_http_requests_total{method="GET",route="/v1/recommendations",status="200"}' in text
        assert "shopkeep_http_request_seconds_bucket" in text
        spec = c.get("/openapi.json").json()
        for path in ("/v1/events", "/v1/recommendations", "/v1/items/{item_id}", "/v1/policies", "/healthz",
                     "/metrics"):
            assert path in spec["paths"]
