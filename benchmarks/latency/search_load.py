"""Open-loop HTTP load on ``POST /v1/search`` with the query-embedding cache cold (every query text new).

Builds a SQLite store of ``--items`` synthetic items (reused from ``--store-dir``), starts
``shopkeep serve`` as a subprocess (auth off on loopback) with item vectors from ``--item-encoder``
(default hashing: embedding 100k titles with MiniLM on a 2-core CPU takes hours; the request path costs
the same with either, 384-d vectors) and queries embedded by ``--query-encoder`` (default MiniLM, run
once per request because no text repeats). One warm-up search builds the index (BM25, attribute columns,
HNSW at this size). Then requests are sent at ``--rate``/s whatever the previous ones did; latency
counts from the scheduled send time, so queueing shows. Prints hardware and the 1-minute load average
(the machine is shared; a high load average inflates every figure), and the server's CPU time per
answered request (user + system time of the server process and its children from ``/proc``, over the
load phase, divided by the requests answered): unlike wall-clock latency it hardly moves with the
other jobs on the machine, and ``1000 / (cpu ms per request) * cores`` bounds the rate the server can
carry.

The default client (``--client raw``) is a minimal HTTP/1.1 client on asyncio streams over a pool of
keep-alive connections: it sends the same requests as httpx at about a tenth of its CPU (httpx cost
about 9 ms of CPU per request here, most of a core at 100 req/s, taken from the server it measures on a
2-core machine). ``--client httpx`` keeps the old client. ``--py-spy out.svg`` records a flame graph of
the server during the load phase (py-spy in the venv).

    .venv/bin/python benchmarks/latency/search_load.py --items 100000 --rate 100 --duration 20 \\
        --store-dir .shopkeep/bench-search [--rate 50 --rate 30 ...: more phases on the same server]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from loadgen import RawClient, cpu_seconds, process_tree  # benchmarks/latency/loadgen.py

from shopkeep.catalog import CatalogRepository
from shopkeep.cli.demo_service import free_port, wait_ready
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.models.content import MINILM
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import open_store

HEADS = ["fragrance-free", "vegan", "red", "black", "waterproof", "organic", "cheap", "best rated", "gentle",
         "hydrating", "wide fit", "crimson", "soft", "classic", "matte", "same-day pickup", "unscented", "navy"]
NOUNS = ["moisturizer", "dress", "hiking boots", "sunscreen spf 30", "lipstick", "sneakers", "coffee", "shampoo",
         "jacket", "cleanser for dry skin", "jeans size m", "serum", "body lotion", "running shoes", "tea", "granola"]
TAILS = ["", "under $30", "under $80", "between 20 and 60 dollars", "in stock at store 2", "over 100 ml", "for work",
         "for summer", "gift", "for sensitive skin", "under thirty bucks"]


def queries(n: int, seed: int) -> list[str]:
    """``n`` distinct shopper queries (a numeric suffix keeps them distinct when the combinations run out)."""
    combos = [" ".join(p for p in c if p) for c in itertools.product(HEADS, NOUNS, TAILS)]
    random.Random(seed).shuffle(combos)
    return [combos[i % len(combos)] + ("" if i < len(combos) else f" {i}") for i in range(n)]


def store_for(folder: Path, n_items: int, seed: int) -> str:
    """A SQLite store holding ``n_items`` synthetic items (built once per folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"search-{n_items}-{seed}.db"
    uri = f"sqlite:///{db}"
    if not db.exists():
        items = generate_store(StoreConfig(n_items=n_items, n_shoppers=10, n_days=1, seed=seed)).items
        store = open_store(uri)
        try:
            repo = CatalogRepository(store)
            for start in range(0, len(items), 5000):
                repo.upsert_many(items[start:start + 5000])
        finally:
            store.close()
    return uri


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def open_loop(base: str, texts: list[str], rate: float,
                    client: str) -> tuple[list[float], list[float], Counter[str]]:
    """Latencies from the scheduled time (ms), server-side search times (ms), errors by kind; ``client``:
    ``raw`` (:class:`loadgen.RawClient`) or ``httpx``."""
    lat: list[float] = []
    took: list[float] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    http: Any = RawClient(base, max_connections=64) if client == "raw" else \
        httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits)
    async with http:
        start = time.perf_counter()

        async def one(at: float, n: int, text: str) -> None:
            try:
                r = await http.post("/v1/search", json={"query": text, "anonymous_id": f"a{n % 500}", "k": 10,
                                                        "explain": True})
            except (httpx.HTTPError, ConnectionError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                return
            lat.append((time.perf_counter() - at) * 1000)
            if r.status_code != 200:
                errors[f"HTTP {r.status_code}"] += 1
            else:
                took.append(float(r.json().get("explain", {}).get("took_ms", float("nan"))))

        tasks = []
        for n, text in enumerate(texts):
            at = start + n / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(at, n, text)))
        await asyncio.gather(*tasks)
    return lat, took, errors


@dataclass
class Phase:
    """One load phase at one rate: what the load generator and ``/proc`` saw."""

    rate: float
    sent: int
    lat: list[float]
    took: list[float]
    errors: Counter[str]
    cpu_s: float
    own_s: float
    wall_s: float
    load: tuple[float, float]


