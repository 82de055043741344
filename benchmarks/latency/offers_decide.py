"""Latency of ``POST /v1/offers/decide``: open loop over HTTP against a real server process, and in process.

Setup: a randomized logging run of the frozen ``responsive`` simulated world is written to a fresh SQLite
store as production would store it (catalog, decision records, offer events), ``shopkeep offers fit``
learns the elasticity prior and the uplift model from it, and ``shopkeep serve`` (1 worker, auth off on
loopback) serves that model. Every decision is recorded in the audit trail (a SQLite write per request).

1. HTTP, open loop: requests are sent at their scheduled times (``--rate`` per second for ``--duration``
   seconds) whatever earlier ones did; latency counts from the scheduled time, so queueing shows.
2. In process: the same stack and audit trail called directly (``AuditTrail.decide``), one at a time.

Usage::

    .venv/bin/python benchmarks/latency/offers_decide.py --rate 100 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from shopkeep.cli.demo_service import free_port, start_server, wait_ready
from shopkeep.cli.main import main as cli
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.offers.audit import AuditTrail
from shopkeep.offers.decide import DecisionStack
from shopkeep.offers.simlog import log_to_store
from shopkeep.offers.simulation import default_rules
from shopkeep.offers.uplift import UpliftModel
from shopkeep.serving.routes_offers import parse_request
from shopkeep.simulate.pricing import CONFIGS, PriceWorld
from shopkeep.storage import open_store

TARGET_P95_MS = 10.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _body(rng: random.Random, n: int) -> dict[str, Any]:
    price = rng.randrange(800, 9000)
    item = rng.randrange(60)
    return {"shopper_key": f"psk-bench-{rng.randrange(5000)}", "loyalty_member": rng.random() < 0.4,
            "segment": "member", "channel": "web",
            "item": {"item_id": f"item-{item}", "category": f"cat-{item % 5}",
                     "price": {"amount": price, "currency": "USD"},
                     "cost": {"amount": int(price * rng.uniform(0.45, 0.7)), "currency": "USD"}},
            "complement_price": {"amount": rng.randrange(800, 9000), "currency": "USD"},
            "features": {"loyalty_member": 1.0, "deal_affinity": rng.gauss(3, 2), "engagement": rng.gauss(-1.6, 1),
                         "log_price": math.log(price / 100),
                         "offers_seen": float(n % 4)},
            "ship_cost": {"amount": 599, "currency": "USD"}}


async def open_loop(base: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms from each request's scheduled send time) and the error count."""
    rng = random.Random(7)
    latencies: list[float] = []
    errors = [0]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits) as client:
        for n in range(50):  # warm-up
            await client.post("/v1/offers/decide", json=_body(rng, n))

        async def one(at: float, body: dict[str, Any]) -> None:
            try:
                r = await client.post("/v1/offers/decide", json=body)
                if r.status_code != 200:
                    errors[0] += 1
                    return
            except httpx.HTTPError as exc:
                print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
                errors[0] += 1
                return
            latencies.append((time.perf_counter() - at) * 1000)

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            at = start + n / rate
            body = _body(rng, n)
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(at, body)))
        await asyncio.gather(*tasks)
    return latencies, errors[0]


def in_process(uri: str, n: int) -> list[float]:
    """ms per decision: parse + score + guardrails + choose + audit write, called directly."""
    store = open_store(uri)
    try:
        trail = AuditTrail(store)
        stack = DecisionStack(UpliftModel.latest(store), default_rules())
        rng = random.Random(11)
        out = []
        for i in range(n):
            body = _body(rng, i)
            t0 = time.perf_counter()
            trail.decide(stack, parse_request(body))
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=100.0, help="decisions per second (open loop)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    p.add_argument("--in-process", type=int, default=2000, help="in-process decisions timed")
    p.add_argument("--log-shoppers", type=int, default=4000, help="shoppers in the randomized log the model learns")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="shopkeep-offers-bench-") as tmp:
        folder = Path(tmp)
        uri = f"sqlite:///{folder}/shop.db"
        store = open_store(uri)
        world = PriceWorld.create(CONFIGS["responsive"], 1, n_shoppers=args.log_shoppers)
        log_to_store(world, world.log_randomized(rng_seed=2), store)
        store.close()
        if cli(["offers", "fit", "--store", uri, "--json"]) != 0:
            return 1
        local = in_process(uri, args.in_process)
        port = free_port()
        proc = start_server(uri, folder / "artifacts", port, keys=None, log_file=folder / "server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, 300.0, proc)
            load_before = os.getloadavg()
            lat, errors = asyncio.run(open_loop(base, args.rate, args.duration))
            load_after = os.getloadavg()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            tail = (folder / "server.log").read_text(errors="replace").splitlines()[-15:]
            if any("Traceback" in line for line in tail):
                print("server log (tail):", *tail, sep="\n", file=sys.stderr)
    p95 = _pct(lat, 0.95)
    rows = [
        ("hardware", hardware_summary() + " (load generator on the same machine)"),
        ("load average", f"before {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, "
                         f"after {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} (1/5/15 min)"),
        ("service", "shopkeep serve, 1 worker, SQLite store, audit record written per decision, 9 actions scored"),
        ("HTTP open loop", f"{args.rate:.0f}/s target for {args.duration:.0f} s: p50 {_pct(lat, 0.5):.2f} ms, "
                           f"p95 {p95:.2f} ms, p99 {_pct(lat, 0.99):.2f} ms, {len(lat) / args.duration:.0f}/s done, "
                           f"{errors} errors"),
        ("in process", f"{len(local)} decisions: p50 {_pct(local, 0.5):.2f} ms, p95 {_pct(local, 0.95):.2f} ms, "
                       f"p99 {_pct(local, 0.99):.2f} ms"),
        ("target", f"p95 <= {TARGET_P95_MS:.0f} ms over HTTP: {'met' if p95 <= TARGET_P95_MS else 'NOT met'}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"shopkeep offers_decide ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
