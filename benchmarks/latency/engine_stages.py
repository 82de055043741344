"""Where a slate's CPU goes: per-stage CPU time of ``Engine.recommend`` in one process, no HTTP.

Opens an :class:`~shopkeep.pipeline.engine.Engine` on a store built by ``serve_load.py --store-dir``
(or builds one), gives ``--sessions`` sessions a few events each, then serves ``--requests`` home slates
for random sessions (one new view every ``--interleave`` requests, as the HTTP load test does) and
prints the thread CPU time per slate of each stage: context (online-state read), eligibility mask,
retrieval per source and fusion, ranking, policy, exploration, fit variants, slate record.

Usage::

    .venv/bin/python benchmarks/latency/engine_stages.py --items 100000 --store-dir /tmp/sk4/bench \\
        --online 'redis://127.0.0.1:6379/15?prefix=stages:'
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serve_load import _event, _reuse  # benchmarks/latency/serve_load.py

from shopkeep.config import Config
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.artifacts import latest_artifacts, load_artifacts
from shopkeep.pipeline.engine import Engine
from shopkeep.storage import open_online_state, open_store

#: CPU nanoseconds per stage name, summed over the measured requests.
_SPENT: dict[str, int] = defaultdict(int)
_DEPTH = [0]


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that adds its thread CPU time to ``_SPENT[name]`` (outermost timed call only counts once
    per name; nested stages are reported separately and are included in their parent)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            _SPENT[name] += time.thread_time_ns() - t0

    return wrapper


def _patch(obj: Any, attr: str, name: str) -> None:
    setattr(obj, attr, _timed(name, getattr(obj, attr)))


def instrument(engine: Engine) -> None:
    """Wrap the engine's stages (instance attributes, so other engines are untouched)."""
    b = engine._bindings  # a benchmark looks inside on purpose
    _patch(engine.features, "context", "context (online state)")
    _patch(b.policy, "eligibility", "eligibility mask")
    _patch(b.policy, "apply", "policy rules")
    _patch(b.ranker, "rank_many", "ranking")
    _patch(engine.explorer, "explore", "exploration")
    _patch(engine, "_fit_variants", "fit variants")
    _patch(engine, "_record", "slate record")
    _patch(engine, "_finish", "finish (policy+explore+fit+items)")
    if engine.slate_log is not None:
        _patch(engine.slate_log, "add", "slate log add")
    retriever = b.sources.retriever("home")
    _patch(retriever, "retrieve_arrays", "retrieval (all sources + fusion)")
    for source in retriever.sources:
        _patch(source, "retrieve_arrays", f"  source {source.name}")
    _patch(engine, "ingest", "ingest (1 event)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--store-dir", type=Path, required=True)
    p.add_argument("--online", default="memory://")
    p.add_argument("--sessions", type=int, default=5000)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--interleave", type=int, default=4)
    p.add_argument("--retrieval-k", type=int, default=500)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    uri, artifacts_root, items = _reuse(args.store_dir, args.items, args.seed)
    found = latest_artifacts(artifacts_root)
    store = open_store(uri)
    online = open_online_state(args.online)
    engine = Engine(store, online, Config(), artifacts=load_artifacts(found) if found else None,
                    retrieval_k=args.retrieval_k)
    rng = random.Random(args.seed)
    try:
        for start in range(0, args.sessions, 500):  # a few events per session before measuring
            engine.ingest([_event(s, rng.choice(items)) for s in range(start, min(start + 500, args.sessions))
                           for _ in range(3)])
        for _ in range(200):  # warm-up
            s = rng.randrange(args.sessions)
            engine.recommend(ContextRequest(surface="home", anonymous_id=f"bench-{s}", session_id=f"bench-s{s}", k=10))
        instrument(engine)
        per_request: list[float] = []
        t_all = time.process_time()
        for n in range(args.requests):
            s = rng.randrange(args.sessions)
            if args.interleave and n % args.interleave == 0:
                engine.ingest([_event(s, rng.choice(items))])
            t0 = time.thread_time_ns()
            engine.recommend(ContextRequest(surface="home", anonymous_id=f"bench-{s}", session_id=f"bench-s{s}",
                                            k=10))
            per_request.append((time.thread_time_ns() - t0) / 1e6)
        total = time.process_time() - t_all
        engine.flush()
    finally:
        engine.close()
    n = args.requests
    print(f"# Engine stages, {args.items:,} items, online {args.online.split('?')[0]}, retrieval k "
          f"{args.retrieval_k}, {n:,} home slates\n\n{hardware_summary()}; load {os.getloadavg()[0]:.1f}\n")
    print(f"recommend(): median {statistics.median(per_request):.2f} ms CPU, mean "
          f"{statistics.fmean(per_request):.2f} ms; whole loop incl. ingest {total / n * 1000:.2f} ms per slate\n")
    print("| stage | CPU ms per slate |\n|---|---|")
    for name, ns in sorted(_SPENT.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {ns / n / 1e6:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
