"""Speed of the hot session features: ``SessionFeatures.update`` throughput (events/s in batches of
100) and ``SessionFeatures.context`` latency (p50/p99) on the in-process state and on Redis.

The stream interleaves many sessions (a third of them signed in) over a synthetic catalog, in time
order, with the event-type mix of a storefront (views dominate). After the writes, ``context`` is
timed for random sessions (session + shopper keys, two or three keys read per request). The
hardware, the load average and the Redis server version are printed with the numbers.

    .venv/bin/python benchmarks/latency/features.py [--items 20000] [--events 50000] [--sessions 5000]
        [--requests 5000] [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import StorageError
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.features import ContextRequest, FeatureConfig, SessionFeatures
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import OnlineState, open_online_state
from shopkeep.types import Event, EventType, Money

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIX = ((EventType.VIEW, 0.55), (EventType.CLICK, 0.15), (EventType.DWELL, 0.1), (EventType.FILTER, 0.05),
       (EventType.ADD_TO_CART, 0.08), (EventType.REMOVE_FROM_CART, 0.02), (EventType.WISHLIST, 0.02),
       (EventType.PURCHASE, 0.03))


def hardware() -> str:
    """CPU model, cores, Python version (the shared summary)."""
    return hardware_summary()


def make_stream(snapshot: CatalogSnapshot, n: int, sessions: int, seed: int) -> list[Event]:
    """``n`` time-ordered events spread over ``sessions`` interleaved sessions."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    attrs = [(k, str(v)) for it in snapshot.items[:500] for k, v in it.attributes.items() if not isinstance(v, tuple)]
    out = []
    for j in range(n):
        s = rng.randrange(sessions)
        kind = rng.choices(kinds, weights)[0]
        extra: dict[str, object] = {}
        item: str | None = snapshot.item_ids[rng.randrange(snapshot.n)]
        if kind is EventType.FILTER:
            name, value = rng.choice(attrs)
            item, extra = None, {"attribute": name, "value": value}
        elif kind is EventType.DWELL:
            extra = {"dwell_ms": 4000}
        elif kind is EventType.PURCHASE:
            extra = {"order_id": f"o-{j}", "quantity": 1, "price": Money(1999, "USD")}
        out.append(Event(f"ev-{j}", kind, T0 + timedelta(milliseconds=40 * j), anonymous_id=f"anon-{s}",
                         user_id=f"user-{s}" if s % 3 == 0 else None, session_id=f"sess-{s}", item_id=item,
                         **extra))  # type: ignore[arg-type]
    return out


def time_updates(features: SessionFeatures, events: list[Event], progress: Progress,
                 label: str) -> tuple[float, float]:
    """Events per wall second of ``update`` in batches of 100, and this process's CPU us per event."""
    task = progress.add_task(f"update ({label})", total=len(events))
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(events), 100):
        features.update(events[i:i + 100])
        if i % 5000 == 0:
            progress.update(task, completed=i)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(events) / wall, cpu / len(events) * 1e6


def time_contexts(features: SessionFeatures, requests: list[ContextRequest], progress: Progress,
                  label: str) -> list[float]:
    """Microseconds of each ``context`` call."""
    task = progress.add_task(f"context ({label})", total=len(requests))
    out = []
    for j, request in enumerate(requests):
        start = time.perf_counter_ns()
        features.context(request)
        out.append((time.perf_counter_ns() - start) / 1000)
        if j % 500 == 0:
            progress.update(task, completed=j)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def redis_version(uri: str) -> str:
    import redis

    client = redis.Redis.from_url(uri.split("?")[0])
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


def cleanup(uri: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(uri)
    stale = list(client.scan_iter(match=f"{prefix}*", count=10_000))
    for i in range(0, len(stale), 5000):
        client.delete(*stale[i:i + 5000])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--sessions", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--redis", default=os.environ.get("SHOPKEEP_TEST_REDIS", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console()
    console.print(f"catalog of {args.items:,} synthetic items, {args.events:,} events over {args.sessions:,} "
                  f"sessions, seed {args.seed}")
    store = generate_store(StoreConfig(n_items=args.items, n_shoppers=10, n_days=1, seed=args.seed))
    snapshot = CatalogSnapshot.from_items(store.items)
    events = make_stream(snapshot, args.events, args.sessions, args.seed)
    rng = random.Random(args.seed + 1)
    requests = []
    for _ in range(args.requests):
        s = rng.randrange(args.sessions)
        requests.append(ContextRequest(session_id=f"sess-{s}", anonymous_id=f"anon-{s}",
                                       user_id=f"user-{s}" if s % 3 == 0 else None,
                                       now=T0 + timedelta(milliseconds=40 * args.events)))
    prefix = f"bench-features:{uuid.uuid4().hex[:8]}:"
    backends: list[tuple[str, Callable[[], OnlineState]]] = [
        ("memory://", lambda: open_online_state("memory://")),
        ("redis", lambda: open_online_state(f"{args.redis}?prefix={prefix}")),
    ]
    table = Table(title="SessionFeatures: update (batches of 100) and context()")
    for col in ("online state", "update events/s", "update CPU us/event", "context p50 us", "context p99 us",
                "context mean us"):
        table.add_column(col, justify="right")
    load = os.getloadavg()[0]
    with Progress(console=console, transient=True) as progress:
        for label, open_state in backends:
            try:
                state = open_state()
            except StorageError as exc:
                table.add_row(label, "skipped", str(exc)[:40], "", "", "")
                continue
            try:
                features = SessionFeatures(state, lambda: snapshot, FeatureConfig())
                rate, cpu_us = time_updates(features, events, progress, label)
                lat = time_contexts(features, requests, progress, label)
            finally:
                state.close()
                if label.startswith("redis"):
                    cleanup(args.redis, prefix)
            table.add_row(label, f"{rate:,.0f}", f"{cpu_us:.0f}", f"{pct(lat, 0.5):.0f}", f"{pct(lat, 0.99):.0f}",
                          f"{statistics.fmean(lat):.0f}")
    console.print(table)
    try:
        redis_note = f"Redis {redis_version(args.redis)} at {args.redis}"
    except Exception as exc:  # the version is informative only
        redis_note = f"Redis version unknown ({exc})"
    console.print(f"hardware: {hardware()}; {redis_note}; load average {load:.2f} -> {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
