"""Real Redis: with a bus configured, two ``shopkeep serve`` processes on one store read popularity from the
aggregates ``shopkeep worker`` keeps in Redis, so they serve the same popular items -- whichever API
process received the events -- and neither counts events the worker has not applied yet (until the
aggregates hold any count, both serve training's popularity)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.test_bus_redis import clean_env, run_to_end, worker_cmd
from tests.serving.conftest import build_store, stop

from shopkeep.cli.demo_service import free_port, wait_ready
from shopkeep.pipeline.artifacts import latest_artifacts, read_popularity


def _serve(folder: Path, cfg: Path, uri: str, artifacts: Path, online: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    cmd = [sys.executable, "-m", "shopkeep.cli.main", "--config", str(cfg), "serve", "--store", uri, "--artifacts",
           str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--online", online, "--no-auth"]
    log = (folder / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 120.0, proc)
    except BaseException:
        stop(proc)
        raise
    return base, proc


@pytest.fixture
def two_servers(tmp_path: Path, redis_uri: str) -> Iterator[dict[str, Any]]:
    import redis

    prefix = f"t-pop-{secrets.token_hex(4)}:"
    stream = f"t:pop:{secrets.token_hex(5)}"
    bus_uri = f"{redis_uri}?stream={stream}&group=aggregators"
    online = f"{redis_uri}?prefix={prefix}"
    uri, artifacts, snap = build_store(tmp_path, n_items=150, seed=5)
    cfg = tmp_path / "shopkeep.toml"
    cfg.write_text(f'[bus]\nuri = "{bus_uri}"\n\n[explore]\nenabled = false\n', encoding="utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bases = []
        for _ in range(2):
            base, proc = _serve(tmp_path, cfg, uri, artifacts, online)
            bases.append(base)
            procs.append(proc)
        yield {"a": bases[0], "b": bases[1], "snap": snap, "artifacts": artifacts, "worker": [
            "--bus", bus_uri, "--online", online, "--store", uri, "--batch", "50", "--consumer", "w1",
            "--idle-exit", "2"], "folder": tmp_path}
    finally:
        for proc in procs:
            stop(proc)
        client = redis.Redis.from_url(redis_uri)
        keys = [*client.scan_iter(match=f"{prefix}*"), stream]
        client.delete(*keys)
        client.close()


def _slate(base: str, anon: str) -> list[tuple[str, tuple[str, ...]]]:
    r = httpx.get(f"{base}/v1/recommendations", params={"anonymous_id": anon, "k": 10}, timeout=30)
    assert r.status_code == 200, r.text
    return [(it["item_id"], tuple(it["sources"])) for it in r.json()["items"]]


def test_two_api_processes_serve_the_popularity_the_worker_aggregated(two_servers: dict[str, Any]) -> None:
    a, b, snap = two_servers["a"], two_servers["b"], two_servers["snap"]
    for base in (a, b):
        assert httpx.get(f"{base}/healthz", timeout=30).json()["popularity"] == "shared"
    found = latest_artifacts(two_servers["artifacts"])
    assert found is not None
    trained = (read_popularity(found) or {}).get("total", {})
    # the least popular in training (ties by the highest snapshot index): never in a top 10 before
    hot = sorted(snap.item_ids, key=lambda i: (trained.get(i, 0.0), -snap.index[i]))[:3]
    t = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    events = [{"event_id": f"hot-{n}-{j}", "type": "purchase", "timestamp": t, "anonymous_id": f"buyer-{j}",
               "item_id": item, "order_id": f"o-{n}-{j}", "quantity": 1}
              for n, item in enumerate(hot) for j in range(12 - 3 * n)]
    r = httpx.post(f"{a}/v1/events", json={"events": events}, timeout=60)  # all of them to process A only
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    time.sleep(1.2)  # past the shared counts' refresh interval
    before = {name: [i for i, _ in _slate(base, f"fresh-{name}-0")] for name, base in (("a", a), ("b", b))}
    assert not set(hot) & set(before["a"]), "A counted its own events before the worker applied them"
    assert before["a"] == before["b"]  # nothing aggregated yet: both serve training's popularity
    run_to_end(worker_cmd(*two_servers["worker"]), two_servers["folder"] / "worker.log")
    time.sleep(1.2)
    after_a, after_b = _slate(a, "fresh-a-1"), _slate(b, "fresh-b-1")
    assert after_a == after_b  # the same popularity on both processes
    assert [i for i, _ in after_a[:3]] == hot  # ordered by the aggregated purchase counts (12, 9, 6)
    assert [i for i, _ in after_a] != before["a"]
    assert all("popular" in sources for _, sources in after_a[:3])
