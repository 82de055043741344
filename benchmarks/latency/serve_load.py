"""Open-loop load test of the HTTP service on loopback (asyncio + httpx), load generator on the same machine.

Builds a synthetic store (``--items``), trains itemknn artifacts, starts ``shopkeep serve`` as a
subprocess (``--workers``, ``--online``; auth off on loopback), then measures:

1. ``POST /v1/events`` throughput, batches of 100 new events over ``--sessions`` distinct sessions;
2. ``GET /v1/recommendations`` latency at ``--rate`` requests/s, open loop (each request is sent at
   its scheduled time whatever the previous ones did; latency counts from the scheduled time, so
   queueing shows), for random sessions among ``--sessions``, with one new event posted for every
   ``--interleave`` requests so the sessions' state keeps changing. The engine has no response cache
   (every request runs context -> retrieval -> ranking -> policy), so the cache hit rate is 0;
3. event-to-visible latency: post a view, then ask for a slate with ``explain=true`` until the viewed
   item is among the served context's recent items.

Usage (modest scale)::

    .venv/bin/python benchmarks/latency/serve_load.py --items 5000 --rate 100 --duration 15
    .venv/bin/python benchmarks/latency/serve_load.py --items 100000 --workers 2 \\
        --online 'redis://127.0.0.1:6379/15?prefix=bench:' --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from loadgen import RawClient, cpu_seconds, process_tree  # benchmarks/latency/loadgen.py

from shopkeep.catalog import CatalogRepository
from shopkeep.cli.demo_service import free_port, start_server, wait_ready
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.pipeline.artifacts import train_artifacts
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.simulate import StoreConfig, event_to_wire, generate_store
from shopkeep.storage import open_store


def _hardware() -> str:
    """CPU model, cores, Python version (the shared summary)."""
    return hardware_summary()


def _ts(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build(folder: Path, n_items: int, seed: int) -> tuple[str, Path, list[str]]:
    """Store + artifacts; returns the store URI, the artifacts root and the item ids."""
    shoppers = max(500, min(n_items // 5, 10_000))
    t0 = time.perf_counter()
    synthetic = generate_store(StoreConfig(n_items=n_items, n_shoppers=shoppers, n_days=7, seed=seed))
    uri = f"sqlite:///{folder}/bench.db"
    store = open_store(uri)
    try:
        repo = CatalogRepository(store)
        for start in range(0, len(synthetic.items), 5000):
            repo.upsert_many(synthetic.items[start:start + 5000])
        ingestor = Ingestor(store)
        events = synthetic.events
        for start in range(0, len(events), 5000):
            ingestor.ingest_batch([event_to_wire(e) for e in events[start:start + 5000]])
        train_artifacts(store, folder / "artifacts", ["itemknn"])
    finally:
        store.close()
    print(f"built store: {n_items:,} items, {len(synthetic.events):,} events, trained in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return uri, folder / "artifacts", [it.item_id for it in synthetic.items]


def _reuse(folder: Path, n_items: int, seed: int) -> tuple[str, Path, list[str]]:
    """The store built in ``folder`` for (n_items, seed), built first when missing."""
    folder = folder / f"items{n_items}-seed{seed}"
    if not (folder / "artifacts").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        return build(folder, n_items, seed)
    uri = f"sqlite:///{folder}/bench.db"
    store = open_store(uri)
    try:
        items = [it.item_id for it in CatalogRepository(store).iter_items()]
    finally:
        store.close()
    return uri, folder / "artifacts", items


def _event(session: int, item: str, kind: str = "view") -> dict[str, Any]:
    return {"event_id": secrets.token_hex(8), "type": kind, "anonymous_id": f"bench-{session}",
            "session_id": f"bench-s{session}", "item_id": item, "timestamp": _ts(-1)}


async def events_throughput(client: Any, items: list[str], sessions: int, seconds: float,
                            concurrency: int = 4) -> tuple[float, int]:
    """Events/s accepted, batches of 100, ``concurrency`` batches in flight."""
    rng = random.Random(1)
    done = [0]
    end = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < end:
            batch = [_event(rng.randrange(sessions), rng.choice(items)) for _ in range(100)]
            r = await client.post("/v1/events", json={"events": batch})
            done[0] += r.json()["accepted"]

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done[0] / (time.perf_counter() - start), done[0]


async def open_loop(client: Any, items: list[str], sessions: int, rate: float, seconds: float,
                    interleave: int) -> tuple[list[float], int, int]:
    """Latencies (ms from the scheduled send time) of GET /v1/recommendations at ``rate``/s."""
    rng = random.Random(2)
    latencies: list[float] = []
    errors = [0]
    posted = [0]
    start = time.perf_counter()
    tasks = []

    async def one(at: float, n: int) -> None:
        session = rng.randrange(sessions)
        try:
            if interleave and n % interleave == 0:
                await client.post("/v1/events", json={"events": [_event(session, rng.choice(items))]})
                posted[0] += 1
            r = await client.get("/v1/recommendations", params={"anonymous_id": f"bench-{session}",
                                                                "session_id": f"bench-s{session}", "k": 10})
        except (TimeoutError, httpx.HTTPError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            # a dropped connection is an error of the run, not its end
            if errors[0] < 20:
                print(f"request {n}: {type(exc).__name__}: {exc}", file=sys.stderr)
            errors[0] += 1
            return
        if r.status_code != 200:
            errors[0] += 1
        latencies.append((time.perf_counter() - at) * 1000)

    n_total = int(rate * seconds)
    for n in range(n_total):
        at = start + n / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at, n)))
    await asyncio.gather(*tasks)
    return latencies, errors[0], posted[0]


async def event_to_visible(client: Any, items: list[str], trials: int) -> list[float]:
    """ms from posting a view to the first slate whose context has that item as a recent item."""
    rng = random.Random(3)
    out = []
    for n in range(trials):
        session = 10_000_000 + n
        item = rng.choice(items)
        t0 = time.perf_counter()
        await client.post("/v1/events", json={"events": [_event(session, item)]})
        while True:
            r = await client.get("/v1/recommendations", params={"anonymous_id": f"bench-{session}",
                                                                "session_id": f"bench-s{session}", "k": 10,
                                                                "explain": "true"})
            if item in r.json()["explain"]["recent_items"]:
                break
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def run_load(base: str, items: list[str], args: argparse.Namespace, server_pid: int) -> dict[str, Any]:
    """Warm-up, events, event -> visible, then each rate; a fresh client per phase (a saturated phase
    leaves the pool with connections the server closed, which starved the phases after it). Each phase
    also records the CPU seconds the server's processes and this load generator used."""
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)

    def client() -> Any:
        if args.client == "raw":
            return RawClient(base, max_connections=args.connections)
        return httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits)

    pids = process_tree(server_pid)

    def cpu() -> tuple[float, float]:
        return cpu_seconds(pids), time.process_time()

    async with client() as c:
        for _ in range(50):  # warm-up
            await c.get("/v1/recommendations", params={"anonymous_id": "warm", "k": 10})
        before = cpu()
        eps, n_events = await events_throughput(c, items, args.sessions, args.events_seconds, args.events_in_flight)
        after = cpu()
    ev_cpu = ((after[0] - before[0]) / max(n_events, 1) * 1000, (after[1] - before[1]) / max(n_events, 1) * 1000)
    print(f"POST /v1/events: {eps:,.0f} events/s", file=sys.stderr, flush=True)
    async with client() as c:
        visible = await event_to_visible(c, items, 100)
    print(f"event -> visible: median {statistics.median(visible):.1f} ms", file=sys.stderr, flush=True)
    runs = []
    for rate in args.rate:
        load_before = os.getloadavg()[0]
        async with client() as c:
            before = cpu()
            lat, errors, posted = await open_loop(c, items, args.sessions, rate, args.duration, args.interleave)
            after = cpu()
        n = max(len(lat), 1)
        runs.append({"rate": rate, "lat": lat, "errors": errors, "posted": posted, "load": load_before,
                     "server_ms": (after[0] - before[0]) / n * 1000, "client_ms": (after[1] - before[1]) / n * 1000})
        print(f"GET @ {rate:.0f} req/s: p50 {_pct(lat, 0.5):.1f} / p95 {_pct(lat, 0.95):.1f} / p99 "
              f"{_pct(lat, 0.99):.1f} ms, {len(lat)} answered, {errors} errors, load {load_before:.1f}, server CPU "
              f"{runs[-1]['server_ms']:.2f} ms/req", file=sys.stderr, flush=True)
    return {"eps": eps, "n_events": n_events, "runs": runs, "visible": visible, "events_cpu": ev_cpu}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=5000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--online", default="memory://")
    p.add_argument("--rate", type=float, nargs="+", default=[100.0],
                   help="target GET /v1/recommendations per second (several: one open-loop run each, same server)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of open-loop recommendation load")
    p.add_argument("--events-seconds", type=float, default=8.0, help="seconds of event ingestion")
    p.add_argument("--events-in-flight", type=int, default=4, help="event batches (of 100) posted concurrently")
    p.add_argument("--sessions", type=int, default=5000, help="distinct sessions")
    p.add_argument("--interleave", type=int, default=4, help="post one event every N recommendation requests")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--client", choices=("raw", "httpx"), default="raw",
                   help="load generator HTTP client: raw (lean keep-alive HTTP/1.1, ~4x less CPU per request "
                        "than httpx) or httpx")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--retrieval-k", type=int, default=500, help="candidates fused per request")
    p.add_argument("--store-dir", type=Path, default=None,
                   help="build the store and artifacts here once and reuse them on later runs (default: a temp dir)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="shopkeep-bench-") as tmp:
        folder = Path(tmp)
        if args.store_dir is not None:
            uri, artifacts, items = _reuse(args.store_dir, args.items, args.seed)
        else:
            uri, artifacts, items = build(folder, args.items, args.seed)
        port = free_port()
        proc = start_server(uri, artifacts, port, keys=None, workers=args.workers, online=args.online,
                            log_file=folder / "server.log", extra=("--retrieval-k", str(args.retrieval_k)))
        base = f"http://127.0.0.1:{port}"
        load_start = os.getloadavg()[0]
        started = time.perf_counter()
        try:
            wait_ready(base, 900.0, proc, workers=args.workers)
            startup_s = time.perf_counter() - started
            result = asyncio.run(run_load(base, items, args, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log_tail = (folder / "server.log").read_text(errors="replace").splitlines()[-15:]
            if any("Error" in line or "Traceback" in line for line in log_tail):
                print("server log (tail):", *log_tail, sep="\n", file=sys.stderr)
    vis = result["visible"]
    rows = [
        ("hardware", _hardware() + " (load generator on the same machine)"),
        ("service", f"{args.items:,} items, {args.workers} worker(s), online {args.online}, SQLite store, itemknn, "
                    f"retrieval k {args.retrieval_k}"),
        ("start-up", f"{startup_s:.1f} s until /healthz answered 200 (1-min load average {load_start:.1f} at launch)"),
        ("load", f"{args.sessions:,} sessions, {args.duration:.0f} s open loop per rate, 1 event per "
                 f"{args.interleave} requests; response cache: none (hit rate 0)"),
        *((f"GET @ {run['rate']:.0f} req/s",
           f"p50 {_pct(run['lat'], 0.5):.1f} ms, p95 {_pct(run['lat'], 0.95):.1f} ms, "
           f"p99 {_pct(run['lat'], 0.99):.1f} ms, {len(run['lat']) / args.duration:.0f} req/s answered, "
           f"{run['errors']} errors, {run['posted']} events posted, load average {run['load']:.1f}; CPU per "
           f"request: server {run['server_ms']:.2f} ms, load generator {run['client_ms']:.2f} ms")
          for run in result["runs"]),
        ("POST /v1/events", f"{result['eps']:,.0f} events/s accepted (batches of 100, {args.events_in_flight} in "
                            f"flight, {result['n_events']:,} events); CPU per event: server "
                            f"{result['events_cpu'][0]:.3f} ms, load generator {result['events_cpu'][1]:.3f} ms"),
        ("event -> visible", f"median {statistics.median(vis):.1f} ms, p95 {_pct(vis, 0.95):.1f} ms (post + next GET)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"shopkeep serve_load ({datetime.now(UTC):%Y-%m-%d})")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
