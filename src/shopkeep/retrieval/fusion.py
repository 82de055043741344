"""Weighted reciprocal-rank fusion of named sources, and the :class:`Retriever` that runs them.

``fuse`` scores an item ``sum_s w_s / (c + rank_s + 1)`` over the sources ``s`` that found it (rank
0-based), keeping each source's ``(score, rank)``; ties go to the better best rank, then the item id.

>>> from shopkeep.retrieval.base import Candidate
>>> a = [Candidate("x", 0.9, "a", 0), Candidate("y", 0.5, "a", 1)]
>>> b = [Candidate("y", 3.0, "b", 0)]
>>> [(f.item_id, sorted(f.sources)) for f in fuse([a, b], {"a": 1.0, "b": 1.0})]
[('y', ['a', 'b']), ('x', ['a'])]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context, Surface
from shopkeep.retrieval.base import Candidate, CandidateSource, FusedCandidate, Mask
from shopkeep.retrieval.binding import Hit
from shopkeep.types import IndexedSequence

__all__ = ["SURFACE_WEIGHTS", "ArraySource", "FusedArrays", "Retriever", "WeightedSource", "fuse"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Default sources and fusion weights per surface (sources missing from a retriever are skipped).
#: ``affinity`` is context-dependent (:meth:`AffinitySource.context_weight`): x1 while the session only
#: browses, x3 (``explicit_boost``) once an explicit signal such as filters puts an ``attr:`` key above
#: every ``cat:`` key; a flat large weight would drown the sequential source for browsing sessions.
SURFACE_WEIGHTS: Mapping[str, Mapping[str, float]] = {
    "home": {"sequential": 1.0, "affinity": 1.0, "two_tower": 1.0, "popular": 0.3},
    "pdp": {"covisit": 1.0, "content": 0.7, "complements": 0.7},
    "cart": {"complements": 1.0, "covisit": 0.7},
    "search": {"affinity": 1.0, "popular": 0.3},
}


@runtime_checkable
class WeightedSource(Protocol):
    """Capability: a source whose fusion weight depends on the context (a multiplier >= 0)."""

    def context_weight(self, context: Context) -> float:
        """Multiplier for the source's fusion weight for this context."""


@runtime_checkable
class ArraySource(Protocol):
    """Capability: a source that answers snapshot indices and scores (best first) without building
    :class:`Candidate` objects; ``retrieve`` must equal them turned into candidates (rank = position)."""

    name: str
    snapshot: CatalogSnapshot

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """For each context, (snapshot indices, scores) of up to ``k`` eligible candidates, best first."""


@dataclass(frozen=True, eq=False)
class FusedArrays(IndexedSequence[FusedCandidate]):
    """A fused list as arrays, best first; a read-only sequence of :class:`FusedCandidate` built on access.

    ``indices``/``scores``: snapshot index and fused score per candidate; ``names``: source names
    (sorted); ``source_scores``/``source_ranks``: per candidate and source, its score and rank there
    (rank -1: not found by that source). ``item_ids`` are the snapshot's ids.
    """

    item_ids: Sequence[str]
    indices: IntArray
    scores: FloatArray
    names: tuple[str, ...]
    source_scores: FloatArray
    source_ranks: IntArray

    def __len__(self) -> int:
        return len(self.indices)

    def _at(self, j: int) -> FusedCandidate:
        return FusedCandidate(self.item_ids[int(self.indices[j])], float(self.scores[j]), self.sources_at(j))

    def sources_at(self, j: int) -> dict[str, tuple[float, int]]:
        """Candidate ``j``'s sources: name → (score, rank), in name order."""
        ranks = self.source_ranks[j]
        return {n: (float(self.source_scores[j, s]), int(ranks[s])) for s, n in enumerate(self.names) if ranks[s] >= 0}

    def candidates(self) -> list[FusedCandidate]:
        """All candidates as :class:`FusedCandidate` objects."""
        return list(self)

    @classmethod
    def from_candidates(cls, fused: Sequence[FusedCandidate], snapshot: CatalogSnapshot) -> FusedArrays:
        """The arrays of a fused list (every item must be in ``snapshot``)."""
        names = tuple(sorted({s for f in fused for s in f.sources}))
        col = {n: j for j, n in enumerate(names)}
        scores = np.full((len(fused), len(names)), np.nan)
        ranks = np.full((len(fused), len(names)), -1, dtype=np.int64)
        for r, f in enumerate(fused):
            for s, (sc, rk) in f.sources.items():
                scores[r, col[s]], ranks[r, col[s]] = sc, rk
        return cls(snapshot.item_ids, np.asarray(snapshot.indices([f.item_id for f in fused]), dtype=np.int64),
                   np.array([f.score for f in fused], dtype=np.float64), names, scores, ranks)


