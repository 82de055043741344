"""Crash safety (issue #8, item 2): SIGKILL ``shopkeep serve`` at random moments during sustained ingestion.

A client streams the events of a synthetic store over HTTP in batches and retries a batch that was not
acknowledged (connection refused/reset, timeout) with the same event_ids until it is. A killer sends
SIGKILL to the server a few milliseconds after a seeded choice of batches went out (the next batch waits
for the kill; the delay, 0-12 ms, is about one batch's service time), so kills land before, during and
after that batch's store commit; the server is restarted on the same SQLite file and the same Redis online
state. At the end the run is compared with a clean run (the same batches, in the same order,
through an in-process Engine over a copy of the starting store and a fresh Redis prefix):

* every acknowledged event is stored exactly once with the same payload (no loss, no duplicates),
* the sessionization state (collection ``event_sessions``) is identical,
* the online feature state (every Redis key of the run) is identical,
* home slates for a sample of shoppers are identical.

    .venv/bin/python benchmarks/reliability/crash_test.py --events 4000 --kills 8 --seed 1

Needs Redis on 127.0.0.1:6379. Appends a row to benchmarks/reliability/results.md with ``--record``.

``--worker`` deploys ``shopkeep serve`` + ``shopkeep worker`` on a Redis stream instead and kills either
process; it also checks the worker's aggregates against a clean run (benchmarks/reliability/crash_worker.py):

    .venv/bin/python benchmarks/reliability/crash_test.py --worker --events 2000 --kills 8 --seed 1 2 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from shopkeep.catalog import CatalogRepository
from shopkeep.cli.demo_service import free_port, start_server, wait_ready
from shopkeep.config import Config
from shopkeep.events.log import EVENTS_LOG
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.artifacts import load_artifacts, train_artifacts
from shopkeep.pipeline.engine import Engine
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.simulate import StoreConfig, event_to_wire, generate_store
from shopkeep.storage import open_online_state, open_store
from shopkeep.storage.base import iter_collection

RESULTS = Path(__file__).with_name("results.md")


@dataclass(frozen=True)
class CrashResult:
    """What one crash run measured (``*_diff`` counts are 0 when the run converged to the clean one)."""

    seed: int
    events: int
    batch: int
    kills: int
    retried_batches: int
    retried_after_commit: int  # retries answered with duplicates: the kill came after the durable append
    acknowledged: int
    stored: int
    missing: int
    duplicate_keys: int
    payload_diff: int
    sessions_diff: int
    online_keys: int
    online_diff: int
    slates_compared: int
    slates_diff: int
    seconds: float
    mean_restart_s: float
    online_diff_sample: tuple[str, ...] = ()  # up to 8 differing online keys, for diagnosis

    @property
    def ok(self) -> bool:
        """No loss, no duplicates, and everything converged to the clean run."""
        return not (self.missing or self.duplicate_keys or self.payload_diff or self.sessions_diff
                    or self.online_diff or self.slates_diff) and self.stored == self.acknowledged


def prepare(folder: Path, *, n_events: int, seed: int) -> tuple[Path, Path, list[dict[str, Any]]]:
    """A SQLite store (catalog + the first 30% of events, artifacts trained on them) and the events to stream."""
    shoppers = max(80, n_events // 4)
    synthetic = generate_store(StoreConfig(n_items=300, n_shoppers=shoppers, n_days=7, seed=seed))
    wire = [event_to_wire(e) for e in synthetic.events]
    if len(wire) < n_events + n_events // 2:
        raise SystemExit(f"the synthetic store has only {len(wire)} events; ask for fewer")
    head, stream = wire[: len(wire) - n_events], wire[len(wire) - n_events:]
    db = folder / "start.db"
    store = open_store(f"sqlite:///{db}")
    try:
        CatalogRepository(store).upsert_many(synthetic.items)
        Ingestor(store).ingest_batch(head)
        train_artifacts(store, folder / "artifacts", ["itemknn"])
    finally:
        store.close()
    return db, folder / "artifacts", stream


def terminate(proc: subprocess.Popen[bytes] | None, timeout_s: float = 20.0) -> None:
    """SIGTERM ``proc`` if it still runs, SIGKILL after ``timeout_s``; wait for it either way."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """One ``shopkeep serve`` process at a time on a fixed port; SIGKILL and restart on demand."""

    def __init__(self, folder: Path, uri: str, artifacts: Path, online: str, key: str) -> None:
        self.folder, self.uri, self.artifacts, self.online, self.key = folder, uri, artifacts, online, key
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts: list[float] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        """Start and wait until /healthz answers."""
        t0 = time.perf_counter()
        self.proc = start_server(self.uri, self.artifacts, self.port, keys=f"{self.key}:ingest+read",
                                 online=self.online, log_file=self.folder / f"server-{len(self.restarts)}.log")
        wait_ready(self.base, 120.0, self.proc)
        self.restarts.append(time.perf_counter() - t0)

    def kill_and_restart(self, killed: threading.Event) -> None:
        """SIGKILL the running server (then set ``killed``), and start a fresh one on the same store."""
        with self.lock:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            killed.set()
            self.proc.wait()
            self.start()

    def stop(self) -> None:
        """Terminate the last server."""
        terminate(self.proc)


def stream(server: Server, batches: Sequence[list[dict[str, Any]]], kill_at: Mapping[int, float],
           deadline_s: float = 600.0, on_batch: Callable[[int], threading.Thread | None] | None = None,
           ) -> tuple[set[str], int, int]:
    """Post every batch until acknowledged; returns (acknowledged event ids, batches that needed a retry,
    retried batches whose answer counted duplicates: the killed server had stored them already).
    ``on_batch(i)`` runs as batch ``i`` starts going out (it may start a thread, joined at the end)."""
    acked: set[str] = set()
    retried = after_commit = 0
    killers: list[threading.Thread] = []
    client = httpx.Client(headers={"Authorization": f"Bearer {server.key}"}, timeout=10.0)
    start = time.monotonic()
    try:
        pending: threading.Event | None = None
        for i, batch in enumerate(batches):
            if pending is not None:  # the kill lands during batch i-1 or right after it, never after the stream
                pending.wait()
                pending = None
            if i in kill_at:
                pending = threading.Event()
                killer = threading.Timer(kill_at[i], server.kill_and_restart, args=(pending,))
                killer.start()
                killers.append(killer)
            extra = on_batch(i) if on_batch is not None else None
            if extra is not None:
                killers.append(extra)
            tries = 0
            while True:
                if time.monotonic() - start > deadline_s:
                    raise TimeoutError(f"batch {i} not acknowledged within {deadline_s:.0f} s")
                tries += 1
                try:
                    r = client.post(f"{server.base}/v1/events", json={"events": batch})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200 and r.json()["rejected"] == 0 and r.json()["conflicts"] == 0:
                    acked.update(e["event_id"] for e in batch)
                    after_commit += tries > 1 and r.json()["duplicates"] > 0
                    break
                raise RuntimeError(f"batch {i}: {r.status_code} {r.text[:300]}")
            retried += tries > 1
    finally:
        for killer in killers:
            killer.join()
        client.close()
    return acked, retried, after_commit


def clean_run(folder: Path, start_db: Path, artifacts: Path, online: str, batches: Sequence[list[dict[str, Any]]]
              ) -> str:
    """The same batches through an in-process Engine over a copy of the starting store; returns its URI."""
    db = folder / "clean.db"
    shutil.copy(start_db, db)
    uri = f"sqlite:///{db}"
    engine = Engine(open_store(uri), open_online_state(online), Config(),
                    artifacts=load_artifacts(artifacts), log_slates=False)
    try:
        for batch in batches:
            engine.ingest(batch)
    finally:
        engine.close()
    return uri


def _log_of(uri: str) -> dict[str, list[str]]:
    store = open_store(uri)
    try:
        out: dict[str, list[str]] = {}
        after = 0
        while True:
            page = store.read(EVENTS_LOG, after_seq=after, k=5000)
            for rec in page:
                out.setdefault(rec.key, []).append(f"{rec.partition}|{rec.payload}")
            if len(page) < 5000:
                return out
            after = page[-1].seq
    finally:
        store.close()


def _sessions_of(uri: str) -> dict[str, Any]:
    store = open_store(uri)
    try:
        return dict(iter_collection(store, "event_sessions"))
    finally:
        store.close()


def _online_of(redis_url: str, prefix: str) -> dict[str, bytes]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(client.scan_iter(match=f"{prefix}*", count=1000))
        values = client.mget(keys) if keys else []
        return {k.decode()[len(prefix):]: v for k, v in zip(keys, values, strict=True)}
    finally:
        client.close()


def _slates(uri: str, online: str, artifacts: Path, anons: Sequence[str]) -> list[tuple[str, ...]]:
    engine = Engine(open_store(uri), open_online_state(online), Config(), artifacts=load_artifacts(artifacts),
                    log_slates=False)
    try:
        return [tuple(it.item_id for it in engine.recommend(ContextRequest(surface="home", anonymous_id=a, k=10)).items)
                for a in anons]
    finally:
        engine.close()


def _online_uri(redis_url: str, prefix: str) -> str:
    return f"{redis_url}?prefix={prefix}"


def run(folder: Path, *, n_events: int, kills: int, seed: int, batch: int = 20,
        redis_url: str = "redis://127.0.0.1:6379/0") -> CrashResult:
    """One crash run and its clean twin in ``folder``; Redis keys of both are deleted afterwards."""
    rng = random.Random(seed)
    start_db, artifacts, events = prepare(folder, n_events=n_events, seed=seed)
    batches = [events[i:i + batch] for i in range(0, len(events), batch)]
    choices = rng.sample(range(1, len(batches)), min(kills, len(batches) - 1))
    kill_at = {i: rng.uniform(0.0, 0.012) for i in choices}  # seconds after that batch starts going out
    crash_db = folder / "crash.db"
    shutil.copy(start_db, crash_db)
    tag = secrets.token_hex(4)
    crash_prefix, clean_prefix = f"crash-{tag}:", f"clean-{tag}:"
    server = Server(folder, f"sqlite:///{crash_db}", artifacts, _online_uri(redis_url, crash_prefix),
                    secrets.token_urlsafe(12))
    t0 = time.perf_counter()
    try:
        server.start()
        acked, retried, after_commit = stream(server, batches, kill_at)
    finally:
        server.stop()
    seconds = time.perf_counter() - t0
    try:
        clean_uri = clean_run(folder, start_db, artifacts, _online_uri(redis_url, clean_prefix), batches)
        crash_log, clean_log = _log_of(f"sqlite:///{crash_db}"), _log_of(clean_uri)
        crash_on, clean_on = _online_of(redis_url, crash_prefix), _online_of(redis_url, clean_prefix)
        anons = sorted({str(e["anonymous_id"]) for e in events if e.get("anonymous_id")})
        sample = random.Random(seed + 1).sample(anons, min(20, len(anons)))
        slates_crash = _slates(f"sqlite:///{crash_db}", _online_uri(redis_url, crash_prefix), artifacts, sample)
        slates_clean = _slates(clean_uri, _online_uri(redis_url, clean_prefix), artifacts, sample)
        sessions_crash, sessions_clean = _sessions_of(f"sqlite:///{crash_db}"), _sessions_of(clean_uri)
    finally:
        _drop_prefixes(redis_url, (crash_prefix, clean_prefix))
    return CrashResult(
        seed=seed, events=len(events), batch=batch, kills=len(server.restarts) - 1, retried_batches=retried,
        retried_after_commit=after_commit,
        acknowledged=len(acked), stored=sum(1 for e in acked if e in crash_log),
        missing=len(acked - set(crash_log)), duplicate_keys=sum(len(v) - 1 for v in crash_log.values()),
        payload_diff=_diff(crash_log, clean_log),
        sessions_diff=_diff(sessions_crash, sessions_clean),
        online_keys=len(clean_on), online_diff=_diff(crash_on, clean_on),
        slates_compared=len(sample), slates_diff=sum(a != b for a, b in zip(slates_crash, slates_clean, strict=True)),
        seconds=round(seconds, 1),
        mean_restart_s=round(sum(server.restarts[1:]) / max(1, len(server.restarts) - 1), 2),
        online_diff_sample=tuple(sorted(k for k in set(crash_on) | set(clean_on)
                                        if crash_on.get(k) != clean_on.get(k))[:8]),
    )


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """How many keys of either mapping have different (or missing) values."""
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b))


def _drop_prefixes(redis_url: str, prefixes: Sequence[str]) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i:i + 1000])
    finally:
        client.close()


_COLUMNS = ("seed", "events", "batch", "kills", "retried_batches", "retried_after_commit", "acknowledged", "stored",
            "missing", "duplicate_keys", "payload_diff", "sessions_diff", "online_keys", "online_diff",
            "slates_compared", "slates_diff", "seconds", "mean_restart_s")


def record(result: CrashResult, command: str) -> None:
    """Append a row (and the header when the table is new) to results.md."""
    header = "| " + " | ".join(_COLUMNS) + " | ok | command | machine |\n"
    if not RESULTS.exists() or header not in RESULTS.read_text():
        with RESULTS.open("a") as fh:
            fh.write("\n## crash_test.py (idempotent features)\n\n" + header)
            fh.write("|" + "---|" * (len(_COLUMNS) + 3) + "\n")
    row = asdict(result)
    machine = f"{platform.machine()} {os.cpu_count()} cpu, py{platform.python_version()}"
    with RESULTS.open("a") as fh:
        fh.write("| " + " | ".join(str(row[c]) for c in _COLUMNS) + f" | {result.ok} | `{command}` | {machine} |\n")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: one or more seeded crash runs; prints each result as JSON; exit 1 when one did not converge."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=4000)
    p.add_argument("--kills", type=int, default=8)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--seed", type=int, nargs="+", default=[1])
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--record", action="store_true", help="append the rows to results.md")
    p.add_argument("--worker", action="store_true",
                   help="serve + worker on a Redis stream, either killed (benchmarks/reliability/crash_worker.py)")
    args = p.parse_args(argv)
    if args.worker:
        return _main_worker(args)
    failed = 0
    for seed in args.seed:
        with tempfile.TemporaryDirectory(prefix="crash-") as tmp:
            result = run(Path(tmp), n_events=args.events, kills=args.kills, seed=seed, batch=args.batch,
                         redis_url=args.redis)
        print(json.dumps({**asdict(result), "ok": result.ok}))
        failed += not result.ok
        if args.record:
            record(result, f"crash_test.py --events {args.events} --kills {args.kills} --batch {args.batch} "
                           f"--seed {seed}")
    return 1 if failed else 0


def _main_worker(args: argparse.Namespace) -> int:
    """``--worker``: serve + worker crash runs (see crash_worker.py); one row each under their own table."""
    from crash_worker import COLUMNS, run_with_worker

    failed = 0
    for seed in args.seed:
        with tempfile.TemporaryDirectory(prefix="crashw-") as tmp:
            result = run_with_worker(Path(tmp), n_events=args.events, kills=args.kills, seed=seed, batch=args.batch,
                                     redis_url=args.redis)
        print(json.dumps({**asdict(result), "ok": result.ok}))
        failed += not result.ok
        if args.record:
            command = (f"crash_test.py --worker --events {args.events} --kills {args.kills} --batch {args.batch} "
                       f"--seed {seed}")
            _record_row(asdict(result), result.ok, command, COLUMNS,
                        "crash_test.py --worker (serve + worker on a Redis stream, either SIGKILLed)")
    return 1 if failed else 0


def _record_row(row: Mapping[str, Any], ok: bool, command: str, columns: Sequence[str], title: str) -> None:
    """Append ``row`` under the table titled ``title`` (header written when the table is new)."""
    header = "| " + " | ".join(columns) + " | ok | command | machine | load |\n"
    if not RESULTS.exists() or header not in RESULTS.read_text():
        with RESULTS.open("a") as fh:
            fh.write(f"\n## {title}\n\n" + header)
            fh.write("|" + "---|" * (len(columns) + 4) + "\n")
    machine = f"{platform.machine()} {os.cpu_count()} cpu, py{platform.python_version()}"
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    with RESULTS.open("a") as fh:
        fh.write("| " + " | ".join(str(row[c]) for c in columns) + f" | {ok} | `{command}` | {machine} | {load} |\n")


if __name__ == "__main__":
    sys.exit(main())
