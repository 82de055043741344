"""Pick the vector index by size: exact scoring below ``exact_below`` items, HNSW (faiss) from there.

Exact top-k costs ``n_items * dim`` multiply-adds per query and is always right; HNSW costs roughly
``ef_search * m * dim * log(n_items)`` but is approximate and needs faiss. Both implement
:class:`~shopkeep.index.vector.VectorIndex`, so callers never branch on the kind.

>>> import numpy as np
>>> index = build_index(["a", "b"], np.eye(2, dtype=np.float32), metric="ip")
>>> type(index).__name__, index.search(np.array([[0.0, 1.0]], dtype=np.float32), k=1).ids
('ExactIndex', (('b',),))
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shopkeep.errors import ValidationError
from shopkeep.index.vector import ExactIndex, FloatArray, VectorIndex, read_meta

__all__ = ["EXACT_BELOW", "build_index", "cached_index", "default_ef_search", "load_index", "make_index"]

#: Default size from which :func:`make_index` answers an HNSW index.
EXACT_BELOW = 50_000


def default_ef_search(n_items: int) -> int:
    """The HNSW search beam for a catalog of ``n_items`` when none is given: wider as the graph grows.

    Measured (benchmarks/latency/results/ann_recall.md: two-tower item vectors, real session queries,
    M=16): recall@10 0.963 at 256 on 100k items and 0.969 at 1024 on 1M (0.914 at 512); the steps keep
    recall@10 near 0.96 at a fraction of exact search's cost (0.25 vs 8.0 ms at 100k, 5.3 vs 32.5 ms at 1M).

    >>> default_ef_search(100_000), default_ef_search(400_000), default_ef_search(1_000_000)
    (256, 512, 1024)
    """
    if n_items <= 200_000:
        return 256
    if n_items <= 500_000:
        return 512
    return 1024


def make_index(dim: int, n_items: int, metric: str = "ip", *, exact_below: int = EXACT_BELOW,
               **hnsw: Any) -> VectorIndex:
    """An empty index for about ``n_items`` vectors: :class:`ExactIndex` when ``n_items < exact_below``,
    else :class:`~shopkeep.index.ann.HNSWIndex` with the ``hnsw`` keyword parameters (``ef_search``
    defaults to :func:`default_ef_search` of ``n_items``)."""
    if n_items < exact_below:
        return ExactIndex(dim, metric=metric)
    from shopkeep.index.ann import HNSWIndex  # faiss only when it is needed

    hnsw.setdefault("ef_search", default_ef_search(n_items))
    return HNSWIndex(dim, metric, **hnsw)


def build_index(ids: Sequence[str], vectors: FloatArray, metric: str = "ip", *, exact_below: int = EXACT_BELOW,
                **hnsw: Any) -> VectorIndex:
    """:func:`make_index` for ``len(ids)`` vectors, filled with them."""
    index = make_index(int(vectors.shape[1]), len(ids), metric, exact_below=exact_below, **hnsw)
    index.upsert(list(ids), vectors)
    return index


def load_index(path: Path) -> VectorIndex:
    """Read an index saved by either kind (the kind is in its ``index.json``)."""
    kind = read_meta(path).get("kind", "exact")
    if kind == "hnsw":
        from shopkeep.index.ann import HNSWIndex

        return HNSWIndex.load(path)
    return ExactIndex.load(path)


def cached_index(key: str, cache_dir: Path | None, source: Callable[[], tuple[Sequence[str], FloatArray]],
                 metric: str = "ip", *, n_items: int, exact_below: int = EXACT_BELOW, keep: int = 2,
                 **hnsw: Any) -> VectorIndex:
    """The index :func:`build_index` makes from ``source()`` (ids, vectors), saved under ``cache_dir`` and
    loaded from there when an entry for ``key`` (which must change whenever the vectors would) and the
    same kind and parameters exists. Building happens under a file lock, so processes starting together
    (server workers) build once and the others load; the ``keep`` newest entries are kept.
    ``cache_dir=None``: no cache."""
    kind = "exact" if n_items < exact_below else "hnsw"
    if cache_dir is None:
        ids, vectors = source()
        return build_index(ids, vectors, metric, exact_below=exact_below, **hnsw)
    spec = json.dumps({"key": key, "metric": metric, "kind": kind, "hnsw": hnsw if kind == "hnsw" else {}},
                      sort_keys=True)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:24]
    root = Path(cache_dir)
    folder = root / digest
    found = _try_load(folder)
    if found is not None:
        return found
    import fcntl  # POSIX; only the cache needs it

    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _try_load(folder)  # another process built it while this one waited
        if found is not None:
            return found
        ids, vectors = source()
        index = build_index(ids, vectors, metric, exact_below=exact_below, **hnsw)
        tmp = root / f".{digest}.{os.getpid()}.tmp"
        index.save(tmp)
        shutil.rmtree(folder, ignore_errors=True)  # a damaged entry
        os.replace(tmp, folder)
    _prune(root, keep)
    return index


def _try_load(folder: Path) -> VectorIndex | None:
    if not (folder / "index.json").is_file():
        return None
    try:
        index = load_index(folder)
    except (ValidationError, OSError, RuntimeError, ValueError):  # a damaged entry is rebuilt
        return None
    os.utime(folder)  # most recently used: kept by _prune
    return index


def _prune(root: Path, keep: int) -> None:
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        (root / f"{old.name}.lock").unlink(missing_ok=True)
