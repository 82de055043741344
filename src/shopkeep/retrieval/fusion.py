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
from typing import Protocol, Self, runtime_checkable

import numpy as np

from shopkeep.errors import ValidationError
from shopkeep.features.context import Context, Surface
from shopkeep.retrieval.base import Candidate, CandidateSource, FusedCandidate, Mask

__all__ = ["SURFACE_WEIGHTS", "Retriever", "WeightedSource", "fuse"]

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
        for s in self.sources:
            w = self.weights.get(s.name, 1.0)
            if isinstance(s, WeightedSource):
                w *= float(s.context_weight(context))
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
