"""Issue #4 item 2 end to end over HTTP, with attributes and categories drawn at random from the catalog:
filters steer the home slate, clicks raise a category's share, the effect fades with event time, a
purchase takes the item and its variant group out, the same request gives the same slate, and hard
policy rules (exclusion, MAP) hold for random policies."""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from tests.serving.conftest import Service, event

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features.config import DEFAULT_REPURCHASE_DAYS

K = 20


def _slate(c: httpx.Client, anon: str, session: str | None = None, **params: Any) -> list[str]:
    q = {"anonymous_id": anon, "k": K, **params}
    if session:
        q["session_id"] = session
    r = c.get("/v1/recommendations", params=q)
    assert r.status_code == 200, r.text
    return [it["item_id"] for it in r.json()["items"]]


def _share(snapshot: CatalogSnapshot, ids: Sequence[str], mask: np.ndarray) -> float:
    idx = snapshot.indices(list(ids))
    return float(mask[idx].mean()) if len(ids) else 0.0


def _attribute_values(snapshot: CatalogSnapshot, lo: float = 0.05, hi: float = 0.30) -> list[tuple[str, str]]:
    eligible = snapshot.active & snapshot.in_stock(None)
    found: set[tuple[str, str]] = set()
    for item in snapshot.items:
        for key, value in item.attributes.items():
            for v in value if isinstance(value, tuple) else (value,):
                found.add((key, str(v).lower() if isinstance(v, bool) else str(v)))
    out = []
    for key, value in sorted(found):
        share = float((snapshot.attribute_mask(key, value) & eligible).sum() / max(eligible.sum(), 1))
        if lo <= share <= hi:
            out.append((key, value))
    return out


def test_three_filters_steer_the_home_slate(service: Service) -> None:
    rng = random.Random(secrets.randbits(32))
    choices = _attribute_values(service.snapshot)
    assert choices, "the synthetic catalog has attribute values held by 5-30% of items"
    with service.client(service.admin) as c:
        for key, value in rng.sample(choices, min(3, len(choices))):
            mask = service.snapshot.attribute_mask(key, value)
            anon, session = f"f-{secrets.token_hex(4)}", f"s-{secrets.token_hex(4)}"
            before = _share(service.snapshot, _slate(c, anon, session), mask)
            events = [event("filter", anon, session=session, attribute=key, value=str(value), offset_s=i - 3)
                      for i in range(3)]
            assert c.post("/v1/events", json={"events": events}).json()["accepted"] == 3
            after = _share(service.snapshot, _slate(c, anon, session), mask)
            assert after >= 0.7, (key, value, before, after)
            assert after >= 2 * before, (key, value, before, after)


def _category_of(snapshot: CatalogSnapshot, rng: random.Random) -> tuple[str, np.ndarray]:
    names = sorted({level for path in snapshot.category_paths for level in path[1:]})
    eligible = snapshot.active & snapshot.in_stock(None)
    fitting = [n for n in names if 0.03 <= (snapshot.category_mask(n) & eligible).sum() / eligible.sum() <= 0.2
               and (snapshot.category_mask(n) & eligible).sum() >= 8]
    name = rng.choice(fitting)
    return name, snapshot.category_mask(name) & eligible


def test_three_clicks_raise_the_category_share(service: Service) -> None:
    rng = random.Random(secrets.randbits(32))
    snap = service.snapshot
    with service.client(service.admin) as c:
        for _ in range(2):
            name, mask = _category_of(snap, rng)
            anon, session = f"c-{secrets.token_hex(4)}", f"s-{secrets.token_hex(4)}"
            before = _share(snap, _slate(c, anon, session), mask)
            items = rng.sample([snap.item_ids[i] for i in np.flatnonzero(mask)], 3)
            events = [event("click", anon, session=session, item_id=item, offset_s=i - 3)
                      for i, item in enumerate(items)]
            assert c.post("/v1/events", json={"events": events}).json()["accepted"] == 3
            after = _share(snap, _slate(c, anon, session), mask)
            # explain names the mission: the clicked category itself or a narrower one all three clicks share
            mission = c.get("/v1/recommendations", params={"anonymous_id": anon, "session_id": session, "k": K,
                                                           "explain": "true"}).json()["explain"]["mission"]
            assert mission is not None and mission.startswith("cat:"), mission
            narrower = snap.category_mask(mission.removeprefix("cat:"))
            assert narrower[snap.indices(items)].all() and not (narrower & ~snap.category_mask(name)).any(), \
                (name, mission)
            # the spec: three clicks raise the category's share. Beyond it: to at least three times the category's
            # share of the eligible items, and to half of what the category can fill of the slate (a 12-item leaf:
            # 6 of 20) or a quarter of the slate (the mission category is the affinity source's only list: siblings
            # under the same parent gave a 12-item leaf 2 of 20 slots before)
            catalog = float(mask.sum() / (snap.active & snap.in_stock(None)).sum())
            fillable = min(int(mask.sum()), K) / K
            assert after > before and after >= max(3 * catalog, min(0.25, 0.5 * fillable)), \
                (name, catalog, before, after)


