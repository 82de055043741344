"""Exact vector index: top-k by inner product (or cosine) over item vectors keyed by string id.

Batch first: :meth:`ExactIndex.search` takes ``(n_queries, dim)`` and returns a :class:`SearchResult`
with ``(n_queries, k)`` ids and scores, best first; ties break by insertion row. Items are added,
replaced (:meth:`ExactIndex.upsert`) and removed by id; removal moves the last row into the hole so
the matrix stays dense. ``metric="cosine"`` L2-normalizes stored vectors and queries.
:meth:`ExactIndex.save` writes ``index.json`` (version, metric, dim, ids) + ``vectors.npy`` (no pickle).

Exact search costs ``O(n_items * dim)`` per query (about 10 ms for 100k x 64 on one core); an
approximate (ANN) index behind the same :class:`VectorIndex` protocol is future work.

>>> index = ExactIndex(dim=2)
>>> index.add(["a", "b", "c"], np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
>>> index.search(np.array([[1.0, 0.1]], dtype=np.float32), k=2).ids
(('a', 'c'),)
>>> index.remove(["a"]); len(index)
2
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ConflictError, NotFoundError, ValidationError

__all__ = ["ExactIndex", "SearchResult", "VectorIndex"]

FloatArray = npt.NDArray[np.float32]

FORMAT_VERSION = 1
_META = "index.json"
_VECTORS = "vectors.npy"
_METRICS = ("ip", "cosine")


@dataclass(frozen=True)
class SearchResult:
    """Top-k per query: ``ids[q]`` (best first) and their ``scores`` ``(n_queries, k)`` float32."""

    ids: tuple[tuple[str, ...], ...]
    scores: FloatArray


@runtime_checkable
class VectorIndex(Protocol):
    """A nearest-neighbour index over vectors keyed by string id."""

    def upsert(self, ids: Sequence[str], vectors: FloatArray) -> None:
        """Insert new ids and replace the vectors of existing ones."""

    def remove(self, ids: Sequence[str]) -> None:
        """Drop ``ids`` (unknown ids raise :class:`NotFoundError`, nothing is removed then)."""

    def search(self, queries: FloatArray, k: int) -> SearchResult:
        """The ``k`` best ids per query row."""

    def save(self, path: Path) -> None:
        """Write the index into the directory ``path``."""

    def __len__(self) -> int:
        """Number of stored vectors."""


class ExactIndex:
    """Brute-force top-k with numpy (see the module docstring)."""

    def __init__(self, dim: int, metric: str = "cosine") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValidationError("dim", dim, "must be a positive integer")
        if metric not in _METRICS:
            raise ValidationError("metric", metric, f"must be one of {', '.join(_METRICS)}")
        self.dim = dim
        self.metric = metric
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    @property
    def ids(self) -> tuple[str, ...]:
        """Stored ids in row order."""
        return tuple(self._ids)

    def _prepare(self, vectors: FloatArray, field: str) -> FloatArray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValidationError(field, arr.shape, f"must be a 2-d array with {self.dim} columns")
        if not np.isfinite(arr).all():
            raise ValidationError(field, "nan/inf", "must be finite")
        if self.metric == "cosine":
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            arr = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
        return arr

    def _check_ids(self, ids: Sequence[str], n: int) -> list[str]:
        ids = list(ids)
        if len(ids) != n:
            raise ValidationError("ids", len(ids), f"need one id per vector ({n})")
        bad = [i for i in ids if not isinstance(i, str) or not i]
        if bad:
            raise ValidationError("ids", bad[0], "ids must be non-empty strings")
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValidationError("ids", dup, "duplicate id in one call")
        return ids

    def add(self, ids: Sequence[str], vectors: FloatArray) -> None:
        """Insert new ids; an id already present raises :class:`ConflictError` and nothing is added."""
        arr = self._prepare(vectors, "vectors")
        ids = self._check_ids(ids, arr.shape[0])
        existing = [i for i in ids if i in self._rows]
        if existing:
            raise ConflictError(f"ids already in the index: {existing[:5]}", {"ids": existing[:20]})
        self._append(ids, arr)

    def _append(self, ids: list[str], arr: FloatArray) -> None:
        start = len(self._ids)
        self._vectors = np.vstack([self._vectors, arr]) if start else arr.copy()
        self._ids.extend(ids)
        self._rows.update({i: start + n for n, i in enumerate(ids)})

    def upsert(self, ids: Sequence[str], vectors: FloatArray) -> None:
        """Insert new ids and replace the vectors of existing ones."""
        arr = self._prepare(vectors, "vectors")
        ids = self._check_ids(ids, arr.shape[0])
        old = [n for n, i in enumerate(ids) if i in self._rows]
        if old:
            self._vectors[[self._rows[ids[n]] for n in old]] = arr[old]
        new = [n for n, i in enumerate(ids) if i not in self._rows]
        if new:
            self._append([ids[n] for n in new], arr[new])

    def remove(self, ids: Sequence[str]) -> None:
        """Drop ``ids``; an unknown id raises :class:`NotFoundError` and nothing is removed."""
        ids = list(dict.fromkeys(ids))
        unknown = [i for i in ids if i not in self._rows]
        if unknown:
            raise NotFoundError(f"ids not in the index: {unknown[:5]}", {"ids": unknown[:20]})
        drop = np.zeros(len(self._ids), dtype=bool)
        drop[[self._rows[i] for i in ids]] = True
        self._vectors = self._vectors[~drop]
        self._ids = [i for i, d in zip(self._ids, drop.tolist(), strict=True) if not d]
        self._rows = {i: n for n, i in enumerate(self._ids)}

    def vectors(self, ids: Sequence[str]) -> FloatArray:
        """The stored (normalized, for cosine) vectors of ``ids``."""
        unknown = [i for i in ids if i not in self._rows]
        if unknown:
            raise NotFoundError(f"ids not in the index: {unknown[:5]}", {"ids": unknown[:20]})
        return self._vectors[[self._rows[i] for i in ids]].copy()

    def search(self, queries: FloatArray, k: int) -> SearchResult:
        """The ``k`` best ids per query (fewer when the index holds fewer), best first."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValidationError("k", k, "must be a positive integer")
        q = self._prepare(queries, "queries")
        k = min(k, len(self._ids))
        if k == 0:
            return SearchResult(tuple(() for _ in range(q.shape[0])), np.zeros((q.shape[0], 0), dtype=np.float32))
        scores = q @ self._vectors.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(
            np.arange(scores.shape[1]), (q.shape[0], 1)
        )
        part_scores = np.take_along_axis(scores, part, axis=1)
        # sort by score desc, then by row asc, so ties are deterministic
        order = np.lexsort((part, -part_scores), axis=1)
        top = np.take_along_axis(part, order, axis=1)
        ids = tuple(tuple(self._ids[j] for j in row) for row in top.tolist())
        return SearchResult(ids, np.take_along_axis(scores, top, axis=1).astype(np.float32))

    def save(self, path: Path) -> None:
        """Write ``index.json`` and ``vectors.npy`` into the directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / _VECTORS, self._vectors, allow_pickle=False)
        meta = {"format_version": FORMAT_VERSION, "kind": "exact", "metric": self.metric, "dim": self.dim}
        (path / _META).write_text(json.dumps({**meta, "ids": self._ids}), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read an index written by :meth:`save`."""
        path = Path(path)
        if not (path / _META).is_file():
            raise ValidationError("path", str(path), f"no {_META} here: not a saved index")
        meta = json.loads((path / _META).read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValidationError("format_version", meta.get("format_version"), f"expected {FORMAT_VERSION}")
        index = cls(int(meta["dim"]), str(meta["metric"]))
        vectors = np.load(path / _VECTORS, allow_pickle=False).astype(np.float32)
        if vectors.shape != (len(meta["ids"]), index.dim):
            raise ValidationError(_VECTORS, vectors.shape, f"expected ({len(meta['ids'])}, {index.dim})")
        index._append([str(i) for i in meta["ids"]], vectors)
        return index