def _empty(item_ids: Sequence[str]) -> FusedArrays:
    return FusedArrays(item_ids, np.zeros(0, np.int64), np.zeros(0), (), np.zeros((0, 0)), np.zeros((0, 0), np.int64))


def _unique_inverse(values: IntArray) -> tuple[IntArray, IntArray]:
    """``np.unique(values, return_inverse=True)`` by one sort (faster for a request's few thousand ids)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.empty(len(values), dtype=np.bool_)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inv = np.empty(len(values), dtype=np.int64)
    inv[order] = np.cumsum(first) - 1
    return ordered[first], inv


def fuse_arrays(lists: Sequence[tuple[str, IntArray, FloatArray, IntArray]], weights: Mapping[str, float], c: float,
                id_order: IntArray, item_ids: Sequence[str], k: int) -> FusedArrays:
    """:func:`fuse` over (source name, snapshot indices, scores, ranks) lists, best ``k`` kept; the same
    scores bit for bit (summed in source-name order) and the same order (``id_order``: rank of each
    snapshot item's id in string order, for the last tie-break)."""
    names = tuple(sorted({name for name, idx, _, _ in lists if len(idx)}))
    if not names:
        return _empty(item_ids)
    parts = [(name, idx, sc, rk) for name, idx, sc, rk in lists if len(idx)]
    uniq, inv = _unique_inverse(np.concatenate([p[1] for p in parts]))
    m = len(uniq)
    src_scores = np.full((m, len(names)), np.nan)
    src_ranks = np.full((m, len(names)), -1, dtype=np.int64)
    at = 0
    for name, idx, sc, rk in parts:
        rows, col = inv[at:at + len(idx)], names.index(name)
        at += len(idx)
        # a repeated item within one list keeps its best (then first) rank: written last
        order = np.lexsort((-np.arange(len(rk)), -rk))
        src_scores[rows[order], col], src_ranks[rows[order], col] = sc[order], rk[order]
    score = np.zeros(m)
    for col, name in enumerate(names):
        rk = src_ranks[:, col]
        score += np.where(rk >= 0, float(weights.get(name, 1.0)) / (c + rk + 1), 0.0)
    best = np.where(src_ranks >= 0, src_ranks, np.iinfo(np.int64).max).min(axis=1)
    top = np.lexsort((id_order[uniq], best, -score))[:k]
    return FusedArrays(item_ids, uniq[top], score[top], names, src_scores[top], src_ranks[top])


def fuse(
    lists: Sequence[Sequence[Candidate]], weights: Mapping[str, float] | None = None, c: float = 60.0
) -> list[FusedCandidate]:
    """Weighted reciprocal-rank fusion of candidate lists (weight 1.0 for sources not in ``weights``)."""
    if c < 0:
        raise ValidationError("c", c, "must be >= 0")
    weights = weights or {}
    found: dict[str, dict[str, tuple[float, int]]] = {}
    for cands in lists:
        for cand in cands:
            per = found.setdefault(cand.item_id, {})
            if cand.source not in per or cand.rank < per[cand.source][1]:
                per[cand.source] = (cand.score, cand.rank)
    score: dict[str, float] = {}
    for item, per in found.items():
        # summed in source-name order so that the float result does not depend on the list order
        found[item] = {s: per[s] for s in sorted(per)}
        score[item] = sum(float(weights.get(s, 1.0)) / (c + r + 1) for s, (_, r) in found[item].items())
    best = {item: min(r for _, r in per.values()) for item, per in found.items()}
    order = sorted(score, key=lambda i: (-score[i], best[i], i))
    return [FusedCandidate(i, score[i], found[i]) for i in order]


class Retriever:
    """Runs every source for a batch of contexts, fuses their lists and backfills from ``fallback``.

    ``weights``: source name → fusion weight (default 1.0); a source with the
    :class:`WeightedSource` capability has its weight scaled per context. ``k_source``: how many
    candidates to ask each source for (default ``k``). When the fused list is shorter than ``k``,
    items from ``fallback`` (a popularity source, say) are appended below the fused ones, so a
    request gets ``min(k, eligible)`` items. With ``snapshot`` given, any candidate failing its mask is
    dropped (a guard; conforming sources never return one).
    """

    def __init__(
        self,
        sources: Sequence[CandidateSource],
        weights: Mapping[str, float] | None = None,
        *,
        k_source: int | None = None,
        fallback: CandidateSource | None = None,
        c: float = 60.0,
        index: Mapping[str, int] | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValidationError("sources", names, "source names must be unique")
        bad = {n: w for n, w in (weights or {}).items() if not np.isfinite(w) or w < 0}
        if bad:
            raise ValidationError("weights", bad, "weights must be finite and >= 0")
        self.sources = tuple(sources)
        self.weights = dict(weights or {})
        self.k_source = k_source
        self.fallback = fallback
        self.c = c
        self.index = index
        self._order: tuple[CatalogSnapshot, IntArray] | None = None
        self._arrays_for: tuple[CatalogSnapshot, bool] | None = None
        # capability checks on runtime Protocols are slow: done once, not per request
        self._weighted = tuple(isinstance(s, WeightedSource) for s in self.sources)

    @classmethod
    def for_surface(
        cls,
        surface: Surface | str,
        sources: Mapping[str, CandidateSource] | Sequence[CandidateSource],
        weights: Mapping[str, float] | None = None,
        **kwargs: object,
    ) -> Self:
        """A retriever with the surface's default sources (:data:`SURFACE_WEIGHTS`) among ``sources``;
        the source named ``popular`` (if any) is the fallback."""
        if surface not in SURFACE_WEIGHTS:
            raise ValidationError("surface", surface, f"must be one of {', '.join(SURFACE_WEIGHTS)}")
        by_name = dict(sources) if isinstance(sources, Mapping) else {s.name: s for s in sources}
        chosen = {**SURFACE_WEIGHTS[surface], **(weights or {})}
        picked = [by_name[n] for n in chosen if n in by_name]
        kwargs.setdefault("fallback", by_name.get("popular"))
        return cls(picked, chosen, **kwargs)  # type: ignore[arg-type]

    def _weights_for(self, context: Context) -> dict[str, float]:
        out = {}
        for s, weighted in zip(self.sources, self._weighted, strict=True):
            w = self.weights.get(s.name, 1.0)
            if weighted:
                w *= float(s.context_weight(context))  # type: ignore[attr-defined]
            out[s.name] = w
        return out

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int = 500) -> list[list[FusedCandidate]]:
        """For each context, up to ``k`` fused candidates, best first (eligible under its mask)."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValidationError("k", k, "must be a positive integer")
        k_source = self.k_source or k
        per_source = [s.retrieve(contexts, masks, k_source) for s in self.sources]
        out = []
        for r, (ctx, mask) in enumerate(zip(contexts, masks, strict=True)):
            lists = [self._guard(lst[r], mask) for lst in per_source]
            fused = fuse(lists, self._weights_for(ctx), self.c)[:k]
            if len(fused) < k and self.fallback is not None:
                fused = self._backfill(fused, ctx, mask, k)
            out.append(fused)
        return out

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], snapshot: CatalogSnapshot,
                        k: int = 500) -> list[FusedArrays]:
        """:meth:`retrieve` as :class:`FusedArrays` over ``snapshot``: the same candidates, scores and order,
        computed with array operations when every source and the fallback is an :class:`ArraySource`
        over ``snapshot`` (otherwise :meth:`retrieve`'s lists, converted)."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValidationError("k", k, "must be a positive integer")
        if not self._arrays_ok(snapshot):
            return [FusedArrays.from_candidates(f, snapshot) for f in self.retrieve(contexts, masks, k)]
        k_source = self.k_source or k
        per_source = [s.retrieve_arrays(contexts, masks, k_source) for s in self.sources]  # type: ignore[attr-defined]
        order = self._id_order(snapshot)
        out = []
        for r, (ctx, mask) in enumerate(zip(contexts, masks, strict=True)):
            lists = [(s.name, *self._guard_hit(hits[r], mask))
                     for s, hits in zip(self.sources, per_source, strict=True)]
            fused = fuse_arrays(lists, self._weights_for(ctx), self.c, order, snapshot.item_ids, k)
            if len(fused) < k and self.fallback is not None:
                fused = self._backfill_arrays(fused, ctx, mask, k)
            out.append(fused)
        return out

    def _arrays_ok(self, snapshot: CatalogSnapshot) -> bool:
        if self._arrays_for is not None and self._arrays_for[0] is snapshot:
            return self._arrays_for[1]
        every = (*self.sources, *((self.fallback,) if self.fallback is not None else ()))
        ok = (self.index is None or self.index is snapshot.index) and all(
            isinstance(s, ArraySource) and s.snapshot is snapshot for s in every)
        self._arrays_for = (snapshot, ok)
        return ok

    def _id_order(self, snapshot: CatalogSnapshot) -> IntArray:
        """Each snapshot item's rank in item-id string order (cached for the last snapshot)."""
        if self._order is None or self._order[0] is not snapshot:
            ids = snapshot.item_ids
            order = np.zeros(len(ids), dtype=np.int64)
            order[np.asarray(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)] = np.arange(len(ids))
            self._order = (snapshot, order)
        return self._order[1]

    def _guard_hit(self, hit: Hit, mask: Mask) -> tuple[IntArray, FloatArray, IntArray]:
        idx, score = hit
        rank = np.arange(len(idx), dtype=np.int64)
        if self.index is None:
            return idx, score, rank
        keep = mask[idx]
        return idx[keep], score[keep], rank[keep]

    def _backfill_arrays(self, fused: FusedArrays, ctx: Context, mask: Mask, k: int) -> FusedArrays:
        fb = self.fallback
        assert isinstance(fb, ArraySource)
        idx, score, rank = self._guard_hit(fb.retrieve_arrays([ctx], [mask], k + len(fused))[0], mask)
        keep = np.flatnonzero(~np.isin(idx, fused.indices))[: k - len(fused)]
        if not len(keep):
            return fused
        idx, score, rank = idx[keep], score[keep], rank[keep]
        floor = float(fused.scores.min()) if len(fused) else 1.0
        fill = floor * (1.0 - (np.arange(len(idx)) + 1) / (len(idx) + 1))
        names = tuple(sorted({*fused.names, fb.name}))
        cols = [names.index(n) for n in fused.names]
        m = len(fused) + len(idx)
        scores, ranks = np.full((m, len(names)), np.nan), np.full((m, len(names)), -1, dtype=np.int64)
        scores[: len(fused), cols], ranks[: len(fused), cols] = fused.source_scores, fused.source_ranks
        scores[len(fused):, names.index(fb.name)], ranks[len(fused):, names.index(fb.name)] = score, rank
        return FusedArrays(fused.item_ids, np.concatenate([fused.indices, idx]),
                           np.concatenate([fused.scores, fill]), names, scores, ranks)

    def _guard(self, cands: list[Candidate], mask: Mask) -> list[Candidate]:
        if self.index is None:
            return cands
        return [c for c in cands if (i := self.index.get(c.item_id)) is not None and bool(mask[i])]

    def _backfill(self, fused: list[FusedCandidate], ctx: Context, mask: Mask, k: int) -> list[FusedCandidate]:
        assert self.fallback is not None
        have = {f.item_id for f in fused}
        extra = self._guard(self.fallback.retrieve([ctx], [mask], k + len(have))[0], mask)
        floor = min((f.score for f in fused), default=1.0)
        fill = [c for c in extra if c.item_id not in have][: k - len(fused)]
        # appended strictly below every fused item, in the fallback's order
        return fused + [
            FusedCandidate(c.item_id, floor * (1.0 - (n + 1) / (len(fill) + 1)), {c.source: (c.score, c.rank)})
            for n, c in enumerate(fill)
        ]