def run_phase(base: str, pid: int, texts: list[str], rate: float, client: str, spy_to: Path | None,
              duration: float) -> Phase:
    """Send ``texts`` at ``rate``/s and measure latency, the server's CPU time and the load average."""
    load_before = os.getloadavg()[0]
    spy = None
    if spy_to is not None:
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                                "--duration", str(int(duration) + 2), "--rate", "200", "--threads",
                                "--nonblocking", "--output", str(spy_to)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    pids = process_tree(pid)
    cpu_before, own_before, wall_before = cpu_seconds(pids), time.process_time(), time.perf_counter()
    lat, took, errors = asyncio.run(open_loop(base, texts, rate, client))
    cpu_s, own_s = cpu_seconds(pids) - cpu_before, time.process_time() - own_before
    wall_s = time.perf_counter() - wall_before
    if spy is not None:
        spy.wait(timeout=120)
    return Phase(rate, len(texts), lat, took, errors, cpu_s, own_s, wall_s, (load_before, os.getloadavg()[0]))


def phase_rows(ph: Phase, client: str, server_env: list[str]) -> list[tuple[str, str]]:
    """The printed rows of one phase."""
    answered = max(len(ph.took), 1)
    env = "; server env " + " ".join(server_env) if server_env else ""
    return [
        ("load", f"{ph.sent} requests at {ph.rate:.0f}/s open loop ({client} client{env}); 1-min load average "
                 f"{ph.load[0]:.1f} before, {ph.load[1]:.1f} after"),
        ("POST /v1/search", f"p50 {_pct(ph.lat, 0.5):.1f} ms, p95 {_pct(ph.lat, 0.95):.1f} ms, "
                            f"p99 {_pct(ph.lat, 0.99):.1f} ms from schedule; errors {dict(ph.errors) or 0}"),
        ("server CPU", f"{ph.cpu_s * 1000 / answered:.1f} ms per answered request ({ph.cpu_s:.1f} s user+sys "
                       f"over {ph.wall_s:.1f} s for {len(ph.took)} answers: {ph.cpu_s / ph.wall_s:.2f} of "
                       f"{os.cpu_count()} cores); load generator {ph.own_s * 1000 / max(len(ph.lat), 1):.1f} ms "
                       f"per request"),
        ("server search", f"p50 {_pct(ph.took, 0.5):.1f} ms, p95 {_pct(ph.took, 0.95):.1f} ms (explain.took_ms: "
                          f"after the query embedding, parse to hits)"),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--rate", type=float, action="append", default=None,
                   help="requests per second (repeat for several phases on one server; default 100)")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--item-encoder", default="hashing", choices=[MINILM, "hashing"])
    p.add_argument("--query-encoder", default=MINILM, choices=[MINILM, "hashing"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store-dir", type=Path, default=None, help="keep the built store here (default: a temp dir)")
    p.add_argument("--client", default="raw", choices=["raw", "httpx"], help="load generator's HTTP client")
    p.add_argument("--py-spy", type=Path, default=None, help="record a py-spy flame graph (svg) of the first phase")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the server (e.g. OPENBLAS_NUM_THREADS=1); repeatable")
    args = p.parse_args()
    rates = args.rate or [100.0]
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="shopkeep-search-") as tmp:
        t0 = time.perf_counter()
        uri = store_for(args.store_dir or Path(tmp), args.items, args.seed)
        print(f"store ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")}
        env.update(PYTHONUNBUFFERED="1", SHOPKEEP_SEARCH_ENCODER=args.item_encoder,
                   SHOPKEEP_SEARCH_QUERY_ENCODER=args.query_encoder)
        env.update(dict(kv.split("=", 1) for kv in args.server_env))
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed in finally
        proc = subprocess.Popen([sys.executable, "-m", "shopkeep.cli.main", "serve", "--store", uri, "--host",
                                 "127.0.0.1", "--port", str(port), "--no-auth", "--watch", "0"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, 900.0, proc, workers=args.workers)
            t1 = time.perf_counter()
            warm = httpx.post(f"{base}/v1/search", json={"query": "warm up the index", "anonymous_id": "w"},
                              timeout=3600.0)
            warm.raise_for_status()
            index_s = time.perf_counter() - t1
            offset = 0
            for n, rate in enumerate(rates):
                count = int(rate * args.duration)
                # distinct texts across phases too: the embedding cache stays cold
                texts = queries(offset + count, args.seed)[offset:]
                offset += count
                phases.append(run_phase(base, proc.pid, texts, rate, args.client,
                                        args.py_spy if n == 0 else None, args.duration))
                print(f"phase {n + 1}/{len(rates)} done ({rate:.0f}/s)", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
            tail = (Path(tmp) / "server.log").read_text(errors="replace").splitlines()[-10:]
            if any("Traceback" in line or "Error" in line for line in tail):
                print("server log (tail):", *tail, sep="\n", file=sys.stderr)
    rows = [
        ("hardware", hardware_summary() + " (load generator on the same machine)"),
        ("service", f"{args.items:,} items, 1 worker, SQLite store; item vectors {args.item_encoder}, "
                    f"queries {args.query_encoder} (cold: every query text new)"),
        ("index build", f"{index_s:.1f} s (first search: BM25 + attribute columns + vector index)"),
    ]
    for ph in phases:
        rows += phase_rows(ph, args.client, args.server_env)
    width = max(len(r[0]) for r in rows)
    print(f"shopkeep search_load ({datetime.now(UTC):%Y-%m-%d})")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
