"""Erasure (issue #8, item 6): after ``erase_user`` / ``DELETE /v1/users/{id}`` no stored document, log
record, online-state key or value, and no byte of the SQLite files mentions the shopper's ids; log
counts are unchanged; other shoppers are untouched (also one whose id extends the erased one)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shopkeep.catalog import CatalogRepository
from shopkeep.config import Config
from shopkeep.events.log import EVENTS_LOG, SLATES_LOG
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.engine import Engine
from shopkeep.pipeline.erasure import erase_user, find_traces, user_data
from shopkeep.pipeline.training import interaction_sequences
from shopkeep.profiles import ProfileRepository
from shopkeep.profiles.model import Profile
from shopkeep.serving.app import create_app
from shopkeep.serving.auth import hash_entries
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import open_online_state, open_store
from shopkeep.storage.base import Store

SYNTH = generate_store(StoreConfig(n_items=120, n_shoppers=30, n_days=3, seed=11))


def shopper_events(user: str, anons: list[str], session: str, items: list[str]) -> list[dict[str, Any]]:
    """Anonymous browsing on two devices, a login on each, then purchases as the user."""
    out: list[dict[str, Any]] = []
    t = 1_767_225_600  # 2026-01-01
    for n, anon in enumerate(anons):
        for i, item in enumerate(items[:4]):
            out.append({"event_id": f"ev-{anon}-{i}", "type": "view", "anonymous_id": anon, "item_id": item,
                        "timestamp": t + 60 * (10 * n + i), "session_id": session if n == 0 else None})
        out.append({"event_id": f"ev-{anon}-login", "type": "login", "anonymous_id": anon, "user_id": user,
                    "timestamp": t + 60 * (10 * n + 5)})
    out.append({"event_id": f"ev-{user}-buy", "type": "purchase", "user_id": user, "anonymous_id": anons[0],
                "item_id": items[0], "timestamp": t + 3000, "quantity": 1,
                "order_id": f"ord-{user}", "price": {"amount": 1299, "currency": "USD"}})
    for e in out:
        e["timestamp"] = _iso(e["timestamp"])
        if e.get("session_id") is None:
            e.pop("session_id", None)
    return out


def _iso(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def engine(tmp_path: Path, redis_uri: str) -> Iterator[Engine]:
    """An engine over a SQLite file and a Redis prefix of its own, with the synthetic catalog."""
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    CatalogRepository(store).upsert_many(SYNTH.items)
    prefix = f"erase-{secrets.token_hex(4)}:"
    online = open_online_state(f"{redis_uri}?prefix={prefix}")
    eng = Engine(store, online, Config())
    eng.redis_prefix = prefix  # type: ignore[attr-defined]
    try:
        yield eng
    finally:
        import redis

        client = redis.Redis.from_url(redis_uri)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
        eng.close()


def populate(engine: Engine, user: str, anons: list[str], session: str) -> None:
    """Events, a profile and served slates for ``user``."""
    items = list(engine.catalog.iter_items())[:6]
    report = engine.ingest(shopper_events(user, anons, session, [it.item_id for it in items]))
    assert report.rejected == 0, report
    ProfileRepository(engine.store).upsert(Profile(user_id=user, region="US"))
    engine.recommend(ContextRequest(surface="home", user_id=user, anonymous_id=anons[0], session_id=session, k=5))
    engine.recommend(ContextRequest(surface="home", anonymous_id=anons[1], k=5))
    engine.flush()


def redis_mentions(redis_uri: str, prefix: str, ids: list[str]) -> list[str]:
    """Keys under ``prefix`` whose name or value contains an id."""
    import redis

    client = redis.Redis.from_url(redis_uri)
    try:
        out = []
        for key in client.scan_iter(match=f"{prefix}*"):
            value = client.get(key) or b""
            if any(i.encode() in key or i.encode() in value for i in ids):
                out.append(key.decode())
        return out
    finally:
        client.close()


def file_mentions(folder: Path, ids: list[str]) -> list[str]:
    """SQLite files (db, -wal, -shm) whose raw bytes contain an id (free pages included)."""
    out = []
    for path in sorted(folder.glob("store.db*")):
        data = path.read_bytes()
        out += [f"{path.name}:{i}" for i in ids if i.encode() in data]
    return out


def log_counts(store: Store) -> dict[str, int]:
    """Record counts of the events and slates logs."""
    return {log: store.log_count(log) for log in (EVENTS_LOG, SLATES_LOG)}


def test_erasure_leaves_no_trace_anywhere(engine: Engine, tmp_path: Path, redis_uri: str) -> None:
    """Store documents, log records, Redis keys/values and the raw SQLite bytes are free of the ids."""
    tag = secrets.token_hex(5)
    user, anons, session = f"user-{tag}", [f"dev-{tag}-a", f"dev-{tag}-b"], f"sess-{tag}"
    other = secrets.token_hex(5)
    other_user, other_anons = f"keep-{other}", [f"kdev-{other}-a", f"kdev-{other}-b"]
    populate(engine, user, anons, session)
    populate(engine, other_user, other_anons, f"ksess-{other}")
    engine.store.put_many("conversations", {f"conv-{tag}": {"user_id": user, "turns": [{"text": "hi"}]},
                                            f"conv-{other}": {"user_id": other_user, "turns": []}})
    engine.store.put_many("grants", {f"grant:{anons[0]}": {"scopes": ["read"]}})
    ids = [user, *anons, session]
    prefix = engine.redis_prefix  # type: ignore[attr-defined]
    assert find_traces(engine.store, ids) and redis_mentions(redis_uri, prefix, ids)  # the setup holds them
    before = log_counts(engine.store)
    other_before = user_data(engine.store, other_user)
    seen = user_data(engine.store, user)
    assert seen["anonymous_ids"] == anons and seen["profile"] is not None
    assert len(seen["logs"][EVENTS_LOG]) == 11 and seen["logs"][SLATES_LOG]

    report = erase_user(engine.store, engine.features, user_id=user)

    assert report.remaining == (), report
    assert set(report.anonymous_ids) == set(anons)
    assert report.log_records_rewritten[EVENTS_LOG] == 11 and report.online_keys_deleted > 0
    assert find_traces(engine.store, ids) == []
    assert redis_mentions(redis_uri, prefix, ids) == []
    assert log_counts(engine.store) == before  # counts kept: records rewritten, not dropped
    assert user_data(engine.store, other_user) == other_before  # the other shopper is untouched
    assert engine.store.get_many("conversations", [f"conv-{other}"])[f"conv-{other}"]["user_id"] == other_user
    assert engine.store.get_many("conversations", [f"conv-{tag}"])[f"conv-{tag}"]["user_id"] is None
    assert engine.store.count("grants") == 0
    engine.store.close()  # let SQLite finish with the files, then read them raw
    assert file_mentions(tmp_path, ids) == []
    assert file_mentions(tmp_path, [other_user, *other_anons])  # the scan does see ids that are still there


def test_erased_events_stay_counted_but_unlinked(engine: Engine) -> None:
    """Each erased event keeps its item and time but gets its own token: no history links them."""
    tag = secrets.token_hex(5)
    user, anons = f"user-{tag}", [f"dev-{tag}-a", f"dev-{tag}-b"]
    populate(engine, user, anons, f"sess-{tag}")
    items_before = sorted(json.loads(r.payload).get("item_id") or "" for r in engine.store.read(EVENTS_LOG, k=10**6))
    erase_user(engine.store, engine.features, user_id=user)
    records = engine.store.read(EVENTS_LOG, k=10**6)
    assert sorted(json.loads(r.payload).get("item_id") or "" for r in records) == items_before
    erased = [json.loads(r.payload) for r in records if r.partition == "erased"]
    assert len(erased) == 11
    assert len({e["anonymous_id"] for e in erased}) == 11 and all("user_id" not in e for e in erased)
    seqs = interaction_sequences(engine.store)
    assert not any(key.endswith(tag) or tag in key for key in seqs)  # no training history of the person
    assert all(len(seq) <= 1 for key, seq in seqs.items() if key.startswith("erased-"))


def test_erasure_is_exact_about_ids(engine: Engine) -> None:
    """Erasing ``u-X`` leaves ``u-X0`` (whose id contains it) and its devices alone."""
    tag = secrets.token_hex(5)
    populate(engine, f"u-{tag}", [f"d-{tag}", f"e-{tag}"], f"s-{tag}")
    populate(engine, f"u-{tag}0", [f"d-{tag}0", f"e-{tag}0"], f"s-{tag}0")
    kept = user_data(engine.store, f"u-{tag}0")
    report = erase_user(engine.store, engine.features, user_id=f"u-{tag}")
    assert report.log_records_rewritten[EVENTS_LOG] == 11
    assert user_data(engine.store, f"u-{tag}0") == kept


def test_erasure_needs_an_id() -> None:
    """No id: a ValidationError naming user_id."""
    from shopkeep.errors import ValidationError

    store = open_store("memory://")
    with pytest.raises(ValidationError, match="user_id"):
        erase_user(store, None)
    with pytest.raises(ValidationError, match="user_id"):
        erase_user(store, None, user_id="  ")


def test_memory_backend_erases_too(redis_uri: str) -> None:
    """The same erasure on a memory:// store (conformance of the backends erasure reaches into)."""
    eng = Engine(open_store("memory://"), open_online_state("memory://"), Config())
    try:
        CatalogRepository(eng.store).upsert_many(SYNTH.items)
        populate(eng, "mem-user", ["mem-dev-1", "mem-dev-2"], "mem-sess")
        populate(eng, "mem-keep", ["mem-kdev-1", "mem-kdev-2"], "mem-ksess")
        report = erase_user(eng.store, eng.features, user_id="mem-user")
        assert report.remaining == ()
        assert len(eng.store.read(EVENTS_LOG, k=10**6, partition="erased")) == 11
        assert user_data(eng.store, "mem-keep")["logs"][EVENTS_LOG]
    finally:
        eng.close()


