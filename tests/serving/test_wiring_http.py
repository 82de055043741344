"""Features wired into the serving path, over HTTP against one real ``shopkeep serve`` process on the
synthetic store: returns-aware fit (recommendations and concierge), visit-context priors for shoppers
with no history, onboarding (preference elicitation), and offer strategies approved by an operator."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serving.conftest import Service, build_store, launch, stop

from shopkeep.features.fit import size_position
from shopkeep.pipeline.operators import OperatorDesk, Proposal
from shopkeep.storage import open_store


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("wiring")
    uri, artifacts, snapshot = build_store(folder, n_items=300, seed=3)
    service = launch(folder, uri, artifacts, snapshot)
    try:
        yield service
    finally:
        stop(service.proc)


def _ts(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


def _post_events(svc: Service, events: list[dict[str, Any]]) -> None:
    with svc.client(svc.admin) as c:
        r = c.post("/v1/events", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text


def _recs(svc: Service, **params: Any) -> dict[str, Any]:
    with svc.client(svc.admin) as c:
        r = c.get("/v1/recommendations", params={"k": 10, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _in_stock(svc: Service, item_id: str) -> bool:
    it = svc.snapshot.items[svc.snapshot.index[item_id]]
    return it.active and sum(it.inventory.values()) > 0


def _fit_case(svc: Service) -> tuple[str, list[str], str]:
    """(an item of size u in product G, G's larger sizes, an item of size u of another product of the
    same brand): every one in stock."""
    groups: dict[tuple[str, str, str], list[tuple[float, str]]] = defaultdict(list)
    for it in svc.snapshot.items:
        pos = size_position(it.attributes.get("size"))
        if pos is not None and it.group_id and it.brand and _in_stock(svc, it.item_id):
            groups[(it.brand, pos[0], it.group_id)].append((pos[1], it.item_id))
    for (brand, ladder, group), rows in sorted(groups.items()):
        rows.sort()
        for size, item in rows[:-1]:
            bigger = [i for s, i in rows if s > size]
            for (b2, l2, g2), other in sorted(groups.items()):
                same = [i for s, i in other if s == size]
                if (b2, l2) == (brand, ladder) and g2 != group and same:
                    return item, bigger, same[0]
    raise AssertionError("the synthetic store has no brand with two sized products sharing a size")


def test_fit_shows_the_suggested_size_with_its_note_and_the_concierge_quotes_it(svc: Service) -> None:
    pinned, bigger, kept = _fit_case(svc)
    events: list[dict[str, Any]] = []
    for j in range(12):  # the brand runs small: twelve shoppers returned the product as too small
        events += [{"event_id": f"fit-p{j}", "type": "purchase", "timestamp": _ts(60 - j), "user_id": f"fit-u{j}",
                    "item_id": pinned, "order_id": f"fit-o{j}", "quantity": 1},
                   {"event_id": f"fit-r{j}", "type": "return", "timestamp": _ts(30 - j), "user_id": f"fit-u{j}",
                    "item_id": pinned, "order_id": f"fit-o{j}", "reason": "too_small"}]
    events.append({"event_id": "fit-mine", "type": "purchase", "timestamp": _ts(90), "user_id": "fit-shopper",
                   "item_id": kept, "order_id": "fit-o-mine", "quantity": 1})  # kept: the usual size
    _post_events(svc, events)
    with svc.client(svc.admin) as c:
        before = c.get("/v1/policies").json()
        doc = {k: v for k, v in before.items() if k != "version"}
        doc["rules"] = [*doc.get("rules", []), {"kind": "pin", "id": "pin-fit", "item_id": pinned, "position": 0}]
        assert c.put("/v1/policies", json=doc).status_code == 200
    try:
        time.sleep(0.1)
        stranger = _recs(svc, anonymous_id="fit-stranger")["items"][0]
        assert stranger["item_id"] == pinned and "fit" not in stranger  # no usual size known: unchanged
        got = _recs(svc, user_id="fit-shopper", explain="true")
        first = got["items"][0]
        assert first["item_id"] in bigger, (first, bigger)  # the variant in the suggested, larger size
        assert first["fit"]["variant_of"] == pinned and first["fit"]["suggested_item_id"] == first["item_id"]
        assert first["fit"]["steps"] > 0 and first["fit"]["evidence"]["brand_too_small"] >= 12
        note = next(r for r in first["reasons"] if r.startswith("fit: "))
        assert "runs small" in note and f"→ {first['fit']['suggested_size']}" in note
        assert got["explain"]["items"][0]["fit"]["variant_of"] == pinned
    finally:
        with svc.client(svc.admin) as c:
            restored = {k: v for k, v in before.items() if k != "version"}
            assert c.put("/v1/policies", json=restored).status_code == 200
    with svc.client(svc.admin) as c:
        # the first concierge message of this server loads the query encoder (sentence-transformers, torch,
        # MiniLM) lazily: on a loaded 2-core CI box (load ~5) this call once took over the client's 30 s
        r = c.post("/v1/concierge/messages", json={"conversation_id": "c-fit", "message": pinned,
                                                    "user_id": "fit-shopper"}, timeout=180)
        assert r.status_code == 200, r.text
        products = r.json()["products"]
        assert products and products[0]["item_id"] == pinned, r.json()
        assert any(x.startswith("fit: ") and "runs small" in x for x in products[0]["reasons"]), products[0]
        r = c.post("/v1/concierge/messages", json={"conversation_id": "c-fit-2", "message": pinned,
                                                    "anonymous_id": "fit-nobody"})
        assert not any(x.startswith("fit: ") for x in r.json()["products"][0]["reasons"])


def _pick(svc: Service, department: str, n: int, rng: np.random.Generator) -> list[str]:
    mask = svc.snapshot.category_mask(department)
    ids = [svc.snapshot.item_ids[i] for i in np.flatnonzero(mask) if _in_stock(svc, svc.snapshot.item_ids[i])]
    return [str(x) for x in rng.choice(ids, size=n, replace=False)]


def _share(items: list[dict[str, Any]], wanted: set[str]) -> float:
    return sum(it["item_id"] in wanted for it in items) / max(len(items), 1)


def test_visit_context_steers_the_cold_start(svc: Service) -> None:
    rng = np.random.default_rng(7)
    departments = sorted({p[0] for p in svc.snapshot.category_paths if p})
    spring, winter = _pick(svc, departments[0], 8, rng), _pick(svc, departments[-1], 8, rng)
    events = []
    for campaign, items in (("spring-sale", spring), ("winter-sale", winter)):
        for j in range(30):  # equal volumes: plain popularity cannot tell the two sets apart
            events += [{"event_id": f"ctx-{campaign}-{j}-{n}", "type": "view", "timestamp": _ts(20),
                        "anonymous_id": f"ctx-{campaign}-{j}", "item_id": items[(j + n) % len(items)],
                        "context": {"campaign": campaign, "device": "mobile"}} for n in range(3)]
    _post_events(svc, events)
    for mine, other, campaign in ((spring, winter, "spring-sale"), (winter, spring, "winter-sale")):
        got = _recs(svc, anonymous_id=f"new-{campaign}", campaign=campaign.upper(), device="mobile", explain="true")
        assert _share(got["items"], set(mine)) >= 0.5, (campaign, got["items"])
        assert _share(got["items"], set(other)) <= 0.2
        assert any("context" in it["sources"] for it in got["items"])
    mobile = _recs(svc, anonymous_id="new-mobile", device="mobile")["items"]  # both sets came from mobile
    assert abs(_share(mobile, set(spring)) - _share(mobile, set(winter))) <= 0.3  # no campaign: no side taken
    plain = _recs(svc, anonymous_id="new-plain")["items"]
    assert not any("context" in it["sources"] for it in plain)  # no visit context: the source is silent
    with svc.client(svc.admin) as c:  # validated, and the error names the parameter
        r = c.get("/v1/recommendations", params={"anonymous_id": "x", "device": "phone; drop"})
        assert r.status_code == 422 and "device" in r.json()["error"]["message"]
        r = c.get("/v1/recommendations", params={"anonymous_id": "x", "campaign": "c" * 65})
        assert r.status_code == 422 and "campaign" in r.json()["error"]["message"]


def test_onboarding_asks_by_information_gain_and_stated_answers_steer_the_slate(svc: Service) -> None:
    answers: dict[str, str] = {}
    with svc.client(svc.admin) as c:
        for _ in range(4):
            r = c.post("/v1/onboarding/next", json={"anonymous_id": "onb-anon", "answers": answers})
            assert r.status_code == 200, r.text
            body = r.json()
            if body["done"]:
                break
            q = body["question"]
            assert q["slot"] not in answers and q["options"] and q["gain_bits"] > 0
            answers[q["slot"]] = "footwear" if "footwear" in q["options"] else "no_preference"
        assert body["done"] and 1 <= len(answers) <= 3
        assert answers.get("department") == "footwear", answers  # the most informative question came first
        bad = c.post("/v1/onboarding/next", json={"anonymous_id": "onb-anon", "answers": {"department": "moon"}})
        assert bad.status_code == 422 and "answers.department" in bad.json()["error"]["message"]
        refused = c.post("/v1/onboarding/answers", json={"user_id": "onb-user", "answers": answers})
        assert refused.status_code == 422 and "consent" in refused.json()["error"]["message"]
        footwear = svc.snapshot.category_mask("footwear")
        wanted = {svc.snapshot.item_ids[i] for i in np.flatnonzero(footwear)}
        before = _share(_recs(svc, user_id="onb-user")["items"], wanted)
        saved = c.post("/v1/onboarding/answers", json={"user_id": "onb-user", "answers": answers, "consent": True})
        assert saved.status_code == 200, saved.text
        assert saved.json()["preferences"]["department"] == ["footwear"]
    after = _recs(svc, user_id="onb-user")["items"]
    assert _share(after, wanted) >= 0.7 > before, (before, after)
    assert any("stated" in it["sources"] for it in after)


def _decide(svc: Service, campaign: str, shopper: str) -> dict[str, Any]:
    body = {"shopper_key": shopper, "loyalty_member": True, "segment": "member", "campaign": campaign,
            "item": {"item_id": "sku-1", "price": {"amount": 4000, "currency": "USD"},
                     "cost": {"amount": 2000, "currency": "USD"}},
            "features": {"loyalty_member": 1, "deal_affinity": 4.0, "engagement": -1.5, "log_price": 3.7,
                         "offers_seen": 0},
            "ship_cost": {"amount": 599, "currency": "USD"}}
    with svc.client(svc.admin) as c:
        r = c.post("/v1/offers/decide", json=body, timeout=120)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_an_approved_offer_strategy_disables_an_action(svc: Service, tmp_path: Path) -> None:
    first = _decide(svc, "spring", "psk-s1")
    action = first["action"]
    assert action != "no_action" and action not in {x["action"] for x in first["refused"]}, first  # an offer ...
    store = open_store(svc.store_uri)
    try:  # ... the margin agent files a proposal to stop that action in the campaign
        desk = OperatorDesk(store, lambda: {"rules": []}, lambda doc: doc)
        filed = desk.file(Proposal("margin", f"margin:spring:{action}", f"Stop {action!r} in campaign 'spring'",
                                   ({"op": "disable_offer_action", "campaign": "spring", "action": action},),
                                   {"drop_bps": 400}, "test"))
        assert filed is not None
    finally:
        store.close()
    assert _decide(svc, "spring", "psk-s2")["action"] == action  # filed, not approved: nothing changes
    with svc.client(svc.admin) as c:
        r = c.post(f"/v1/operators/proposals/{filed.proposal_id}/approve", json={"by": "merchandiser"})
        assert r.status_code == 200, r.text
    time.sleep(2.2)  # the strategy document is read again every 2 s
    after = _decide(svc, "spring", "psk-s3")
    assert after["action"] != action
    refusal = next(x for x in after["refused"] if x["action"] == action)
    assert [v["code"] for v in refusal["verdicts"]] == ["disabled_by_strategy"]
    assert "campaign 'spring'" in refusal["verdicts"][0]["detail"]
    with svc.client(svc.admin) as c:
        audit = c.get(f"/v1/audit/decisions/{after['decision_id']}").json()
    cand = next(x for x in audit["candidates"] if x["action"] == action)
    assert not cand["allowed"] and any(v.get("code") == "disabled_by_strategy" for v in cand["verdicts"])
    assert _decide(svc, "autumn", "psk-s4")["action"] == action  # other campaigns keep the action
