"""Hybrid product search: parse → hard filters (∧ policy eligibility) → BM25 ∪ dense → reciprocal-rank
fusion → light personalization → sort intent → policy → hits with reasons.

* **Filters**: the :class:`~shopkeep.search.query.ParsedQuery` constraints (plus explicit request
  ``filters``) become a mask; nothing outside it is ever returned — items a policy pins are dropped
  again after the policy stage. Zero matches → :func:`~shopkeep.search.filters.relax` drops the least
  important constraint at a time and the response lists what it dropped.
* **Retrieval**: BM25F over title (3), brand (2), category path (2), attribute values (1.5) and
  description + long text attributes (1) on the query's content words; dense cosine (MiniLM) on the
  whole query. Both only over the mask, ``candidates`` each.
* **Fusion**: ``Σ w_s / (rrf_k + rank_s)``; a masked item neither source found ranks after all found
  ones by its dense score (so a small matching set is returned whole).
* **Personalization**: ``+ 0.1 · personalization · a / (rrf_k + 1)`` where ``a`` ∈ [0, 1] is the item's
  summed context affinity (``cat:``/``brand:``/``attr:`` keys) over the best candidate's — at most a
  few fused ranks, never past a much better match.
* **Sort intents**: ``rating`` / ``price_asc`` / ``price_desc`` / ``newest`` order the matching
  items (all of them when at most ``sort_pool``, else the fused top ``sort_pool``), relevance breaks ties.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot, Mask
from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.features.context import Context
from shopkeep.index.factory import EXACT_BELOW, build_index
from shopkeep.index.keyword import KeywordIndex
from shopkeep.index.vector import VectorIndex
from shopkeep.models.content import MINILM
from shopkeep.ranking import ScoredItem
from shopkeep.search.attributes import AttributeTable
from shopkeep.search.dense import QueryEncoder, embed_items
from shopkeep.search.filters import MaskCache, relax
from shopkeep.search.query import Constraint, ParsedQuery, QueryParser
from shopkeep.search.vocab import Vocabulary, words
from shopkeep.types import Item

__all__ = [
    "FIELDS",
    "MODES",
    "SearchConfig",
    "SearchHit",
    "SearchPolicy",
    "SearchRequest",
    "SearchResponse",
    "Searcher",
    "item_fields",
]

MODES = ("hybrid", "bm25", "dense")
#: BM25F field weights.
FIELDS = {"title": 3.0, "brand": 2.0, "category": 2.0, "attributes": 1.5, "description": 1.0}


def item_fields(item: Item) -> dict[str, str]:
    """The BM25 fields of an item (long text attributes such as ingredients go with the description)."""
    attrs, long_text = [], []
    for key, value in item.attributes.items():
        if isinstance(value, bool):
            attrs.append(key.replace("_", " ") if value else f"not {key.replace('_', ' ')}")
        elif isinstance(value, str) and len(value) > 60:
            long_text.append(value)
        elif isinstance(value, tuple):
            attrs.extend(f"{v} {key.replace('_', ' ')}" for v in value)
        else:
            attrs.append(str(value))
    return {"title": item.title, "brand": item.brand or "", "category": " ".join(item.category),
            "attributes": " ".join(attrs), "description": " ".join([item.description, *long_text])}


@dataclass(frozen=True)
class SearchConfig:
    """Search knobs (see the module docstring)."""

    encoder: str = MINILM
    candidates: int = 200
    rrf_k: int = 60
    weights: Mapping[str, float] = field(default_factory=lambda: {"bm25": 1.0, "dense": 0.5})
    personalization: float = 1.0
    sort_pool: int = 1000
    cache_dir: str | None = "default"
    progress: bool = False
    #: Catalogs of at least this many items get an HNSW index for dense retrieval (exact below).
    ann_above: int = EXACT_BELOW
    #: Query encoder when it differs from the item ``encoder`` (benchmarks: hashing item vectors, MiniLM
    #: queries — the request path costs the same, both are 384-d).
    query_encoder: str | None = None


@dataclass(frozen=True)
class SearchRequest:
    """One search: the query text, explicit ``filters``, ``k``, the shopper's ``store``, ``explain``."""

    query: str
    k: int = 10
    filters: Mapping[str, Any] = field(default_factory=dict)
    store: str | None = None
    explain: bool = False
    mode: str = "hybrid"
    #: False: parsed constraints only shape the text, they do not filter (retrieval evaluation).
    use_constraints: bool = True


@dataclass(frozen=True)
class SearchHit:
    """One returned product."""

    item_id: str
    score: float
    position: int
    sources: Mapping[str, tuple[float, int]]
    reasons: tuple[str, ...]
    price_minor: int | None


