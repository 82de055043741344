"""The offer routes in process (FastAPI TestClient) over a real SQLite store."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from shopkeep.config import load_config
from shopkeep.serving.app import create_app


def test_decide_then_audit_and_replay(tmp_path: Path) -> None:
    config = load_config(None, env={"SHOPKEEP_STORAGE__URI": f"sqlite:///{tmp_path}/s.db"})
    with TestClient(create_app(config, auth=False)) as client:
        body = {"shopper_key": "psk-abc", "loyalty_member": True, "segment": "member",
                "item": {"item_id": "sku-1", "price": {"amount": 4000, "currency": "USD"},
                         "cost": {"amount": 2000, "currency": "USD"}},
                "features": {"loyalty_member": 1, "deal_affinity": 4.0, "engagement": -1.5, "log_price": 3.7,
                             "offers_seen": 0},
                "ship_cost": {"amount": 599, "currency": "USD"}}
        r = client.post("/v1/offers/decide", json=body)
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["decision_id"].startswith("dec-") and d["runner_ups"]
        assert d["personalized_price"] == (d["offer_price"]["amount"] < 4000)
        got = client.get(f"/v1/audit/decisions/{d['decision_id']}", params={"replay": "true"}).json()
        assert got["action"] == d["action"] and got["replay"]["same"] is True
        listed = client.get("/v1/audit/decisions", params={"shopper_key": "psk-abc"}).json()
        assert listed["count"] == 1
        bad = client.post("/v1/offers/decide", json={**body, "features": {**body["features"], "gender": 1.0}})
        assert bad.status_code == 200 and bad.json()["action"] == "no_action"  # unlisted/protected input: refused
        r = client.post("/v1/offers/decide", json={**body, "item": {"item_id": "x", "price": 12.5}})
        assert r.status_code in (400, 422) and r.json()["error"]["code"] == "invalid_input"
        assert client.get("/v1/audit/decisions/dec-missing").status_code == 404