def test_delete_route_needs_admin_and_erases(engine: Engine, redis_uri: str) -> None:
    """``DELETE /v1/users/{id}``: 401 without a key, 403 with a read key, 200 and an empty ``remaining`` as admin."""
    tag = secrets.token_hex(5)
    user, anons = f"user-{tag}", [f"dev-{tag}-a", f"dev-{tag}-b"]
    populate(engine, user, anons, f"sess-{tag}")
    cfg = Config()
    serving = replace(cfg.serving, api_keys=hash_entries("rk:read,ak:admin"))
    app = create_app(replace(cfg, serving=serving), engine, auth=True)
    with TestClient(app) as client:
        assert client.delete(f"/v1/users/{user}").status_code == 401
        r = client.delete(f"/v1/users/{user}", headers={"Authorization": "Bearer rk"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        got = client.get(f"/v1/users/{user}", headers={"Authorization": "Bearer ak"})
        assert got.status_code == 200 and got.json()["profile"]["user_id"] == user
        r = client.delete(f"/v1/users/{user}", headers={"Authorization": "Bearer ak"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["remaining"] == [] and sorted(body["anonymous_ids"]) == sorted(anons)
        again = client.get(f"/v1/users/{user}", headers={"Authorization": "Bearer ak"}).json()
        assert again["profile"] is None and again["logs"] == {} and again["anonymous_ids"] == []


def test_postgres_backend_erases_too(postgres_uri: str) -> None:
    """The same erasure on PostgreSQL (a fresh schema), VACUUM included."""
    import psycopg

    schema = f"erase_{secrets.token_hex(4)}"
    uri = f"{postgres_uri}{'&' if '?' in postgres_uri else '?'}schema={schema}"
    eng = Engine(open_store(uri), open_online_state("memory://"), Config())
    try:
        CatalogRepository(eng.store).upsert_many(SYNTH.items)
        populate(eng, "pg-user", ["pg-dev-1", "pg-dev-2"], "pg-sess")
        populate(eng, "pg-keep", ["pg-kdev-1", "pg-kdev-2"], "pg-ksess")
        before = log_counts(eng.store)
        report = erase_user(eng.store, eng.features, user_id="pg-user")
        assert report.remaining == () and report.log_records_rewritten[EVENTS_LOG] == 11
        assert log_counts(eng.store) == before
        assert user_data(eng.store, "pg-keep")["logs"][EVENTS_LOG]
    finally:
        eng.close()
        with psycopg.connect(postgres_uri.split("?")[0], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