@dataclass(frozen=True)
class SearchResponse:
    """Hits, how the query was understood, what was relaxed, how many items matched."""

    items: tuple[SearchHit, ...]
    parsed: ParsedQuery
    relaxed: tuple[Constraint, ...]
    matched: int
    explain: Mapping[str, Any] | None = None


class SearchPolicy(Protocol):
    """The policy stage as search uses it (``pipeline.policy_stage.PolicyStage`` fits)."""

    def eligibility(self, snapshot: CatalogSnapshot, context: Context) -> Mask:
        """True for items the request may be shown."""

    def apply(self, context: Context, ranked: Sequence[ScoredItem],
              snapshot: CatalogSnapshot) -> tuple[list[Any], list[dict[str, Any]]]:
        """Chosen items (``item_id``, ``score``, ``reasons``, ``display_price_minor``) and the trace."""


_Ranked = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
_FILTER_KEYS = ("category", "brand", "price_min", "price_max", "attributes", "store", "pickup", "in_stock")


def filter_constraints(filters: Mapping[str, Any]) -> list[Constraint]:
    """Explicit request filters as constraints (prices in minor units)."""
    out: list[Constraint] = []
    for key, value in filters.items():
        if key not in _FILTER_KEYS:
            raise ValidationError(f"filters.{key}", value, f"unknown filter; use one of {', '.join(_FILTER_KEYS)}")
        if key in ("price_min", "price_max"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(f"filters.{key}", value, "must be an integer >= 0 (minor units)")
            out.append(Constraint("price", "price", ">=" if key == "price_min" else "<=", value, "filter"))
        elif key == "attributes":
            if not isinstance(value, Mapping):
                raise ValidationError("filters.attributes", value, "must be an object {key: value}")
            for k, v in value.items():
                if not isinstance(v, str | int | float | bool):
                    raise ValidationError(f"filters.attributes.{k}", v, "must be a string, number or boolean")
                out.append(Constraint("attribute", str(k).lower(), "=", v, "filter"))
        elif key in ("category", "brand", "store"):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"filters.{key}", value, "must be a non-empty string")
            kind = "availability" if key == "store" else key
            val = " ".join(words(value)) if key == "category" else value
            out.append(Constraint(kind, key, "=", val, "filter"))
        elif value is True:
            out.append(Constraint("availability", key, "=", "same_day" if key == "pickup" else True, "filter"))
    return out


