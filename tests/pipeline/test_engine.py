"""The Engine in process (real SQLite file, memory online state): served slates logged with propensities
and joined to clicks, read-your-writes, copy-on-write catalog updates, and artifact hot swaps while
requests keep being answered (in process and over HTTP with `shopkeep train`)."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.serving.conftest import build_store, event, launch, stop

from shopkeep.catalog import CatalogRepository
from shopkeep.events.log import join_impressions, read_slates
from shopkeep.events.schema import parse_event
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.artifacts import latest_artifacts, read_manifest, train_artifacts
from shopkeep.pipeline.engine import Engine
from shopkeep.simulate import StoreConfig, event_to_wire, generate_store
from shopkeep.storage import open_online_state, open_store
from shopkeep.types import Item, Money


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    synthetic = generate_store(StoreConfig(n_items=300, n_shoppers=150, n_days=4, seed=5))
    store = open_store(f"sqlite:///{tmp_path}/e.db")
    CatalogRepository(store).upsert_many(synthetic.items)
    eng = Engine(store, open_online_state("memory://"))
    eng.ingest([event_to_wire(e) for e in synthetic.events])
    return eng


def test_slates_are_logged_with_propensities_and_join_to_clicks(engine: Engine) -> None:
    slate = engine.recommend(ContextRequest(anonymous_id="j1", k=5))
    props = tuple(it.propensity for it in slate.items)
    assert len(slate.items) == 5 and all(0.0 < p < 1.0 for p in props)  # home explores by default
    engine.flush()
    logged = read_slates(engine.store, [slate.trace_id])[slate.trace_id]
    assert logged.items == tuple(it.item_id for it in slate.items)
    assert logged.positions == (0, 1, 2, 3, 4) and logged.propensities == props
    assert logged.features["artifact_version"] is None and "affinities" in logged.features
    assert [c[0] for c in logged.features["candidates"]] == list(logged.items)
    assert logged.features["ranker"] == "non-learned" and logged.features["explore"]["seed_key"]
    click = event("click", "j1", item_id=slate.items[2].item_id, trace_id=slate.trace_id, position=2)
    assert engine.ingest([click]).accepted == 1
    joined = join_impressions(engine.store, [parse_event(click)])
    assert joined[0].slot == 2 and joined[0].propensity == props[2]
    pdp = engine.recommend(ContextRequest(surface="pdp", anonymous_id="j1", item_id=slate.items[0].item_id, k=4))
    assert all(it.propensity == 1.0 for it in pdp.items)  # no exploration configured on pdp
    engine.close()


def test_ingest_is_read_your_writes_and_idempotent(engine: Engine) -> None:
    item = engine.recommend(ContextRequest(anonymous_id="r1", k=3)).items[0].item_id
    view = event("view", "r1", session="sess-r1", item_id=item)
    assert engine.ingest([view, view]).accepted == 1
    ctx = engine.features.context(ContextRequest(anonymous_id="r1", session_id="sess-r1"))
    assert ctx.recent_items.count(item) == 1
    assert engine.ingest([view]).duplicates == 1
    again = engine.features.context(ContextRequest(anonymous_id="r1", session_id="sess-r1"))
    assert again.recent_items.count(item) == 1
    engine.close()


def test_upserted_item_is_recommendable_at_once_and_old_bindings_survive(engine: Engine) -> None:
    before = engine._bindings
    new = Item("brand-new", "Glow kit", category=("Beauty", "Kits"), attributes={"edition": "winter"},
               price=Money(2500, "USD"), inventory={"warehouse": 3})
    assert engine.upsert_items([new]) == ("brand-new",)
    assert engine._bindings is not before and "brand-new" not in before.snapshot.index  # copy-on-write
    engine.ingest([event("filter", "u-new", attribute="edition", value="winter", offset_s=-i) for i in range(3)])
    assert "brand-new" in [it.item_id for it in engine.recommend(ContextRequest(anonymous_id="u-new", k=10)).items]
    pdp = engine.recommend(ContextRequest(surface="pdp", item_id="brand-new", anonymous_id="u-new", k=5))
    assert pdp.items and "brand-new" not in [it.item_id for it in pdp.items]
    engine.close()


def test_hot_swap_in_process_keeps_answering(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    first = train_artifacts(engine.store, root, ["itemknn"])
    assert engine.load_artifacts(root) == first.version
    errors: list[BaseException] = []
    answered = [0]
    stop_flag = threading.Event()

    def hammer() -> None:
        while not stop_flag.is_set():
            try:
                assert engine.recommend(ContextRequest(anonymous_id=f"h{answered[0] % 7}", k=5)).items
                answered[0] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=hammer)
    thread.start()
    versions = set()
    for _ in range(3):
        manifest = train_artifacts(engine.store, root, ["itemknn"])
        versions.add(engine.load_artifacts(root / manifest.version))
    stop_flag.set()
    thread.join()
    assert not errors and answered[0] > 0
    assert len(versions) == 3 and engine.version == read_manifest(latest_artifacts(root) or root).version
    engine.close()


def test_shopkeep_train_hot_swaps_a_running_server_without_downtime(tmp_path: Path) -> None:
    from shopkeep.cli.main import main

    uri, artifacts, snap = build_store(tmp_path, n_items=250, seed=9)
    svc = launch(tmp_path, uri, artifacts, snap)
    statuses: list[int] = []
    stop_flag = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=svc.base, headers={"Authorization": f"Bearer {svc.read}"}) as c:
            while not stop_flag.is_set():
                statuses.append(c.get("/v1/recommendations", params={"anonymous_id": secrets.token_hex(2)}).status_code)

    try:
        old = httpx.get(f"{svc.base}/healthz").json()["artifacts"]
        thread = threading.Thread(target=hammer)
        thread.start()
        assert main(["train", "--store", uri, "--artifacts", str(artifacts), "--json"]) == 0
        new = read_manifest(latest_artifacts(artifacts) or artifacts).version
        deadline = time.monotonic() + 30
        while httpx.get(f"{svc.base}/healthz").json()["artifacts"] != new and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        stop_flag.set()
        thread.join()
        assert new != old and httpx.get(f"{svc.base}/healthz").json()["artifacts"] == new
        assert statuses and set(statuses) == {200}, set(statuses)
    finally:
        stop_flag.set()
        stop(svc.proc)


def test_demo_check_exercises_every_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shopkeep.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--check", "--store", f"sqlite:///{tmp_path}/demo.db"]) == 0


def test_exploration_keeps_pins_in_place_and_only_shows_eligible_items(engine: Engine) -> None:
    snap = engine._bindings.snapshot
    pinned = next(i for i in snap.item_ids if snap.in_stock(None)[snap.index[i]])
    excluded = [i for i in snap.item_ids[:40] if i != pinned]
    engine.set_policy({"name": "pin-test", "rules": [
        {"kind": "inventory"}, {"kind": "pin", "item_id": pinned, "position": 0},
        {"kind": "exclude", "select": {"item_ids": excluded}}]})
    explored = 0
    for n in range(80):
        slate = engine.recommend(ContextRequest(anonymous_id=f"pin-{n}", k=6, explain=True))
        assert slate.items[0].item_id == pinned and slate.items[0].propensity == 1.0
        assert all(0.0 < it.propensity < 1.0 for it in slate.items[1:])
        assert not {it.item_id for it in slate.items} & set(excluded)  # explored slates too
        assert slate.explain is not None
        explored += slate.explain["exploration"]["explored"]
    assert 0 < explored < 20  # epsilon 0.05 over 80 requests
    engine.close()
