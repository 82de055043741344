"""Crash safety with the bus (issue #8, item 2): SIGKILL ``shopkeep serve`` *or* ``shopkeep worker``.

The deployment is two processes: ``shopkeep serve`` (SQLite store, Redis online state, ``[bus] uri`` a
Redis stream it publishes every accepted event to) and ``shopkeep worker`` (one consumer of the stream's
group, folding the events into the shared aggregates beside the online state: popularity, trend,
co-visitation). The client of :mod:`crash_test` streams the events in batches and re-sends what was not
acknowledged; at a seeded choice of batches a coin picks the victim:

* the server is SIGKILLed 0-12 ms after the batch went out (the next batch waits for the restart), as in
  :mod:`crash_test`;
* the worker is SIGKILLed 0-1.5 ms after it next holds delivered, unacknowledged entries (polled every
  millisecond for up to 1 s after the batch went out; the stream does not wait), so kills land while it
  decodes, applies (one Lua script per batch) or acks; it is restarted at once as a new consumer
  (``HOST-PID`` names, like a real restart), and the dead consumer's unacked entries are taken over after
  ``--claim-idle-ms`` 1000. ``worker_kills_holding`` counts the kills after which entries were pending.

When the last batch is acknowledged the server stops and the run waits until the group has read the
whole stream and holds nothing pending. Then it compares with a clean run (the same batches through an
in-process Engine publishing to an in-process bus, one :class:`BusWorker` folding into a fresh Redis
prefix):

* the event log and sessionization as in :mod:`crash_test` (stored exactly once, same payloads);
* the aggregates: the set of applied event ids equals the acknowledged ids (``agg_missing`` /
  ``agg_extra``), the ``agg:n`` counter equals their number (``applied``), and every aggregate key
  (``agg:total``, ``agg:cov:*``, ``agg:sess:*``) is equal member by member (``agg_diff``); ``agg:trend``
  holds sums of floats whose order of addition depends on delivery order, so it is compared with a
  relative tolerance of 1e-9 (``trend_diff``; ``trend_max_rel`` the largest relative difference seen);
* the hot features (every non-aggregate Redis key) and home slates of 20 shoppers, read by engines that
  take their popularity from each run's aggregates.

    .venv/bin/python benchmarks/reliability/crash_test.py --worker --events 2000 --kills 8 --seed 1
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crash_test import Server, _diff, _drop_prefixes, _log_of, _online_uri, _sessions_of, prepare, stream, terminate

from shopkeep.cli.demo_service import wait_ready
from shopkeep.config import Config
from shopkeep.events.bus import open_bus
from shopkeep.events.bus_aggregates import RedisAggregates
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.artifacts import load_artifacts
from shopkeep.pipeline.engine import Engine
from shopkeep.pipeline.worker import AggregateApplier, BusWorker, attach_publisher
from shopkeep.storage import open_online_state, open_store

TREND_RTOL = 1e-9


@dataclass(frozen=True)
class WorkerCrashResult:
    """What one serve + worker crash run measured (``*_diff``/``*_missing``/``*_extra`` are 0 when it converged)."""

    seed: int
    events: int
    batch: int
    server_kills: int
    worker_kills: int
    worker_kills_holding: int  # the worker died with delivered, unacked entries (taken over by its successor)
    retried_batches: int
    retried_after_commit: int
    acknowledged: int
    stored: int
    missing: int
    duplicate_keys: int
    payload_diff: int
    sessions_diff: int
    published: int  # stream entries: the re-sent batches are published again
    applied: int  # the aggregates' agg:n counter
    agg_missing: int
    agg_extra: int
    agg_keys: int
    agg_diff: int
    trend_diff: int
    trend_max_rel: float
    online_keys: int
    online_diff: int
    slates_compared: int
    slates_diff: int
    seconds: float
    drain_s: float

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing applied twice, and everything converged to the clean run."""
        return self.stored == self.acknowledged == self.applied and not (
            self.missing
            or self.duplicate_keys
            or self.payload_diff
            or self.sessions_diff
            or self.agg_missing
            or self.agg_extra
            or self.agg_diff
            or self.trend_diff
            or self.online_diff
            or self.slates_diff
        )