class Searcher:
    """Hybrid search over one catalog snapshot: ``Searcher(config).fit(snapshot)``."""

    def __init__(self, config: SearchConfig | None = None) -> None:
        self.config = config or SearchConfig()
        self.encoder = QueryEncoder(self.config.query_encoder or self.config.encoder)
        self.queries = 0
        self.zero_before_relax = 0
        self.zero_after_relax = 0

    def fit(self, snapshot: CatalogSnapshot) -> Self:
        """Index ``snapshot``: attribute table, vocabulary, BM25, item vectors."""
        self.snapshot_ = snapshot
        self.table_ = AttributeTable(snapshot)
        self.keyword_ = KeywordIndex(FIELDS)
        self.keyword_.upsert(snapshot.item_ids, [item_fields(it) for it in snapshot.items])
        self.vectors_ = embed_items(snapshot.items, self.config.encoder, self.config.cache_dir, self.config.progress)
        self.vindex_ = build_index(snapshot.item_ids, self.vectors_, "ip", exact_below=self.config.ann_above)
        self._finish()
        return self

    def _finish(self) -> None:
        snap = self.snapshot_
        self._index_rows: tuple[int, npt.NDArray[np.int64]] | None = None
        self.masks_ = MaskCache(snap, self.table_)
        self.vocab_ = Vocabulary.build(snap, self.table_)
        exact = {i.lower(): i for i in snap.item_ids}
        for it in snap.items:
            exact.setdefault(" ".join(words(it.title)), it.item_id)
            exact.setdefault(it.title.strip().lower(), it.item_id)
        vocab = self.keyword_.vocab
        self.parser_ = QueryParser(self.vocab_, exact, currency=snap.currency,
                                   known_word=lambda w: w in vocab and self.keyword_.document_frequency(w) > 0)

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Searcher:
        """A searcher for ``snapshot``, a later version of the fitted one (changed items re-indexed)."""
        old = self._fitted()
        if snapshot is old:
            return self
        changed = [i for i in range(snapshot.n) if i >= old.n or snapshot.items[i] is not old.items[i]]
        new = Searcher(self.config)
        new.encoder = self.encoder
        new.snapshot_ = snapshot
        new.table_ = AttributeTable(snapshot)
        new.keyword_ = self.keyword_.copy()
        items = [snapshot.items[i] for i in changed]
        new.keyword_.upsert([it.item_id for it in items], [item_fields(it) for it in items])
        vectors = np.zeros((snapshot.n, self.vectors_.shape[1]), dtype=np.float32)
        vectors[: old.n] = self.vectors_
        if changed:
            vectors[changed] = embed_items(items, self.config.encoder, self.config.cache_dir)
        new.vectors_ = vectors
        new.vindex_ = self.vindex_.copy()
        if changed:
            new.vindex_.upsert([snapshot.item_ids[i] for i in changed], vectors[changed])
        new._finish()
        return new

    def _fitted(self) -> CatalogSnapshot:
        if not hasattr(self, "snapshot_"):
            raise NotFittedError("Searcher is not fitted: call fit(snapshot) first")
        return self.snapshot_

    def parse(self, queries: Sequence[str]) -> list[ParsedQuery]:
        """How each query is understood."""
        self._fitted()
        return [self.parser_.parse(q) for q in queries]

    def search(self, request: SearchRequest, context: Context | None = None,
               policy: SearchPolicy | None = None) -> SearchResponse:
        """One search (a batch of one)."""
        return self.search_many([request], [context], policy)[0]

    def search_many(self, requests: Sequence[SearchRequest], contexts: Sequence[Context | None] | None = None,
                    policy: SearchPolicy | None = None) -> list[SearchResponse]:
        """Answer a batch of searches (query embeddings in one encoder call)."""
        snap = self._fitted()
        contexts = list(contexts) if contexts is not None else [None] * len(requests)
        if len(contexts) != len(requests):
            raise ValidationError("contexts", len(contexts), f"need one per request ({len(requests)})")
        for i, r in enumerate(requests):
            _check(r, i)
        parsed = [self.parser_.parse(r.query) for r in requests]
        dense_q = self.encoder.encode([r.query for r in requests]) if any(
            r.mode != "bm25" and p.exact_item_id is None for r, p in zip(requests, parsed, strict=True)) else None
        out = []
        for n, (req, ctx, pq) in enumerate(zip(requests, contexts, parsed, strict=True)):
            start = time.perf_counter()
            base = policy.eligibility(snap, ctx) if policy is not None and ctx is not None else snap.active.copy()
            extra = filter_constraints(req.filters)
            if extra:
                pq = ParsedQuery(pq.query, pq.text, pq.constraints + tuple(extra), pq.sort, pq.exact_item_id,
                                 pq.corrections)
            qv = dense_q[n] if dense_q is not None else None
            out.append(self._one(req, ctx, pq, base, qv, policy, start))
        return out

    def _one(self, req: SearchRequest, ctx: Context | None, pq: ParsedQuery, base: Mask,
             qv: npt.NDArray[np.float32] | None, policy: SearchPolicy | None, start: float) -> SearchResponse:
        snap = self.snapshot_
        self.queries += 1
        if pq.exact_item_id is not None and base[snap.index[pq.exact_item_id]]:
            hit = SearchHit(pq.exact_item_id, 1.0, 0, {"exact": (1.0, 0)}, ("exact title or id match",),
                            _price(snap, snap.index[pq.exact_item_id]))
            return SearchResponse((hit,), pq, (), 1, {"exact": True} if req.explain else None)
        store = req.store or (ctx.store if ctx is not None else None)
        filtering = pq if req.use_constraints else ParsedQuery(pq.query, pq.text, tuple(
            c for c in pq.constraints if c.text == "filter"), pq.sort)
        relaxation = relax(self.masks_, filtering, base, store)
        mask = relaxation.mask
        matched = int(mask.sum())
        if relaxation.dropped:
            self.zero_before_relax += 1
        if matched == 0:
            self.zero_after_relax += 1
            return SearchResponse((), pq, relaxation.dropped, 0, {"matched": 0} if req.explain else None)
        sources = self._retrieve(req.mode, pq.without_all(relaxation.dropped), mask, qv)
        found = _SourceInfo(sources)
        fused = self._fuse(sources, mask, qv, req.mode)
        fused = self._personalize(fused, ctx)
        if pq.sort is not None:
            fused = self._sort(fused, mask, pq.sort)
        ranked = [ScoredItem(snap.item_ids[r], s, found.of(r, extra)) for r, s, extra in fused[: max(req.k * 5, 50)]]
        trace: list[dict[str, Any]] = []
        if policy is not None and ctx is not None:
            chosen, trace = policy.apply(ctx, ranked, snap)
            picks = [(c.item_id, float(c.score), dict(c.sources), tuple(c.reasons), c.display_price_minor)
                     for c in chosen]
        else:
            picks = [(r.item_id, r.score, dict(r.sources), (), None) for r in ranked]
        hits = self._hits(picks, mask, relaxation.parsed, req.k)
        explain = None
        if req.explain:
            explain = {"matched": matched, "mode": req.mode, "candidates": len(fused), "policy_trace": trace,
                       "took_ms": round((time.perf_counter() - start) * 1000, 3),
                       "affinities": dict(sorted(ctx.affinities.items(), key=lambda kv: -kv[1])[:10]) if ctx else {}}
        return SearchResponse(tuple(hits), relaxation.parsed, relaxation.dropped, matched, explain)

    def _keyword_text(self, pq: ParsedQuery) -> str:
        parts = [pq.text] + [c.text for c in pq.constraints if c.kind in ("category", "brand", "attribute")]
        return " ".join(p for p in parts if p and p != "filter")

    def _retrieve(self, mode: str, pq: ParsedQuery, mask: Mask,
                  qv: npt.NDArray[np.float32] | None) -> dict[str, _Ranked]:
        k = self.config.candidates
        out: dict[str, _Ranked] = {}
        if mode in ("hybrid", "bm25"):
            text = self._keyword_text(pq)
            if text:
                found = self.keyword_.search([text], k=k, mask=mask)
                out["bm25"] = (found.rows[0], found.scores[0])
        if mode in ("hybrid", "dense") and qv is not None:
            out["dense"] = self._dense_top(qv, mask, k)
        return out

    def _dense_top(self, qv: npt.NDArray[np.float32], mask: Mask, k: int) -> _Ranked:
        """Best inner products among ``mask`` rows through the vector index (snapshot rows, best first)."""
        index: VectorIndex = self.vindex_
        cached = self._index_rows
        if cached is None or cached[0] != index.version:
            rows_of = self.snapshot_.index
            cached = (index.version, np.fromiter((rows_of[i] for i in index.ids), dtype=np.int64, count=len(index)))
            self._index_rows = cached
        snap_rows = cached[1]
        found = index.search(qv[None, :].astype(np.float32), k=k, mask=mask[snap_rows])
        keep = found.rows[0] >= 0
        return snap_rows[found.rows[0][keep]], found.scores[0][keep].astype(np.float32)

    def _fuse(self, sources: Mapping[str, _Ranked], mask: Mask,
              qv: npt.NDArray[np.float32] | None, mode: str) -> list[tuple[int, float, dict[str, tuple[float, int]]]]:
        """Fused rows, best first, as ``(row, score, extra sources)``: what each retriever said about a row
        is added by :meth:`_SourceInfo.of` only for the rows that are returned."""
        rrf = self.config.rrf_k
        k = self.config.candidates
        parts = [(name, rows, scores) for name, (rows, scores) in sources.items() if rows.size]
        if parts:
            all_rows = np.concatenate([rows for _, rows, _ in parts])
            contrib = np.concatenate([float(self.config.weights.get(name, 1.0)) / (rrf + np.arange(rows.size) + 1.0)
                                      for name, rows, _ in parts])
            uniq, inverse = np.unique(all_rows, return_inverse=True)
            total = np.bincount(inverse, weights=contrib).astype(np.float64)
            order = np.lexsort((uniq, -total))
            fused: npt.NDArray[np.int64] = uniq[order].astype(np.int64)
            fused_scores = total[order]
        else:
            fused, fused_scores = np.zeros(0, dtype=np.int64), np.zeros(0)
        none: dict[str, tuple[float, int]] = {}  # shared and never mutated: later stages copy before adding
        out = [(r, s, none) for r, s in zip(fused.tolist(), fused_scores.tolist(), strict=True)]
        if len(out) < k:
            rest = mask.copy()
            rest[fused] = False
            if rest.any():
                if qv is not None and mode != "bm25":
                    extra, _ = self._dense_top(qv, rest, k - len(out))
                else:
                    extra = np.flatnonzero(rest)[: k - len(out)]
                floor = float(fused_scores[-1]) if fused_scores.size else 1.0 / rrf
                out += [(r, floor * 0.5 / (1 + n), {"filter": (0.0, len(fused) + n)})
                        for n, r in enumerate(extra.tolist())]
        return out

    def _personalize(self, fused: list[tuple[int, float, dict[str, tuple[float, int]]]],
                     ctx: Context | None) -> list[tuple[int, float, dict[str, tuple[float, int]]]]:
        if ctx is None or not ctx.personalize or not ctx.affinities or not fused or self.config.personalization <= 0:
            return fused
        aff = ctx.affinities
        raw = [sum(aff.get(k, 0.0) for k in self.snapshot_.affinity_keys(r)) for r, _, _ in fused]
        top = max(raw)
        if top <= 0:
            return fused
        bonus = 0.1 * self.config.personalization / (self.config.rrf_k + 1)
        out = []
        for (r, s, src), a in zip(fused, raw, strict=True):
            if a > 0:
                src = {**src, "personal": (round(a / top, 4), 0)}
            out.append((r, s + bonus * a / top, src))
        return sorted(out, key=lambda t: (-t[1], t[0]))

    def _sort(self, fused: list[tuple[int, float, dict[str, tuple[float, int]]]], mask: Mask,
              sort: str) -> list[tuple[int, float, dict[str, tuple[float, int]]]]:
        snap = self.snapshot_
        relevance = {r: s for r, s, _ in fused}
        info = {r: src for r, _, src in fused}
        rows = np.flatnonzero(mask)
        pool = rows.tolist() if rows.size <= self.config.sort_pool else [r for r, _, _ in fused]
        def key(r: int) -> tuple[float, float, int]:
            if sort == "rating":
                v = float(snap.rating[r])
                primary = -v if v == v else float("inf")
            elif sort in ("price_asc", "price_desc"):
                p = int(snap.price_minor[r])
                primary = float("inf") if p < 0 else (p if sort == "price_asc" else -p)
            else:
                primary = -float(snap.created_ms[r])
            return primary, -relevance.get(r, 0.0), r
        ordered = sorted(pool, key=key)
        n = len(ordered)
        return [(r, float(n - i) / n, info.get(r, {"sort": (0.0, i)})) for i, r in enumerate(ordered)]

    def _hits(self, picks: list[tuple[str, float, dict[str, tuple[float, int]], tuple[str, ...], int | None]],
              mask: Mask, pq: ParsedQuery, k: int) -> list[SearchHit]:
        snap = self.snapshot_
        matched = [c.label() for c in pq.constraints]
        hits: list[SearchHit] = []
        for item_id, score, sources, reasons, display in picks:
            i = snap.index.get(item_id, -1)
            if i < 0 or not mask[i]:
                continue  # a policy pin outside the query's constraints is not a search result
            why = ([f"matches {', '.join(matched)}"] if matched else []) + [
                f"{name} rank {rank + 1}" for name, (_, rank) in sorted(sources.items()) if name in ("bm25", "dense")]
            if "personal" in sources:
                why.append("matches your recent interests")
            hits.append(SearchHit(item_id, round(score, 6), len(hits), sources, tuple(why) + tuple(reasons),
                                  display if display is not None else _price(snap, i)))
            if len(hits) >= k:
                break
        return hits

    def stats(self) -> dict[str, float]:
        """Queries answered, and the zero-result rates before and after relaxation."""
        n = max(self.queries, 1)
        return {"queries": self.queries, "zero_result_rate_strict": self.zero_before_relax / n,
                "zero_result_rate": self.zero_after_relax / n}


