"""Real Redis: events another system writes to a stream, and events ``shopkeep serve`` publishes, reach
the store / the shared aggregates exactly once even when a worker is SIGKILLed mid-batch and another
worker claims its pending entries (XAUTOCLAIM)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.conftest import drop_schema
from tests.conftest import store_uri as store_uri_of
from tests.serving.conftest import stop
from tests.serving.test_webhooks import launch_with_config

from shopkeep.config import load_config
from shopkeep.events.bus import open_bus
from shopkeep.events.bus_aggregates import RedisAggregates
from shopkeep.pipeline.engine import Engine
from shopkeep.pipeline.worker import POISON_COLLECTION, BusWorker, IngestApplier
from shopkeep.storage import open_store

T0 = "2026-03-0{day}T{h:02d}:{m:02d}:00Z"


def wire_events(n: int, tag: str) -> list[dict[str, Any]]:
    """``n`` valid view/purchase events with unique ids over 40 shoppers and 30 items."""
    out = []
    for i in range(n):
        e = {"event_id": f"{tag}-{i}", "type": "view", "anonymous_id": f"a{i % 40}", "item_id": f"sku{(i * 13) % 30}",
             "timestamp": T0.format(day=1 + (i // 1440) % 9, h=(i // 60) % 24, m=i % 60)}
        if i % 7 == 0:
            e |= {"type": "purchase", "order_id": f"o{i}", "quantity": 1}
        out.append(e)
    return out


POISON = [b"{not json", orjson.dumps({"event_id": "bad-1", "type": "teleport", "anonymous_id": "a",
                                       "timestamp": "2026-03-01T00:00:00Z"}), orjson.dumps([1, 2, 3])]


def worker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shopkeep.cli.main", "worker", *args]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")} | {"PYTHONUNBUFFERED": "1"}


def kill_mid_batch(cmd: list[str], pending: Callable[[], int], log: Path, tries: int = 5) -> int:
    """Start ``cmd``, SIGKILL it as soon as it holds pending messages; returns the pending count left
    behind (> 0), retrying with a fresh process when the kill landed between two batches."""
    for _ in range(tries):
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, env=clean_env(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        try:
            while pending() == 0 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        left = pending()
        if left > 0:
            return left
    pytest.fail(f"could not kill the worker while it held pending messages ({log.read_text()[-2000:]})")


def run_to_end(cmd: list[str], log: Path, timeout_s: float = 120) -> str:
    with log.open("ab") as out:
        done = subprocess.run(cmd, env=clean_env(), stdout=subprocess.PIPE, stderr=out, timeout=timeout_s)
    assert done.returncode == 0, log.read_text()[-3000:]
    return done.stdout.decode()


@pytest.fixture
def stream(redis_uri: str) -> Iterator[str]:
    """A fresh stream name, deleted afterwards."""
    import redis

    name = f"t:src:{secrets.token_hex(5)}"
    yield name
    client = redis.Redis.from_url(redis_uri)
    client.delete(name)
    client.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_foreign_stream_is_stored_exactly_once_across_a_sigkill(tmp_path: Path, redis_uri: str, stream: str,
                                                                kind: str, request: pytest.FixtureRequest) -> None:
    import redis

    n = 3000
    client = redis.Redis.from_url(redis_uri)
    pipe = client.pipeline(transaction=False)
    for i, e in enumerate(wire_events(n, "src")):
        pipe.xadd(stream, {"event": orjson.dumps(e)})
        if i in (10, 1500, 2990):
            pipe.xadd(stream, {"event": POISON[(10, 1500, 2990).index(i)]})
    pipe.execute()
    source = f"{redis_uri.replace('redis://', 'redis-stream://')}?stream={stream}&group=shopkeep"
    store_uri, schema = store_uri_of(kind, request, tmp_path)
    request.addfinalizer(lambda: drop_schema(request, schema))
    bus = open_bus(source)
    common = ["--source", source, "--store", store_uri, "--online", "memory://", "--batch", "100"]
    left = kill_mid_batch(worker_cmd(*common, "--consumer", "doomed"), bus.pending, tmp_path / "a.log")
    assert left > 0
    out = run_to_end(worker_cmd(*common, "--consumer", "heir", "--claim-idle-ms", "200", "--idle-exit", "3"),
                     tmp_path / "b.log")
    assert bus.pending() == 0, out
    store = open_store(store_uri)
    try:
        assert store.log_count("events") == n  # none lost, none twice
        ids = {r.key for r in store.read("events", k=n + 10)}
        assert ids == {f"src-{i}" for i in range(n)}
        poison = [doc for _, doc in store.scan(POISON_COLLECTION, k=100)]
        assert len(poison) == 3
        assert sorted(doc["error"][:20] for doc in poison)  # each records its error
        assert any("teleport" in doc["error"] for doc in poison)
        assert any("not JSON" in doc["error"] for doc in poison)
    finally:
        store.close()
        bus.close()
        client.close()


def test_an_applied_but_unacked_batch_is_claimed_and_changes_nothing(tmp_path: Path, redis_uri: str,
                                                                     stream: str) -> None:
    bus = open_bus(f"{redis_uri}?stream={stream}&group=g")
    config = load_config(env={"SHOPKEEP_STORAGE__URI": f"sqlite:///{tmp_path}/s.db",
                              "SHOPKEEP_SERVING__ARTIFACTS_DIR": str(tmp_path / "art")})
    engine = Engine.open(config, log_slates=False)
    try:
        bus.publish([orjson.dumps(e) for e in wire_events(120, "u")])
        taken = bus.consume("first", k=200, block_ms=500)
        assert len(taken) == 120
        assert IngestApplier(engine)(taken) == []  # applied ... and then the consumer dies before its ack
        assert engine.store.log_count("events") == 120 and bus.pending() == 120
        heir = BusWorker(bus, IngestApplier(engine), consumer="heir", claim_idle_ms=0, poison_store=engine.store)
        step = heir.step()
        assert (step.received, step.claimed, step.acked, step.poison) == (120, 120, 120, 0)
        assert engine.store.log_count("events") == 120  # stored once: the second apply found duplicates
        assert bus.pending() == 0
    finally:
        engine.close()
        bus.close()


def test_serve_publishes_and_workers_aggregate_exactly_once(tmp_path: Path, redis_uri: str, stream: str) -> None:
    import redis

    prefix = f"t-agg-{secrets.token_hex(4)}:"
    bus_uri = f"{redis_uri}?stream={stream}&group=aggregators"
    online = f"{redis_uri}?prefix={prefix}"
    srv = launch_with_config(tmp_path, f'[bus]\nuri = "{bus_uri}"\n', online=online, n_items=150)
    aggregates = RedisAggregates(redis_uri, prefix=prefix)
    bus = open_bus(bus_uri)
    try:
        events = wire_events(2400, "http")
        with httpx.Client(base_url=srv.base, timeout=60.0) as c:
            for i in range(0, len(events), 400):
                assert c.post("/v1/events", json={"events": events[i:i + 400]}).json()["accepted"] == 400
            # a client re-sends a batch (as after a timeout): published again, applied once
            assert c.post("/v1/events", json={"events": events[:400]}).json()["duplicates"] == 400
        common = ["--bus", bus_uri, "--online", online, "--store", srv.store_uri, "--batch", "50"]
        kill_mid_batch(worker_cmd(*common, "--consumer", "doomed"), bus.pending, tmp_path / "a.log")
        run_to_end(worker_cmd(*common, "--consumer", "heir", "--claim-idle-ms", "200", "--idle-exit", "3"),
                   tmp_path / "b.log")
        assert bus.pending() == 0
        raw = redis.Redis.from_url(redis_uri)
        assert raw.xlen(stream) == 2800  # the re-sent batch was published again ...
        raw.close()
        assert aggregates.applied_count() == 2400  # ... and applied once
        weight = {"view": 1.0, "purchase": 5.0}
        total: dict[str, float] = defaultdict(float)
        for e in events:
            total[e["item_id"]] += weight[e["type"]]
        assert dict(aggregates.popular(100, trending=False)) == pytest.approx(dict(total))
        assert all(aggregates.neighbors(["sku0"], 5)["sku0"])  # co-visitation within sessions
    finally:
        stop(srv.proc)
        aggregates.close()
        bus.close()
        client = redis.Redis.from_url(redis_uri)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
