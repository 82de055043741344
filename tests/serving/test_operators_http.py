"""Operator agents over HTTP against a real ``shopkeep serve`` process and its SQLite store.

Watchers only propose; a person approves through the API, the change lands as a new policy version,
and the audit says who approved what. A proposal that would loosen a guardrail is refused at approval.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.serving.conftest import Service, event

_BOOST = {"kind": "boost", "multiply": 3.0, "window": {"end": "2099-01-01T00:00:00Z"},
          "max_impressions_per_day": 200}


def _proposals(svc: Service, **params: str) -> list[dict[str, Any]]:
    with svc.client(svc.admin) as c:
        r = c.get("/v1/operators/proposals", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["proposals"])


def test_scopes_are_enforced(service: Service) -> None:
    with service.client(service.read) as c:
        assert c.get("/v1/operators/proposals").status_code == 403
        assert c.post("/v1/operators/run").status_code == 403
    with service.client() as c:
        assert c.get("/v1/operators/proposals").status_code == 401


def test_stockout_proposal_waits_then_applies_as_a_policy_version(service: Service) -> None:
    admin = service.client(service.admin)
    item_id = service.snapshot.item_ids[5]
    item = admin.get(f"/v1/items/{item_id}").json()
    item["inventory"] = {"warehouse": 2}
    assert admin.put(f"/v1/items/{item_id}", json=item).status_code == 200, item
    buys = [event("purchase", f"a-op-{k}", item_id=item_id, order_id=f"o-op-{k}", quantity=1, offset_s=-60)
            for k in range(8)]
    with service.client(service.ingest) as c:
        assert c.post("/v1/events", json={"events": buys}).json()["accepted"] == 8
    before = admin.get("/v1/policies").json()["version"]
    filed = admin.post("/v1/operators/run").json()["filed"]
    mine = [p for p in filed if p["agent"] == "stockout"]
    assert mine, filed
    prop = mine[0]
    row = next(r for r in prop["evidence"]["items"] if r["item_id"] == item_id)
    assert row["stock"] == 2 and row["units_sold"] == 8
    assert row["days_of_cover"] < 3 and prop["expected_effect"] and prop["status"] == "pending"
    assert admin.get("/v1/policies").json()["version"] == before  # nothing applied yet
    assert any(p["proposal_id"] == prop["proposal_id"] for p in _proposals(service, status="pending"))
    r = admin.post(f"/v1/operators/proposals/{prop['proposal_id']}/approve", json={"by": "alice", "note": "yes"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["applied"]["policy_version_after"] == before + 1
    policy = admin.get("/v1/policies").json()
    assert policy["version"] == before + 1
    assert any(rule["kind"] == "exclude" and item_id in rule["select"]["item_ids"] for rule in policy["rules"])
    with service.client(service.read) as c:
        recs = c.get("/v1/recommendations", params={"anonymous_id": "a-op-0", "k": 20}).json()["items"]
    assert item_id not in [it["item_id"] for it in recs]
    detail = admin.get(f"/v1/operators/proposals/{prop['proposal_id']}").json()
    assert [(e["action"], e["by"]) for e in detail["audit"]] == [("proposed", "agent"), ("approved", "alice")]
    assert detail["audit"][1]["policy_version_after"] == before + 1
    again = admin.post(f"/v1/operators/proposals/{prop['proposal_id']}/approve", json={"by": "alice"})
    assert again.status_code == 409
    admin.close()


def test_pacing_proposal_approved_and_a_loosening_one_refused(service: Service) -> None:
    admin = service.client(service.admin)
    category = service.snapshot.items[0].category[0]
    policy = admin.get("/v1/policies").json()
    rules = [*policy["rules"], {**_BOOST, "id": "op-a", "select": {"categories": [category]}},
             {**_BOOST, "id": "op-b", "select": {"categories": [category]}}]
    assert admin.put("/v1/policies", json={"name": "ops", "rules": rules}).status_code == 200
    with service.client(service.read) as c:
        for k in range(6):
            assert c.get("/v1/recommendations", params={"anonymous_id": f"a-pace-{k}", "k": 20}).status_code == 200
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    filed = admin.post("/v1/operators/run", json={"now": f"{day}T00:30:00Z"}).json()["filed"]
    pacing = {p["target"]: p for p in filed if p["agent"] == "pacing"}
    assert set(pacing) == {"pacing:op-a", "pacing:op-b"}, filed
    assert pacing["pacing:op-a"]["evidence"]["boosted_impressions_today"] > 0
    version = admin.get("/v1/policies").json()["version"]
    ok = admin.post(f"/v1/operators/proposals/{pacing['pacing:op-a']['proposal_id']}/approve", json={"by": "carol"})
    assert ok.status_code == 200, ok.text
    now_policy = admin.get("/v1/policies").json()
    assert now_policy["version"] == version + 1
    assert next(r for r in now_policy["rules"] if r.get("id") == "op-a")["window"]["end"] == f"{day}T00:30:00Z"
    # a person ends op-b earlier than the agent proposed: applying the proposal now would EXTEND it
    for r in now_policy["rules"]:
        if r.get("id") == "op-b":
            r["window"]["end"] = f"{day}T00:00:00Z"
    body = {k: v for k, v in now_policy.items() if k not in ("version", "hash")}
    assert admin.put("/v1/policies", json=body).status_code == 200
    version = admin.get("/v1/policies").json()["version"]
    pid = pacing["pacing:op-b"]["proposal_id"]
    refused = admin.post(f"/v1/operators/proposals/{pid}/approve", json={"by": "carol"})
    assert refused.status_code == 422 and "earlier" in refused.json()["error"]["message"], refused.text
    assert admin.get("/v1/policies").json()["version"] == version
    detail = admin.get(f"/v1/operators/proposals/{pid}").json()
    assert detail["status"] == "refused" and detail["audit"][-1]["action"] == "refused"
    assert admin.post(f"/v1/operators/proposals/{pid}/reject", json={"by": "carol"}).status_code == 409
    admin.close()


def test_reject_changes_nothing_and_needs_a_person(service: Service) -> None:
    admin = service.client(service.admin)
    item_id = service.snapshot.item_ids[7]
    item = admin.get(f"/v1/items/{item_id}").json()
    item["inventory"] = {"warehouse": 1}
    admin.put(f"/v1/items/{item_id}", json=item)
    with service.client(service.ingest) as c:
        c.post("/v1/events", json={"events": [event("purchase", "a-rj", item_id=item_id, order_id="o-rj",
                                                    quantity=3, offset_s=-30)]})
    filed = [p for p in admin.post("/v1/operators/run").json()["filed"] if p["agent"] == "stockout"]
    assert filed, "expected a stock-out proposal"
    pid, version = filed[0]["proposal_id"], admin.get("/v1/policies").json()["version"]
    assert admin.post(f"/v1/operators/proposals/{pid}/reject", json={}).status_code == 422  # who?
    r = admin.post(f"/v1/operators/proposals/{pid}/reject", json={"by": "dave", "note": "seasonal"})
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["decided_by"] == "dave"
    assert admin.get("/v1/policies").json()["version"] == version
    assert admin.get("/v1/operators/proposals/nope").status_code == 404
    admin.close()
