"""Event ingestion throughput: JSONL file -> validate -> sessionize -> SQLite event log.

Generates N realistic events (many anonymous shoppers, some logins, ~5% late events written out of
order, ~2% exact duplicate lines) into a temp dir, then ingests the file into a fresh SQLite store per
run with the full write path (:class:`shopkeep.pipeline.Ingestor`). Each run checks that the stored
count equals the number of distinct events and that a replay of the file stores nothing new.

    .venv/bin/python benchmarks/latency/ingest_events.py              # 500k events, 3 runs
    .venv/bin/python benchmarks/latency/ingest_events.py -n 50000 -r 5 --profile

Target: >= 50,000 events/s. The hardware and the load average are printed with the numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from shopkeep.config import Config, EventsConfig
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.pipeline import Ingestor
from shopkeep.pipeline.ingest import default_parse_workers
from shopkeep.storage import LogRecord, open_store

TARGET = 50_000
DEVICES = ("mobile", "desktop", "tablet")
CHANNELS = ("web", "app", "email")


def generate(path: Path, n: int, seed: int = 7) -> int:
    """Write ``n`` lines of a time-ordered event stream to ``path``; returns the number of distinct event ids.

    Shoppers (n/20 anonymous ids) come and go: each event belongs to one of ~200 shoppers active at
    the time, and a new visit starts with probability 0.08, so visits last minutes and a shopper's
    next visit is usually hours later. About 5% of events arrive late (1 min to 2 h after their
    time), 2% of lines repeat an earlier line exactly, 2% of events are logins.
    """
    rng = random.Random(seed)
    clock = datetime(2026, 10, 1, tzinfo=UTC)
    shoppers = max(1, n // 20)
    active: list[int] = []
    lines: list[str] = []
    distinct = 0
    for i in track(range(n), description="generating events", transient=True):
        if lines and rng.random() < 0.02:  # an exact replay of an earlier line
            lines.append(lines[rng.randrange(len(lines))])
            continue
        clock += timedelta(milliseconds=rng.randrange(1, 700))
        if not active or rng.random() < 0.08:
            active.append(rng.randrange(shoppers))
            if len(active) > 200:
                active.pop(0)
        s = rng.choice(active)
        ts = clock
        if rng.random() < 0.05:  # late: written out of order, up to 2 hours after it happened
            ts -= timedelta(seconds=rng.randrange(60, 7200))
        lines.append(json.dumps(_event(rng, i, s, ts)))
        distinct += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return distinct


def _event(rng: random.Random, i: int, s: int, ts: datetime) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": f"e-{i}", "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "anonymous_id": f"a-{s}",
        "context": {"device": DEVICES[s % 3], "channel": CHANNELS[i % 3], "store": f"store-{s % 40}"},
    }
    roll = rng.random()
    item = f"sku-{int(rng.paretovariate(1.2)) % 20000}"
    if roll < 0.35:
        event.update(type="impression", item_id=item, trace_id=f"t-{i // 10}", position=i % 10)
    elif roll < 0.70:
        event.update(type="view", item_id=item)
    elif roll < 0.80:
        event.update(type="click", item_id=item, trace_id=f"t-{i // 10}")
    elif roll < 0.86:
        event.update(type="add_to_cart", item_id=item)
    elif roll < 0.90:
        event.update(type="search", query=rng.choice(("red lipstick", "unscented lotion", "serum")))
    elif roll < 0.94:
        event.update(type="filter", attribute="fragrance_free", value="true")
    elif roll < 0.96:
        event.update(type="purchase", item_id=item, order_id=f"o-{i}", quantity=1 + i % 3,
                     price={"amount": 1000 + i % 5000, "currency": "USD"})
    elif roll < 0.98:
        event.update(type="dwell", item_id=item, dwell_ms=rng.randrange(100, 60000))
    else:
        event.update(type="login", user_id=f"u-{s % (max(1, s // 3) + 1)}-{s}")
    return event


def run_once(path: Path, db: Path, distinct: int, *, workers: int, replay: bool, profile: bool
             ) -> tuple[float, float | None, float]:
    """Ingest ``path`` into a fresh SQLite db; returns (events/s, replay events/s, main-process CPU us/event)."""
    config = Config(events=EventsConfig())
    store = open_store(f"sqlite:///{db}")
    try:
        ingestor = Ingestor(store, config, parse_workers=workers)
        prof = cProfile.Profile() if profile else None
        cpu = time.process_time()
        start = time.perf_counter()
        if prof:
            prof.enable()
        report = ingestor.ingest_jsonl(path, progress=False)
        if prof:
            prof.disable()
        seconds = time.perf_counter() - start
        cpu_us = (time.process_time() - cpu) / max(1, report.seen) * 1e6
        stored = store.log_count("events")
        if stored != distinct or report.accepted != distinct or report.rejected or report.conflicts:
            raise SystemExit(f"wrong result: stored={stored} accepted={report.accepted} distinct={distinct} "
                             f"rejected={report.rejected} conflicts={report.conflicts}")
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        lines = report.seen
        replay_rate = None
        if replay:
            start = time.perf_counter()
            again = ingestor.ingest_jsonl(path, progress=False)
            replay_seconds = time.perf_counter() - start
            if again.accepted or store.log_count("events") != distinct or again.conflicts:
                raise SystemExit(f"replay changed the log: accepted={again.accepted} conflicts={again.conflicts}")
            replay_rate = again.seen / replay_seconds
        return lines / seconds, replay_rate, cpu_us
    finally:
        store.close()


def storage_scaling(tmp: Path, n: int, console: Console) -> None:
    """Time bare ``Store.append`` of event-like records on SQLite as the log grows (no parsing at all),
    with random partitions (``anon:ms`` labels) and with time-first partitions (what sessionization writes)."""
    payload = ('{"anonymous_id":"a-1","context":{"channel":"web","device":"mobile"},"event_id":"e-%d",'
               '"item_id":"sku-77","position":3,"timestamp":"2026-10-02T12:00:00Z","type":"impression"}')
    step = max(5000, n // 5 // 5000 * 5000)
    columns: dict[str, list[float]] = {}
    for kind in ("random partitions", "time-first partitions"):
        store = open_store(f"sqlite:///{tmp}/append_{len(columns)}.db")
        rng = random.Random(1)
        start = time.perf_counter()
        for base in range(0, n, 5000):
            records = []
            for i in range(base, base + 5000):
                anon = f"a-{rng.randrange(n // 20 or 1)}"
                part = f"{anon}:{i // 50 * 1000}" if kind.startswith("random") else f"{i // 50 * 1000:013d}:{anon}"
                records.append(LogRecord(f"e-{i}", i, payload % i, part))
            store.append("events", records)
            if (base + 5000) % step == 0:
                now = time.perf_counter()
                columns.setdefault(kind, []).append((now - start) / step * 1e6)
                start = now
        store.close()
    table = Table(title=f"SQLite Store.append alone, batches of 5,000, {n:,} records: us/record")
    table.add_column("log size", justify="right")
    for kind in columns:
        table.add_column(kind, justify="right")
    for row, size in enumerate(range(step, n + 1, step)):
        table.add_row(f"{size:,}", *(f"{columns[kind][row]:.1f}" for kind in columns))
    console.print(table)


def hardware() -> str:
    """CPU model, cores, Python version (the shared summary)."""
    return hardware_summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--events", type=int, default=500_000)
    parser.add_argument("-r", "--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="*", default=None,
                        help="parse-worker counts to compare (default: 0 and the CLI default)")
    parser.add_argument("--profile", action="store_true", help="cProfile the first run")
    parser.add_argument("--storage-scaling", action="store_true",
                        help="only time SQLite Store.append alone as the log grows to N records")
    args = parser.parse_args()
    if args.storage_scaling:
        with tempfile.TemporaryDirectory(prefix="shopkeep-bench-") as tmp:
            load = os.getloadavg()[0]
            storage_scaling(Path(tmp), args.events, Console())
            Console().print(f"hardware: {hardware()}; load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
        return
    modes = args.workers if args.workers is not None else sorted({0, default_parse_workers()})
    console = Console()
    table = Table(title=f"ingest events: {args.events:,} lines -> SQLite (fresh db per run)")
    for col in ("parse workers", "events/s median", "min", "max", "main CPU us/event", "replay events/s",
                "target", "runs"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="shopkeep-bench-") as tmp:
        path = Path(tmp) / "events.jsonl"
        distinct = generate(path, args.events)
        console.print(f"{args.events:,} lines, {distinct:,} distinct events, {path.stat().st_size / 1e6:.0f} MB")
        load_before = os.getloadavg()
        for workers in modes:
            rates, cpus, replay = [], [], None
            for r in range(args.runs):
                db = Path(tmp) / f"run{workers}_{r}.db"
                rate, replay_rate, cpu_us = run_once(path, db, distinct, workers=workers, replay=r == 0,
                                                     profile=args.profile and r == 0)
                replay = replay_rate if r == 0 else replay
                rates.append(rate)
                cpus.append(cpu_us)
                db.unlink()
                console.print(f"workers={workers} run {r + 1}: {rate:,.0f} events/s, main CPU {cpu_us:.1f} us/event")
            median = statistics.median(rates)
            table.add_row(str(workers), f"{median:,.0f}", f"{min(rates):,.0f}", f"{max(rates):,.0f}",
                          f"{statistics.median(cpus):.1f}", f"{replay:,.0f}" if replay else "-", f"{TARGET:,}",
                          str(args.runs), style="green" if median >= TARGET else "red")
        load_after = os.getloadavg()
    console.print(table)
    console.print(f"hardware: {hardware()}")
    console.print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} (1 min)")
    console.print("checked each run: stored count == distinct events; first run of each mode: replay stores nothing")


if __name__ == "__main__":
    main()
