"""Append throughput of every Store backend: N small log records in batches, median of R runs.

Each run appends into a fresh store (memory / a new SQLite file / a new PostgreSQL schema), then
replays the same records once (all duplicates) to time the idempotency path. Prints a rich table
with the hardware; "rec/CPU-s" divides by this process's CPU time (excluding the PostgreSQL server),
which is steadier than wall time on a shared machine. Backends whose server is unreachable are reported as skipped.

    .venv/bin/python benchmarks/latency/store_append.py [--records 200000] [--batch 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shopkeep.errors import StorageError
from shopkeep.storage import LogRecord, Store, open_store

POSTGRES = os.environ.get("SHOPKEEP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_records(n: int) -> list[LogRecord]:
    """``n`` small event-like records (about 150 bytes of JSON each) over 2000 sessions."""
    records = []
    for i in range(n):
        event_id = f"evt-{i:09d}"
        payload = json.dumps(
            {"event_id": event_id, "type": "view", "item_id": f"sku-{i % 5000}", "user_id": f"u-{i % 1000}",
             "session_id": f"s-{i % 2000}", "ts": 1_700_000_000_000 + i},
            separators=(",", ":"),
        )
        records.append(LogRecord(event_id, 1_700_000_000_000 + i, payload, f"s-{i % 2000}"))
    return records


@contextmanager
def fresh_store(backend: str) -> Iterator[Store]:
    """A new, empty store of ``backend``; removed afterwards."""
    if backend == "memory":
        store = open_store("memory://")
        yield store
        store.close()
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite:///{tmp}/bench.db")
            yield store
            store.close()
    else:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        store = open_store(f"{POSTGRES}?schema={schema}")
        try:
            yield store
        finally:
            store.close()
            with psycopg.connect(POSTGRES, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds spent in ``fn``."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def one_run(backend: str, records: list[LogRecord], batch: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) seconds to append all records, and to replay them (all duplicates)."""
    batches = [records[i : i + batch] for i in range(0, len(records), batch)]
    with fresh_store(backend) as store:

        def append_all() -> None:
            for part in batches:
                store.append("events", part)

        first = timed(append_all)
        if store.log_count("events") != len(records):
            raise SystemExit(f"{backend}: expected {len(records)} records, found {store.log_count('events')}")
        replay = timed(append_all)
        if store.log_count("events") != len(records):
            raise SystemExit(f"{backend}: replay changed the log")
    return first, replay


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="memory,sqlite,postgresql")
    args = parser.parse_args(argv)
    console = Console()
    records = make_records(args.records)
    backends = args.backends.split(",")
    results: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]] | str] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("appending", total=len(backends) * args.runs)
        for backend in backends:
            firsts, replays = [], []
            try:
                for _ in range(args.runs):
                    first, replay = one_run(backend, records, args.batch)
                    firsts.append(first)
                    replays.append(replay)
                    progress.advance(task)
                results[backend] = (firsts, replays)
            except StorageError as exc:
                results[backend] = f"skipped: {exc.message}"
                progress.advance(task, args.runs)

    table = Table(title=f"Store.append: {args.records:,} records, batches of {args.batch:,}, median of {args.runs}")
    columns = ("backend", "insert records/s", "replay records/s", "insert runs (wall s)", "insert rec/CPU-s")
    for column in columns:
        table.add_column(column, justify="left" if column == "backend" else "right")
    for backend, outcome in results.items():
        if isinstance(outcome, str):
            table.add_row(backend, outcome, "", "", "")
            continue
        firsts, replays = outcome
        table.add_row(
            backend,
            f"{args.records / statistics.median(w for w, _ in firsts):,.0f}",
            f"{args.records / statistics.median(w for w, _ in replays):,.0f}",
            " ".join(f"{w:.2f}" for w, _ in firsts),
            f"{args.records / statistics.median(c for _, c in firsts):,.0f}",
        )
    console.print(table)
    console.print(f"CPU: {cpu_model()} | cores: {os.cpu_count()} | load avg: {os.getloadavg()[0]:.2f} | "
                  f"Python {platform.python_version()} | {platform.system()} {platform.release()}")


if __name__ == "__main__":
    main()
