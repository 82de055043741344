"""Sustained load (issue #8, item 3): mixed ingest + recommend + search against ``shopkeep serve`` on loopback.

Client threads pick an operation by weight (default 30% ingest of fresh events, 60% home/pdp
recommendations, 10% search) for ``--minutes``; every answer's latency and status is recorded.
The server's resident memory (VmRSS) is sampled every 2 s. Prints, per minute: requests, errors,
p50/p95/p99 per operation and RSS; then the RSS growth to the end (issue target: <= 10%) measured from
the end of warm-up (``rss_growth_pct``): the 2-minute mark or, if later, the moment the store files have
grown by the SQLite page cache's 64 MiB (the server's RSS grows with the pages it writes until that cache
is full: bounded, not a leak); the growth from the 1- and 2-minute marks is shown too. And the error count
(target: 0).

    .venv/bin/python benchmarks/reliability/soak.py --minutes 10 --threads 4 --record

Needs nothing but the repository (SQLite store, memory:// online state by default; ``--online redis://...``).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from shopkeep.cli.demo_service import free_port, wait_ready
from shopkeep.serving.auth import hash_entries

sys.path.insert(0, str(Path(__file__).parent))
from crash_test import prepare

RESULTS = Path(__file__).with_name("results.md")
#: The memory target is measured from this point (the 2-minute mark) to the end: by then every shopper of
#: the fixed set has had enough events for their bounded online state (recent items, affinities, applied
#: event ids, cart) to reach its caps, so what grows after it is a leak, not warm-up.
WARMUP_S = 120.0
#: SQLite's page cache of the server's store (``PRAGMA cache_size=-65536`` in storage/sqlite.py): RSS grows
#: with the pages written until it is full; the growth is measured from when the store files grew by this much.
PAGE_CACHE_MIB = 64.0
QUERIES = ("moisturizer for dry skin", "vegan lipstick under $20", "fragrance free cleanser", "running shoes",
           "waterproof mascara", "gluten free snacks", "organic shampoo", "spf 50 sunscreen", "red dress", "serum")


@dataclass(frozen=True)
class Sample:
    """One answered (or failed) request."""

    t: float
    op: str
    ms: float
    ok: bool


def start(folder: Path, uri: str, artifacts: Path, online: str, key: str,
          encoder: str, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """``shopkeep serve`` with one key (ingest+read), the chosen search encoder and ``workers`` workers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")}
    env.update(PYTHONUNBUFFERED="1", SHOPKEEP_SERVING__API_KEYS=hash_entries(f"{key}:ingest+read+search"),
               SHOPKEEP_SEARCH_ENCODER=encoder)
    cmd = [sys.executable, "-m", "shopkeep.cli.main", "serve", "--store", uri, "--artifacts", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--online", online]
    proc = subprocess.Popen(cmd, env=env, stdout=(folder / "server.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, 300.0, proc)
    return proc, base


def rss_mb(pid: int) -> float:
    """Resident set size of a process and its descendants (uvicorn's workers) in MiB (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:  # a process that just ended
            continue
    return total if total else float("nan")


class Load:
    """The client threads and what they measured."""

    def __init__(self, base: str, key: str, items: Sequence[str], anons: Sequence[str], weights: dict[str, float],
                 seed: int) -> None:
        self.base, self.key, self.items, self.anons, self.weights = base, key, items, anons, weights
        self.seed = seed
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def request(self, client: httpx.Client, rng: random.Random) -> tuple[str, bool]:
        op = rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        anon = rng.choice(self.anons)
        if op == "ingest":
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            events = [{"event_id": f"soak-{secrets.token_hex(8)}", "type": rng.choice(("view", "view", "add_to_cart")),
                       "anonymous_id": anon, "item_id": rng.choice(self.items), "timestamp": now}
                      for _ in range(rng.randint(1, 20))]
            r = client.post("/v1/events", json={"events": events})
            return op, r.status_code == 200 and r.json()["rejected"] == 0
        if op == "recommend":
            params: dict[str, Any] = {"anonymous_id": anon, "k": 10}
            if rng.random() < 0.5:
                params.update(surface="pdp", item_id=rng.choice(self.items))
            return op, client.get("/v1/recommendations", params=params).status_code == 200
        r = client.post("/v1/search", json={"query": rng.choice(QUERIES), "anonymous_id": anon, "k": 10})
        return op, r.status_code == 200

    def worker(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        with httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=30.0) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    op, ok = self.request(client, rng)
                except httpx.HTTPError:
                    op, ok = "error", False
                end = time.perf_counter()
                with self.lock:
                    self.samples.append(Sample(end - self.t0, op, (end - start) * 1000, ok))


def report(samples: list[Sample], rss: list[tuple[float, float]], minutes: float, console: Console,
           db: Sequence[tuple[float, float]] = ()) -> dict[str, Any]:
    """The per-minute table; returns the summary figures (``db``: (s, MiB of the store files) samples)."""
    by_minute: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_minute[int(s.t // 60)].append(s)
    table = Table(title="soak: per minute (latency ms)")
    for col in ("min", "requests", "errors", "ingest p50/p95/p99", "recommend p50/p95/p99", "search p50/p95/p99",
                "RSS MiB"):
        table.add_column(col, justify="right")
    for minute in sorted(by_minute):
        rows = by_minute[minute]
        cells = []
        for op in ("ingest", "recommend", "search"):
            ms = np.array([s.ms for s in rows if s.op == op and s.ok])
            cells.append("/".join(f"{np.percentile(ms, q):.1f}" for q in (50, 95, 99)) if ms.size else "-")
        rss_at = [m for t, m in rss if minute * 60 <= t < (minute + 1) * 60]
        table.add_row(str(minute + 1), str(len(rows)), str(sum(not s.ok for s in rows)), *cells,
                      f"{max(rss_at):.0f}" if rss_at else "-")
    console.print(table)
    def growth_from(t0: float) -> tuple[float, float]:
        """(RSS at the first sample at or after ``t0`` s, % growth from there to the last sample)."""
        start = [m for t, m in rss if t >= t0] or [m for _, m in rss]
        return start[0], (rss[-1][1] / start[0] - 1) * 100

    at_1, growth_1 = growth_from(60.0)
    at_2, growth_2 = growth_from(WARMUP_S)
    full = next((t for t, mib in db if mib - db[0][1] >= PAGE_CACHE_MIB), float("inf")) if db else float("inf")
    at_w, growth_w = growth_from(max(WARMUP_S, full))
    summary = {"minutes": minutes, "requests": len(samples), "errors": sum(not s.ok for s in samples),
               "rps": round(len(samples) / max(1e-9, minutes * 60), 1),
               "rss_1min_mb": round(at_1, 1), "rss_growth_from_1min_pct": round(growth_1, 1),
               "rss_2min_mb": round(at_2, 1), "rss_growth_from_2min_pct": round(growth_2, 1),
               "cache_full_s": round(full) if full != float("inf") else None,
               "rss_warm_mb": round(at_w, 1), "rss_end_mb": round(rss[-1][1], 1), "rss_growth_pct": round(growth_w, 1),
               "store_growth_mb": round(db[-1][1] - db[0][1], 1) if db else None,
               "rss_per_min_mb": "/".join(f"{max(m for t, m in rss if int(t // 60) == i):.0f}"
                                          for i in sorted({int(t // 60) for t, _ in rss}))}
    for op in ("ingest", "recommend", "search"):
        ms = np.array([s.ms for s in samples if s.op == op and s.ok])
        summary[f"{op}_p99_ms"] = round(float(np.percentile(ms, 99)), 1) if ms.size else None
    console.print(summary)
    return summary


def run(minutes: float, threads: int, seed: int, online: str, encoder: str, console: Console,
        workers: int = 1) -> dict[str, Any]:
    """Prepare a store, start the server, load it for ``minutes``, stop it; the summary figures."""
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        folder = Path(tmp)
        db, artifacts, events = prepare(folder, n_events=2000, seed=seed)
        items = sorted({str(e["item_id"]) for e in events if e.get("item_id")})
        anons = sorted({str(e["anonymous_id"]) for e in events if e.get("anonymous_id")})
        key = secrets.token_urlsafe(12)
        proc, base = start(folder, f"sqlite:///{db}", artifacts, online, key, encoder, workers)
        load = Load(base, key, items, anons, {"ingest": 0.3, "recommend": 0.6, "search": 0.1}, seed)
        pool = [threading.Thread(target=load.worker, args=(n,), daemon=True) for n in range(threads)]
        rss: list[tuple[float, float]] = []
        db_mib: list[tuple[float, float]] = []
        try:
            for t in pool:
                t.start()
            end = load.t0 + minutes * 60
            with console.status("soaking ...") as status:
                while time.perf_counter() < end:
                    now = time.perf_counter() - load.t0
                    rss.append((now, rss_mb(proc.pid)))
                    db_mib.append((now, sum(f.stat().st_size for f in folder.glob(f"{db.name}*")) / 2**20))
                    status.update(f"soaking: {len(load.samples)} requests, RSS {rss[-1][1]:.0f} MiB, "
                                  f"{end - time.perf_counter():.0f} s left")
                    time.sleep(2.0)
            load.stop.set()
            for t in pool:
                t.join()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        return report(load.samples, rss, minutes, console, db_mib)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI; exit 1 when there were errors (or RSS grew more than 10% from minute 2 on runs of >= 3 minutes)."""
    p = argparse.ArgumentParser(description="mixed ingest + recommend + search load on loopback")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--online", default="memory://")
    p.add_argument("--encoder", default="hashing", help="search encoder (hashing: no model download)")
    p.add_argument("--workers", type=int, default=1, help="server workers (more than 1 needs --online redis://...)")
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)
    console = Console(width=160)
    summary = run(args.minutes, args.threads, args.seed, args.online, args.encoder, console, args.workers)
    if args.record:
        with RESULTS.open("a") as fh:
            fh.write(f"\n## soak.py --minutes {args.minutes} --threads {args.threads} --workers {args.workers} "
                     f"--online {args.online} "
                     f"({platform.machine()}, {os.cpu_count()} cpu shared with other jobs)\n\n")
            fh.write("| " + " | ".join(summary) + " |\n|" + "---|" * len(summary) + "\n")
            fh.write("| " + " | ".join(str(v) for v in summary.values()) + " |\n")
    bad = summary["errors"] > 0 or (args.minutes >= 3 and summary["rss_growth_pct"] > 10)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