def test_the_effect_fades_as_the_half_life_passes(service: Service) -> None:
    rng = random.Random(secrets.randbits(32))
    key, value = rng.choice(_attribute_values(service.snapshot))
    mask = service.snapshot.attribute_mask(key, value)
    shares = {}
    with service.client(service.admin) as c:
        for label, age_s in (("fresh", 0.0), ("old", 120 * 86400.0)):  # 120 days = 8.6 long-term half-lives
            anon, session = f"h-{secrets.token_hex(4)}", f"s-{secrets.token_hex(4)}"
            events = [event("filter", anon, session=session, attribute=key, value=str(value),
                            offset_s=-age_s - 3 + i) for i in range(3)]
            assert c.post("/v1/events", json={"events": events}).json()["accepted"] == 3
            shares[label] = _share(service.snapshot, _slate(c, anon, session), mask)
    baseline = float(mask.mean())
    assert shares["fresh"] >= 0.7
    assert shares["old"] < shares["fresh"] - 0.3, (key, value, shares, baseline)


def _replenishable(snapshot: CatalogSnapshot, i: int) -> bool:
    return any(level.lower() in DEFAULT_REPURCHASE_DAYS for level in snapshot.category_paths[i])


def test_a_purchase_takes_the_item_and_its_group_out(service: Service) -> None:
    snap = service.snapshot
    rng = random.Random(secrets.randbits(32))
    with service.client(service.admin) as c:
        checked = 0
        for _ in range(6):
            anon, session = f"b-{secrets.token_hex(4)}", f"s-{secrets.token_hex(4)}"
            _name, mask = _category_of(snap, rng)
            views = rng.sample([snap.item_ids[i] for i in np.flatnonzero(mask)], 3)
            c.post("/v1/events", json={"events": [event("view", anon, session=session, item_id=v, offset_s=j - 5)
                                                  for j, v in enumerate(views)]})
            slate = _slate(c, anon, session)
            grouped = [i for i in slate if snap.group[snap.index[i]] >= 0 and not _replenishable(snap, snap.index[i])]
            if not grouped:
                continue
            bought = grouped[0]
            group = snap.group[snap.index[bought]]
            c.post("/v1/events", json={"events": [event("purchase", anon, session=session, item_id=bought,
                                                        order_id=f"o-{secrets.token_hex(4)}", quantity=1)]})
            after = _slate(c, anon, session)
            assert bought not in after
            assert not any(snap.group[snap.index[i]] == group for i in after), (bought, after)
            checked += 1
        assert checked >= 2


def test_the_same_request_gives_the_same_slate(service: Service) -> None:
    with service.client(service.read) as c:
        for surface, extra in (("home", {}), ("pdp", {"item_id": service.snapshot.item_ids[7]}),
                               ("cart", {"cart": ",".join(service.snapshot.item_ids[10:12])})):
            a = c.get("/v1/recommendations", params={"anonymous_id": "same", "surface": surface, **extra}).json()
            b = c.get("/v1/recommendations", params={"anonymous_id": "same", "surface": surface, **extra}).json()
            assert [i["item_id"] for i in a["items"]] == [i["item_id"] for i in b["items"]]
            assert a["items"] and a["trace_id"] != b["trace_id"]
            if surface != "home":
                assert extra.get("item_id") not in [i["item_id"] for i in a["items"]]


def _random_policy(snapshot: CatalogSnapshot, rng: random.Random) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [{"kind": "inventory"}, {"kind": "map", "mode": rng.choice(["raise", "hide"])}]
    brands = rng.sample(list(snapshot.brands), 2)
    rules.append({"kind": "exclude", "select": {"brands": brands}})
    name, _ = _category_of(snapshot, rng)
    rules.append({"kind": "exclude", "select": {"categories": [name]}})
    pinned = rng.choice(snapshot.item_ids)
    rules.append({"kind": "pin", "item_id": pinned, "position": 0})
    rules.append({"kind": "exclude", "select": {"item_ids": [pinned]}})  # a pin never beats an exclusion
    return {"name": f"random-{rng.randrange(10**6)}", "rules": rules}


def test_hard_rules_hold_for_random_policies(service: Service) -> None:
    snap = service.snapshot
    rng = random.Random(secrets.randbits(32))
    with service.client(service.admin) as c:
        for _ in range(4):
            doc = _random_policy(snap, rng)
            r = c.put("/v1/policies", json=doc)
            assert r.status_code == 200, r.text
            excluded = np.zeros(snap.n, dtype=bool)
            for rule in doc["rules"]:
                sel = rule.get("select", {})
                for b in sel.get("brands", []):
                    excluded |= snap.brand == snap.brands.index(b)
                for cat in sel.get("categories", []):
                    excluded |= snap.category_mask(cat)
                excluded[snap.indices(sel.get("item_ids", []))] = True
            for n in range(5):
                params = {"anonymous_id": f"r{n}", "k": K, "explain": "true"}
                if n % 2:
                    params.update(surface="pdp", item_id=rng.choice(snap.item_ids))
                body = c.get("/v1/recommendations", params=params).json()
                for it in body["items"]:
                    i = snap.index[it["item_id"]]
                    assert not excluded[i], (it, doc)
                    if snap.map_minor[i] >= 0 and it["price"] is not None:
                        assert it["price"]["amount"] >= snap.map_minor[i]
        c.put("/v1/policies", json={"name": "inventory-only", "rules": [{"kind": "inventory"}]})
