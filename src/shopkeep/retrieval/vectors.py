"""Vector candidate sources: content similarity (``content``) and the two-tower model (``two_tower``).

Both search a :class:`~shopkeep.index.VectorIndex` keyed by item id: exact below
:data:`~shopkeep.index.EXACT_BELOW` items, HNSW from there (:func:`~shopkeep.index.build_index`).
The eligibility mask is pushed into the index search (a per-query mask over the index rows), so
``k`` eligible items come back whenever that many exist (HNSW: see its filtering rule). Per request
the work is numpy over the index rows plus the ``k`` results; the index-row -> snapshot-index map
is computed once per (index version, snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.index import EXACT_BELOW, VectorIndex, build_index
from shopkeep.models.base import check_fitted
from shopkeep.retrieval.base import Candidate, Mask
from shopkeep.retrieval.binding import Hit, ModelBinding, anchors, check_masks, no_hit, to_candidate_lists

__all__ = ["ContentSource", "TwoTowerSource", "masked_search"]

F32 = npt.NDArray[np.float32]


_ROWS: dict[tuple[int, int], tuple[VectorIndex, int, CatalogSnapshot, npt.NDArray[np.int64]]] = {}


def _rows(index: VectorIndex, snapshot: CatalogSnapshot) -> npt.NDArray[np.int64]:
    """Snapshot index of each index row (-1: not in the snapshot), cached per (index version, snapshot):
    a dict lookup per item is too slow to repeat per request."""
    key = (id(index), id(snapshot))
    found = _ROWS.get(key)
    if found is not None and found[0] is index and found[1] == index.version and found[2] is snapshot:
        return found[3]
    rows = np.asarray(snapshot.indices(list(index.ids)), dtype=np.int64)
    if len(_ROWS) >= 8:
        _ROWS.clear()
    _ROWS[key] = (index, index.version, snapshot, rows)
    return rows


_IDENTITY: dict[int, tuple[npt.NDArray[np.int64], bool]] = {}


def _identity(rows: npt.NDArray[np.int64]) -> bool:
    """Whether ``rows`` is ``0..n-1`` (cached per rows array, which :func:`_rows` caches)."""
    found = _IDENTITY.get(id(rows))
    if found is None or found[0] is not rows:
        if len(_IDENTITY) >= 8:
            _IDENTITY.clear()
        found = _IDENTITY[id(rows)] = (rows, bool((rows == np.arange(rows.size)).all()))
    return found[1]


def masked_search(
    index: VectorIndex, snapshot: CatalogSnapshot, queries: F32, masks: Sequence[Mask], k: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Top-``k`` eligible snapshot indices and scores per query row (index ids not in the snapshot skipped)."""
    if not len(index) or queries.shape[0] == 0:
        return [(np.zeros(0, np.int64), np.zeros(0)) for _ in masks]
    rows = _rows(index, snapshot)
    if rows.size == snapshot.n and _identity(rows):
        allowed = np.stack([np.asarray(m, dtype=np.bool_) for m in masks])  # index rows = snapshot order
    else:
        known = rows >= 0
        safe = np.where(known, rows, 0)
        allowed = np.stack([known & np.asarray(m, dtype=np.bool_)[safe] for m in masks])
    res = index.search(queries, k=min(len(index), k), mask=allowed)
    out = []
    for found, scores in zip(res.rows, res.scores, strict=True):
        ok = found >= 0
        out.append((rows[found[ok]], scores[ok].astype(np.float64)))
    return out


