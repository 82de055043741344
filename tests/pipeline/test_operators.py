"""Operator agents on a real SQLite store: the guard refuses loosening at creation, watchers find evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shopkeep.errors import ValidationError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.pipeline.operators import OperatorDesk, OperatorSettings, Proposal, check_tightening, watch_margin
from shopkeep.policy import PolicyStore
from shopkeep.storage import open_store
from shopkeep.storage.base import LogRecord, Store

POLICY = {"name": "p", "rules": [
    {"kind": "regulated", "id": "alcohol", "class": "age_restricted_alcohol", "min_age": 21},
    {"kind": "boost", "id": "promo", "select": {"brands": ["Acme"]}, "multiply": 2.0,
     "window": {"end": "2030-01-01T00:00:00Z"}, "max_impressions_per_day": 100},
    {"kind": "exclude", "id": "bad", "select": {"item_ids": ["x-1"]}},
]}


@pytest.fixture()
def desk(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path}/ops.db")
    policies = PolicyStore(store)
    policies.save(POLICY)

    def get() -> dict[str, Any]:
        a = policies.active()
        return {**dict(a.document), "version": a.version.number}

    def put(doc: Any) -> dict[str, Any]:
        s = policies.save(doc)
        return {**dict(s.document), "version": s.version.number}

    yield OperatorDesk(store, get, put, OperatorSettings(window_days=7, cover_days=3)), store, policies
    store.close()


def _proposal(*ops: dict[str, Any]) -> Proposal:
    return Proposal("test", "t", "t", ops, {}, "none")


@pytest.mark.parametrize("ops", [
    ({"op": "end_window", "rule_id": "alcohol", "end": "2026-01-01T00:00:00Z"},),  # touches a guardrail
    ({"op": "end_window", "rule_id": "promo", "end": "2031-01-01T00:00:00Z"},),  # extends a boost
    ({"op": "add_rule", "rule": {"kind": "consent"}},),  # not an allowed operation
])
def test_a_loosening_proposal_is_refused_at_creation_and_never_stored(desk: Any, ops: Any) -> None:
    d, _, policies = desk
    with pytest.raises(ValidationError):
        d.file(_proposal(*ops))
    assert d.list() == [] and d.audit() == []
    assert policies.active().version.number == 1


def test_check_tightening_cases() -> None:
    wider = json.loads(json.dumps(POLICY))
    wider["rules"][2]["select"]["item_ids"].append("x-2")
    check_tightening(POLICY, wider)  # an exclusion may grow
    with pytest.raises(ValidationError, match="only grow"):
        check_tightening(wider, POLICY)
    without = {"rules": POLICY["rules"][1:]}
    with pytest.raises(ValidationError, match="guardrail"):
        check_tightening(POLICY, without)
    added = {"rules": [*POLICY["rules"], {"kind": "map", "mode": "hide", "id": "m"}]}
    with pytest.raises(ValidationError, match="only add exclusions"):
        check_tightening(POLICY, added)
    with pytest.raises(ValidationError, match="re-enable"):
        check_tightening(POLICY, POLICY, {"campaigns": {"c": {"disabled_actions": ["a"]}}}, {"campaigns": {}})


def _purchase(store: Store, n: int, item: str, ts_ms: int) -> None:
    recs = [LogRecord(f"e-{item}-{k}", ts_ms, json.dumps({"type": "purchase", "item_id": item, "quantity": 1}))
            for k in range(n)]
    store.append(EVENTS_LOG, recs)


def test_stockout_watcher_proposes_an_exclusion_and_approval_applies_it_with_audit(desk: Any) -> None:
    d, store, policies = desk
    now = 1_900_000_000_000
    _purchase(store, 7, "fast", now - 86_400_000)  # 1 unit/day, 2 in stock: 2 days of cover
    _purchase(store, 7, "slow", now - 86_400_000)  # 1 unit/day, 50 in stock
    _purchase(store, 7, "old", now - 30 * 86_400_000)  # outside the window
    filed = d.run(items={"fast": {"warehouse": 2}, "slow": {"warehouse": 50}, "old": {"warehouse": 1}},
                  online=None, now_ms=now)
    assert [p.agent for p in filed] == ["stockout"]
    assert [r["item_id"] for r in filed[0].evidence["items"]] == ["fast"]
    assert filed[0].evidence["items"][0]["days_of_cover"] == 2.0
    assert policies.active().version.number == 1  # proposed, not applied
    assert d.run(items={"fast": {"warehouse": 2}}, online=None, now_ms=now) == []  # one pending per target
    done = d.approve(filed[0].proposal_id, by="alice", note="ok")
    assert done.status == "approved" and done.decided_by == "alice"
    active = policies.active()
    assert active.version.number == 2 and done.applied["policy_version_after"] == 2
    assert any(r.kind == "exclude" and r.select.item_ids == ("fast",) for r in active.rules)
    trail = d.audit(filed[0].proposal_id)
    assert [e["action"] for e in trail] == ["proposed", "approved"] and trail[1]["by"] == "alice"
    with pytest.raises(ValidationError):
        d.approve(filed[0].proposal_id, by="")


def test_margin_watcher_sees_erosion_and_approval_disables_the_action(desk: Any) -> None:
    d, _, _ = desk

    def doc(cost: int) -> dict[str, Any]:
        return {"action": "pct_10", "offer_price": {"amount": 1000, "currency": "USD"},
                "inputs": {"campaign": "spring", "item": {"cost": {"amount": cost, "currency": "USD"}}}}

    steady = [doc(500)] * 20
    assert watch_margin(steady, {}, OperatorSettings()) == []
    eroding = [doc(500)] * 10 + [doc(700)] * 10
    props = watch_margin(eroding, {}, OperatorSettings())
    assert len(props) == 1 and props[0].evidence["drop_bps"] == 2000.0
    filed = d.file(props[0])
    done = d.approve(filed.proposal_id, by="bob")
    assert d.strategies()["campaigns"]["spring"]["disabled_actions"] == ["pct_10"]
    assert done.applied["offer_strategy_version_after"] == 1 and "policy_version_after" not in done.applied
    assert watch_margin(eroding, d.strategies(), OperatorSettings()) == []  # already disabled
