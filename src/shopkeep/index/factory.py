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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shopkeep.index.vector import ExactIndex, FloatArray, VectorIndex, read_meta

__all__ = ["EXACT_BELOW", "build_index", "load_index", "make_index"]

#: Default size from which :func:`make_index` answers an HNSW index.
EXACT_BELOW = 50_000


def make_index(dim: int, n_items: int, metric: str = "ip", *, exact_below: int = EXACT_BELOW,
               **hnsw: Any) -> VectorIndex:
    """An empty index for about ``n_items`` vectors: :class:`ExactIndex` when ``n_items < exact_below``,
    else :class:`~shopkeep.index.ann.HNSWIndex` with the ``hnsw`` keyword parameters."""
    if n_items < exact_below:
        return ExactIndex(dim, metric=metric)
    from shopkeep.index.ann import HNSWIndex  # faiss only when it is needed

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