class ContentSource:
    """Items whose content vector is closest (cosine) to the anchors' weighted mean vector.

    Anchors: the pdp item and cart items (weight 1) and the last ``n_recent`` recent items
    (``decay**(t+1)``); anchors are not returned. Build with :meth:`from_content_knn` or :meth:`from_vectors`.
    """

    def __init__(
        self, index: VectorIndex, snapshot: CatalogSnapshot, *, name: str = "content", n_recent: int = 3,
        decay: float = 0.5,
    ) -> None:
        self.name = name
        self.index = index
        self.snapshot = snapshot
        self.n_recent = n_recent
        self.decay = decay

    @classmethod
    def from_vectors(cls, item_ids: Sequence[str], vectors: F32, snapshot: CatalogSnapshot,
                     exact_below: int = EXACT_BELOW, **kwargs: Any) -> ContentSource:
        """Index ``vectors`` (one row per item id) with the cosine metric (HNSW from ``exact_below`` items)."""
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2:
            raise ValidationError("vectors", arr.shape, "must be a 2-d array")
        index = build_index(list(item_ids), arr, "cosine", exact_below=exact_below)
        return cls(index, snapshot, **kwargs)

    @classmethod
    def from_content_knn(cls, binding: ModelBinding, snapshot: CatalogSnapshot, **kwargs: Any) -> ContentSource:
        """Index the content vectors of a fitted :class:`~shopkeep.models.content.ContentKNN`."""
        check_fitted(binding.model, "titles_")
        return cls.from_vectors(binding.item_ids, binding.model.item_vectors(), snapshot, **kwargs)

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same index over ``snapshot``."""
        return type(self)(self.index, snapshot, name=self.name, n_recent=self.n_recent, decay=self.decay)

    def _query(self, context: Context) -> tuple[F32 | None, list[str]]:
        weights = {i: w for i, w in anchors(context, self.n_recent, self.decay).items() if i in self.index}
        if not weights:
            return None, []
        vecs = self.index.vectors(list(weights))
        w = np.fromiter(weights.values(), dtype=np.float32, count=len(weights))
        q = (w[:, None] * vecs).sum(axis=0)
        return (q if np.abs(q).sum() > 0 else None), list(weights)

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible items most similar in content to its anchors."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = [no_hit() for _ in contexts]
        rows, queries, own_masks = [], [], []
        for r, (ctx, mask) in enumerate(zip(contexts, masks, strict=True)):
            q, own = self._query(ctx)
            if q is None:
                continue
            m = mask.copy()
            idx = self.snapshot.indices(own)
            m[idx[idx >= 0]] = False
            rows.append(r)
            queries.append(q)
            own_masks.append(m)
        if rows:
            found = masked_search(self.index, self.snapshot, np.stack(queries), own_masks, k)
            for r, hit in zip(rows, found, strict=True):
                out[r] = hit
        return out


class TwoTowerSource:
    """The two-tower model: the session tower encodes the recent items, the index holds the exported
    item-tower vectors (inner product; HNSW from ``exact_below`` items). A context with no known recent
    item returns nothing.
    """

    def __init__(self, binding: ModelBinding, snapshot: CatalogSnapshot, *, name: str = "two_tower",
                 index: VectorIndex | None = None, exact_below: int = EXACT_BELOW) -> None:
        check_fitted(binding.model, "net_")
        self.name = name
        self.binding = binding
        self.snapshot = snapshot
        if index is None:
            rows, vecs = binding.model.export_item_vectors()
            index = build_index([binding.item_ids[int(r)] for r in rows], np.asarray(vecs, dtype=np.float32), "ip",
                                exact_below=exact_below)
        self.index = index

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same model and index over ``snapshot``."""
        return type(self)(self.binding, snapshot, name=self.name, index=self.index)

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible items nearest to its session vector."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = [no_hit() for _ in contexts]
        rows = []
        histories = []
        for r, ctx in enumerate(contexts):
            hist = self.binding.history(ctx.recent_items) if ctx.personalize else np.zeros(0, np.int64)
            if hist.size:
                rows.append(r)
                histories.append(hist)
        if not rows:
            return out
        users = np.asarray(self.binding.model.user_vectors(histories), dtype=np.float32)
        found = masked_search(self.index, self.snapshot, users, [masks[r] for r in rows], k)
        for r, hit in zip(rows, found, strict=True):
            out[r] = hit
        return out