class _SourceInfo:
    """Score and rank of a row in each retriever's list, looked up for returned rows only."""

    def __init__(self, sources: Mapping[str, _Ranked]) -> None:
        self.parts = [(name, dict(zip(rows.tolist(), range(rows.size), strict=True)), scores)
                      for name, (rows, scores) in sources.items() if rows.size]

    def of(self, row: int, extra: Mapping[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
        """``{source: (score rounded to 5 places, rank)}`` of ``row``, then ``extra`` (personal, filter, sort)."""
        out: dict[str, tuple[float, int]] = {}
        for name, rank_of, scores in self.parts:
            rank = rank_of.get(row)
            if rank is not None:
                out[name] = (round(float(scores[rank]), 5), rank)
        out.update(extra)
        return out


def _price(snap: CatalogSnapshot, i: int) -> int | None:
    p = int(snap.price_minor[i])
    return p if p >= 0 else None


def _check(r: SearchRequest, i: int) -> None:
    if not isinstance(r.query, str) or not r.query.strip() or len(r.query) > 500:
        raise ValidationError(f"requests[{i}].query", r.query, "must be a non-empty string of at most 500 characters")
    if isinstance(r.k, bool) or not isinstance(r.k, int) or not 1 <= r.k <= 100:
        raise ValidationError(f"requests[{i}].k", r.k, "must be an integer in [1, 100]")
    if r.mode not in MODES:
        raise ValidationError(f"requests[{i}].mode", r.mode, f"must be one of {', '.join(MODES)}")
