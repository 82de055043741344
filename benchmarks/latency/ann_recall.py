"""HNSW recall@10 and query latency against exact search, with trained item vectors and real session queries.

What it does, exactly:

1. Trains the two-tower model (``shopkeep.models.two_tower.TwoTower``, ids only: Diginetica has no titles
   or attributes, so ``use_titles=False, use_attributes=False``; ``d`` = ``--d``, seeded, at most
   ``--train-seconds`` of training, no validation) on the Diginetica SR-GNN train sessions, and exports
   its item vectors (one per item, 43k items; inner product is the model's score).
2. Queries: the session-tower vectors of ``--queries`` test prefixes (test_prefix_label.tsv) drawn
   with ``--seed`` — real sessions, encoded exactly as serving encodes them (``user_vectors``).
3. Extends the catalog to each size in ``--sizes`` with vectors "from the same distribution": each
   extra vector is a real item vector ``v`` (drawn uniformly) plus Gaussian noise ``bandwidth * s * z``
   (``s``: the per-dimension standard deviation of the real vectors, ``z`` ~ N(0, I)), rescaled to
   ``v``'s norm — a sample of a Gaussian kernel density estimate of the trained vectors. The real
   items are always part of the catalog.
4. Ground truth: exact inner-product top-10 over the whole catalog (:class:`shopkeep.index.ExactIndex`).
   HNSW (:class:`shopkeep.index.ann.HNSWIndex`, inner product, ``--m``, ``--ef-construction``,
   seed 0) answers the same queries at each ``--ef-search``; recall@10 = |HNSW top-10 ∩ exact top-10| / 10,
   averaged over queries. One more row per size searches under a random 50% eligibility mask (the
   filtered graph path) against exact search under the same mask.
5. Latency: per query, one query at a time (batch of 1), median and p95 over the queries.

The trained vectors and queries are kept in ``--work-dir`` (outside the repository) and reused.

Usage::

    nice .venv/bin/python benchmarks/latency/ann_recall.py --sizes 100000 1000000 --queries 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from shopkeep.evaluation.environment import hardware_summary
from shopkeep.index import ExactIndex, SearchResult

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "diginetica-cikm16" / "srgnn_split"


def trained_vectors(data: Path, work: Path, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """(item vectors, query vectors, how they were made), cached in ``work``."""
    cache = work / f"diginetica-two-tower-d{args.d}-s{args.seed}-t{args.train_seconds:.0f}-q{args.queries}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as f:
            return f["items"], f["queries"], str(f["note"])
    import torch

    from shopkeep.evaluation.datasets import load_sessions
    from shopkeep.models.base import Interactions
    from shopkeep.models.two_tower import TwoTower

    torch.manual_seed(args.seed)
    ds = load_sessions(data)
    train = Interactions(tuple(ds.sequences), ds.n_items)
    started = time.perf_counter()
    model = TwoTower(d=args.d, use_titles=False, use_attributes=False, max_train_seconds=args.train_seconds,
                     epochs_without_validation=args.epochs, epoch_fraction=args.epoch_fraction, max_len=20,
                     cache_dir=None, seed=args.seed, num_threads=2).fit(train)
    took = time.perf_counter() - started
    _, items = model.export_item_vectors()
    rng = np.random.default_rng(args.seed)
    assert ds.test_prefixes is not None
    pick = rng.choice(len(ds.test_prefixes), size=min(args.queries, len(ds.test_prefixes)), replace=False)
    queries = model.user_vectors([ds.test_prefixes[int(i)] for i in pick])
    note = (f"two-tower (ids only, d={args.d}, seed {args.seed}) trained {took:.0f} s on {len(ds.sequences):,} "
            f"Diginetica train sessions, {ds.n_items:,} items, vector dim {items.shape[1]}; "
            f"{len(queries):,} test-prefix session vectors as queries")
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, items=items.astype(np.float32), queries=queries.astype(np.float32), note=np.array(note))
    return items.astype(np.float32), queries.astype(np.float32), note


def extend(items: np.ndarray, size: int, bandwidth: float, seed: int) -> np.ndarray:
    """``items`` plus ``size - len(items)`` samples of their Gaussian KDE (see the module docstring)."""
    extra = size - len(items)
    if extra <= 0:
        return items[:size]
    rng = np.random.default_rng(seed)
    base = items[rng.integers(0, len(items), size=extra)]
    noisy = base + bandwidth * items.std(axis=0) * rng.standard_normal(base.shape).astype(np.float32)
    scale = np.linalg.norm(base, axis=1, keepdims=True) / np.maximum(np.linalg.norm(noisy, axis=1, keepdims=True),
                                                                      1e-12)
    return np.vstack([items, (noisy * scale).astype(np.float32)])


def timed(search: Callable[[np.ndarray], SearchResult],
          queries: np.ndarray) -> tuple[list[tuple[str, ...]], list[float]]:
    """Top ids and ms per query, one query at a time."""
    ids, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        res = search(q[None, :])
        ms.append((time.perf_counter() - t0) * 1000)
        ids.append(res.ids[0])
    return ids, ms


def recall(found: list[tuple[str, ...]], truth: list[tuple[str, ...]]) -> float:
    """Mean |found ∩ truth| / |truth| per query."""
    return float(np.mean([len(set(f) & set(t)) / max(len(t), 1) for f, t in zip(found, truth, strict=True)]))


def _p95(ms: list[float]) -> float:
    return sorted(ms)[min(len(ms) - 1, int(0.95 * len(ms)))]


def run_size(size: int, items: np.ndarray, queries: np.ndarray, args: argparse.Namespace,
             progress: Progress) -> list[dict[str, Any]]:
    """Rows of the table for one catalog size."""
    from shopkeep.index.ann import HNSWIndex

    vectors = extend(items, size, args.bandwidth, args.seed + size)
    ids = [f"i{n}" for n in range(size)]
    exact = ExactIndex(vectors.shape[1], "ip")
    exact.add(ids, vectors)
    task = progress.add_task(f"HNSW build, {size:,} items", total=None)
    t0 = time.perf_counter()
    hnsw = HNSWIndex(vectors.shape[1], "ip", m=args.m, ef_construction=args.ef_construction, seed=0,
                     threads=args.threads)
    for lo in range(0, size, 50_000):
        hnsw.add(ids[lo:lo + 50_000], vectors[lo:lo + 50_000])
        progress.update(task, description=f"HNSW build, {min(lo + 50_000, size):,}/{size:,} items")
    build_s = time.perf_counter() - t0
    progress.remove_task(task)
    truth, exact_ms = timed(lambda q: exact.search(q, 10), queries)
    rows = [{"size": size, "index": "exact", "ef": "-", "recall": 1.0, "p50": statistics.median(exact_ms),
             "p95": _p95(exact_ms), "build": 0.0}]
    for ef in args.ef_search:
        hnsw.ef_search = ef
        found, ms = timed(lambda q: hnsw.search(q, 10), queries)
        rows.append({"size": size, "index": "hnsw", "ef": ef, "recall": recall(found, truth),
                     "p50": statistics.median(ms), "p95": _p95(ms), "build": build_s})
    mask = np.random.default_rng(args.seed).random(size) < 0.5
    hnsw.ef_search = args.ef_search[-1]
    truth_m, exact_m_ms = timed(lambda q: exact.search(q, 10, mask=mask), queries)
    found_m, ms_m = timed(lambda q: hnsw.search(q, 10, mask=mask), queries)
    rows.append({"size": size, "index": "exact, 50% mask", "ef": "-", "recall": 1.0,
                 "p50": statistics.median(exact_m_ms), "p95": _p95(exact_m_ms), "build": 0.0})
    rows.append({"size": size, "index": "hnsw, 50% mask", "ef": hnsw.ef_search, "recall": recall(found_m, truth_m),
                 "p50": statistics.median(ms_m), "p95": _p95(ms_m), "build": build_s})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/shopkeep-ann-bench"))
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--train-seconds", type=float, default=240.0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--epoch-fraction", type=float, default=0.5)
    p.add_argument("--bandwidth", type=float, default=0.3)
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--threads", type=int, default=None, help="faiss build threads (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--use-queries", type=int, default=None, help="use only the first N cached queries")
    args = p.parse_args()
    if not args.data.is_dir():
        print(f"no Diginetica split at {args.data}", file=sys.stderr)
        return 2
    import faiss

    with Progress(transient=True) as progress:
        task = progress.add_task("training the two-tower model on Diginetica (or reading the cache)", total=None)
        items, queries, note = trained_vectors(args.data, args.work_dir, args)
        if args.use_queries is not None:
            queries = queries[: args.use_queries]
            note += f" (the first {len(queries):,} used)"
        progress.remove_task(task)
        rows = [r for size in args.sizes for r in run_size(size, items, queries, args, progress)]
    print(f"shopkeep ann_recall ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"hardware: {hardware_summary()}; faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads")
    print(f"vectors: {note}; extended by KDE samples (bandwidth {args.bandwidth} x per-dim std)")
    print(f"HNSW: M={args.m}, efConstruction={args.ef_construction}, inner product, seed 0; recall@10 vs exact top-10;"
          f" latency: one query per call, {len(queries):,} queries")
    print()
    print("| items | index | efSearch | recall@10 | p50 ms | p95 ms | build s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']:,} | {r['index']} | {r['ef']} | {r['recall']:.4f} | {r['p50']:.3f} | {r['p95']:.3f} | "
              f"{r['build']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