COLUMNS = (
    "seed",
    "events",
    "batch",
    "server_kills",
    "worker_kills",
    "worker_kills_holding",
    "retried_batches",
    "retried_after_commit",
    "acknowledged",
    "stored",
    "missing",
    "duplicate_keys",
    "payload_diff",
    "sessions_diff",
    "published",
    "applied",
    "agg_missing",
    "agg_extra",
    "agg_keys",
    "agg_diff",
    "trend_diff",
    "trend_max_rel",
    "online_keys",
    "online_diff",
    "slates_compared",
    "slates_diff",
    "seconds",
    "drain_s",
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")} | {"PYTHONUNBUFFERED": "1"}


class BusServer(Server):
    """:class:`crash_test.Server` whose ``shopkeep serve`` publishes to ``bus_uri`` (``SHOPKEEP_BUS__URI``)."""

    def __init__(self, folder: Path, uri: str, artifacts: Path, online: str, key: str, bus_uri: str) -> None:
        super().__init__(folder, uri, artifacts, online, key)
        self.bus_uri = bus_uri

    def start(self) -> None:
        """Start and wait until /healthz answers."""
        from shopkeep.serving.auth import hash_entries

        t0 = time.perf_counter()
        env = _env() | {
            "SHOPKEEP_SERVING__API_KEYS": hash_entries(f"{self.key}:ingest+read"),
            "SHOPKEEP_BUS__URI": self.bus_uri,
        }
        cmd = [
            sys.executable,
            "-m",
            "shopkeep.cli.main",
            "serve",
            "--store",
            self.uri,
            "--artifacts",
            str(self.artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--online",
            self.online,
        ]
        with (self.folder / f"server-{len(self.restarts)}.log").open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_ready(self.base, 120.0, self.proc)
        self.restarts.append(time.perf_counter() - t0)


class WorkerProc:
    """One ``shopkeep worker`` process at a time (aggregating ``bus_uri``); SIGKILL and restart on demand."""

    def __init__(
        self, folder: Path, bus_uri: str, online: str, store_uri: str, *, claim_idle_ms: int = 1000, batch: int = 50
    ) -> None:
        self.folder, self.bus_uri, self.online, self.store_uri = folder, bus_uri, online, store_uri
        self.claim_idle_ms, self.batch = claim_idle_ms, batch
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = self.kills_holding = 0
        self.lock = threading.Lock()
        self.bus = open_bus(bus_uri)

    def start(self) -> None:
        """Start a worker (its consumer name is left to the default, ``HOST-PID``)."""
        cmd = [
            sys.executable,
            "-m",
            "shopkeep.cli.main",
            "worker",
            "--bus",
            self.bus_uri,
            "--online",
            self.online,
            "--store",
            self.store_uri,
            "--batch",
            str(self.batch),
            "--claim-idle-ms",
            str(self.claim_idle_ms),
        ]
        with (self.folder / f"worker-{self.starts}.log").open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=_env(), stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def kill_and_restart(self) -> None:
        """SIGKILL the running worker, note whether it held unacked entries, start a fresh one."""
        with self.lock:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
            self.kills_holding += self.bus.pending() > 0  # only one worker runs: what is pending was the dead one's
            self.start()

    def drain(self, redis_url: str, stream_name: str, group: str, timeout_s: float = 600.0) -> float:
        """Wait until the group has read every entry and nothing is pending; returns the seconds waited."""
        import redis

        client = redis.Redis.from_url(redis_url)
        t0 = time.perf_counter()
        try:
            while time.perf_counter() - t0 < timeout_s:
                with self.lock:
                    if self.proc is not None and self.proc.poll() is not None:
                        raise RuntimeError(f"the worker exited with {self.proc.returncode}: see {self.folder}")
                info = next(g for g in client.xinfo_groups(stream_name) if _text(g["name"]) == group)
                if int(info["pending"]) == 0 and (
                    info.get("lag") == 0
                    or (info.get("lag") is None and _text(info["last-delivered-id"]) == _last_id(client, stream_name))
                ):
                    return time.perf_counter() - t0
                time.sleep(0.2)
            raise TimeoutError(f"the worker did not drain {stream_name} within {timeout_s:.0f} s")
        finally:
            client.close()

    def stop(self) -> None:
        """Terminate the last worker and close the bus connection."""
        terminate(self.proc)
        self.bus.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _last_id(client: Any, stream_name: str) -> str:
    last = client.xrevrange(stream_name, count=1)
    return _text(last[0][0]) if last else "0-0"


def clean_run(
    folder: Path, start_db: Path, artifacts: Path, redis_url: str, prefix: str, batches: Sequence[list[dict[str, Any]]]
) -> str:
    """The same batches through an in-process Engine publishing to an in-process bus, then one BusWorker
    folding the bus into the aggregates under ``prefix``; returns the store URI."""
    db = folder / "clean.db"
    shutil.copy(start_db, db)
    uri = f"sqlite:///{db}"
    aggregates = RedisAggregates(redis_url, prefix=prefix)
    bus = open_bus(f"memory://clean-{prefix}")
    engine = _engine(uri, redis_url, prefix, artifacts, aggregates)
    attach_publisher(engine, bus)
    try:
        for batch in batches:
            engine.ingest(batch)
        BusWorker(bus, AggregateApplier(aggregates), consumer="clean", block_ms=50).run(idle_exit_s=0.3)
        if bus.pending():
            raise RuntimeError("the clean run's worker left entries pending")
    finally:
        engine.close()  # closes the aggregates too
    return uri


def _dump_aggregates(redis_url: str, prefix: str) -> dict[str, Any]:
    """Every ``agg:`` key under ``prefix``: strings as text, sorted sets and hashes as dicts."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        out: dict[str, Any] = {}
        for key in client.scan_iter(match=f"{prefix}agg:*", count=1000):
            name = _text(key)[len(prefix) :]
            kind = _text(client.type(key))
            if kind == "zset":
                out[name] = {_text(m): float(s) for m, s in client.zrange(key, 0, -1, withscores=True)}
            elif kind == "hash":
                out[name] = {_text(f): _text(v) for f, v in client.hgetall(key).items()}
            else:
                out[name] = _text(client.get(key))
        return out
    finally:
        client.close()


def _trend_compare(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[int, float]:
    """(members beyond the relative tolerance or missing on one side, largest relative difference)."""
    worst, beyond = 0.0, 0
    for member in set(a) | set(b):
        if member not in a or member not in b:
            beyond += 1
            continue
        rel = abs(a[member] - b[member]) / max(abs(a[member]), abs(b[member]), 1e-300)
        worst = max(worst, rel)
        beyond += rel > TREND_RTOL
    return beyond, worst


def _engine(uri: str, redis_url: str, prefix: str, artifacts: Path, aggregates: RedisAggregates) -> Engine:
    """An in-process Engine over the store ``uri`` and the Redis online state/aggregates under ``prefix``."""
    return Engine(
        open_store(uri),
        open_online_state(_online_uri(redis_url, prefix)),
        Config(),
        artifacts=load_artifacts(artifacts),
        log_slates=False,
        aggregates=aggregates,
    )


def _slates(uri: str, redis_url: str, prefix: str, artifacts: Path, anons: Sequence[str]) -> list[tuple[str, ...]]:
    engine = _engine(uri, redis_url, prefix, artifacts, RedisAggregates(redis_url, prefix=prefix))
    try:
        return [
            tuple(it.item_id for it in engine.recommend(ContextRequest(surface="home", anonymous_id=a, k=10)).items)
            for a in anons
        ]
    finally:
        engine.close()


def _online(redis_url: str, prefix: str) -> dict[str, bytes]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(
            k
            for k in client.scan_iter(match=f"{prefix}*", count=1000)
            if not _text(k)[len(prefix) :].startswith("agg:")
        )
        values = client.mget(keys) if keys else []
        return {_text(k)[len(prefix) :]: v for k, v in zip(keys, values, strict=True)}
    finally:
        client.close()


def run_with_worker(
    folder: Path, *, n_events: int, kills: int, seed: int, batch: int = 20, redis_url: str = "redis://127.0.0.1:6379/0"
) -> WorkerCrashResult:
    """One serve + worker crash run and its clean twin in ``folder``; Redis keys and the stream are deleted after."""
    rng = random.Random(seed)
    start_db, artifacts, events = prepare(folder, n_events=n_events, seed=seed)
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    choices = rng.sample(range(1, len(batches)), min(kills, len(batches) - 1))
    victims = {i: rng.choice(("server", "worker")) for i in choices}
    delays = {i: rng.uniform(0.0, 0.012 if victims[i] == "server" else 0.0015) for i in choices}
    crash_db = folder / "crash.db"
    shutil.copy(start_db, crash_db)
    tag = secrets.token_hex(4)
    crash_prefix, clean_prefix = f"crashw-{tag}:", f"cleanw-{tag}:"
    stream_name, group = f"crashw-{tag}:events", "aggregators"
    bus_uri = f"{redis_url}?stream={stream_name}&group={group}"
    online = _online_uri(redis_url, crash_prefix)
    server = BusServer(folder, f"sqlite:///{crash_db}", artifacts, online, secrets.token_urlsafe(12), bus_uri)
    worker = WorkerProc(folder, bus_uri, online, f"sqlite:///{crash_db}")
    server_kills = {i: d for i, d in delays.items() if victims[i] == "server"}
    worker_kills = {i: d for i, d in delays.items() if victims[i] == "worker"}
    t0 = time.perf_counter()
    try:
        worker.start()
        server.start()
        acked, retried, after_commit = stream(
            server, batches, server_kills, on_batch=lambda i: _kill_worker_later(worker, worker_kills.get(i))
        )
        server.stop()
        drain_s = worker.drain(redis_url, stream_name, group)
        seconds = time.perf_counter() - t0
        published = _stream_len(redis_url, stream_name)
    finally:
        server.stop()
        worker.stop()
    try:
        clean_uri = clean_run(folder, start_db, artifacts, redis_url, clean_prefix, batches)
        crash_log, clean_log = _log_of(f"sqlite:///{crash_db}"), _log_of(clean_uri)
        agg_crash, agg_clean = _dump_aggregates(redis_url, crash_prefix), _dump_aggregates(redis_url, clean_prefix)
        on_crash, on_clean = _online(redis_url, crash_prefix), _online(redis_url, clean_prefix)
        anons = sorted({str(e["anonymous_id"]) for e in events if e.get("anonymous_id")})
        sample = random.Random(seed + 1).sample(anons, min(20, len(anons)))
        slates_crash = _slates(f"sqlite:///{crash_db}", redis_url, crash_prefix, artifacts, sample)
        slates_clean = _slates(clean_uri, redis_url, clean_prefix, artifacts, sample)
        sessions_crash, sessions_clean = _sessions_of(f"sqlite:///{crash_db}"), _sessions_of(clean_uri)
    finally:
        _drop_prefixes(redis_url, (crash_prefix, clean_prefix))
        _delete_stream(redis_url, stream_name)
    markers = "agg:applied:"
    applied_ids = {k[len(markers) :] for k in agg_crash if k.startswith(markers)}
    plain_crash = {k: v for k, v in agg_crash.items() if not k.startswith(markers) and k != "agg:trend"}
    plain_clean = {k: v for k, v in agg_clean.items() if not k.startswith(markers) and k != "agg:trend"}
    agg_diff = sum(
        len(set(a) ^ set(b)) + sum(a[m] != b[m] for m in set(a) & set(b))
        if isinstance(a, dict) and isinstance(b, dict)
        else int(a != b)
        for k in set(plain_crash) | set(plain_clean)
        for a, b in [(plain_crash.get(k, {}), plain_clean.get(k, {}))]
    )
    trend_diff, trend_max = _trend_compare(agg_crash.get("agg:trend", {}), agg_clean.get("agg:trend", {}))
    return WorkerCrashResult(
        seed=seed,
        events=len(events),
        batch=batch,
        server_kills=len(server.restarts) - 1,
        worker_kills=worker.kills,
        worker_kills_holding=worker.kills_holding,
        retried_batches=retried,
        retried_after_commit=after_commit,
        acknowledged=len(acked),
        stored=sum(1 for e in acked if e in crash_log),
        missing=len(acked - set(crash_log)),
        duplicate_keys=sum(len(v) - 1 for v in crash_log.values()),
        payload_diff=_diff(crash_log, clean_log),
        sessions_diff=_diff(sessions_crash, sessions_clean),
        published=published,
        applied=int(agg_crash.get("agg:n", 0)),
        agg_missing=len(acked - applied_ids),
        agg_extra=len(applied_ids - acked),
        agg_keys=len(agg_clean),
        agg_diff=agg_diff,
        trend_diff=trend_diff,
        trend_max_rel=float(f"{trend_max:.2g}"),
        online_keys=len(on_clean),
        online_diff=_diff(on_crash, on_clean),
        slates_compared=len(sample),
        slates_diff=sum(a != b for a, b in zip(slates_crash, slates_clean, strict=True)),
        seconds=round(seconds, 1),
        drain_s=round(drain_s, 1),
    )


def _kill_worker_later(worker: WorkerProc, delay: float | None) -> threading.Thread | None:
    """From the moment the batch goes out, wait (up to 1 s) until the worker holds delivered, unacked
    entries, then ``delay`` more, then SIGKILL it: the kill lands while it decodes, applies or acks."""
    if delay is None:
        return None

    def kill() -> None:
        deadline = time.monotonic() + 1.0
        while worker.bus.pending() == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(delay)
        worker.kill_and_restart()

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def _stream_len(redis_url: str, stream_name: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.xlen(stream_name))
    finally:
        client.close()


def _delete_stream(redis_url: str, stream_name: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(stream_name)
    finally:
        client.close()
