"""The read path's retrieval bindings: candidate sources built from a catalog snapshot and artifacts.

:class:`SourceSet` holds every named source of one (snapshot, artifact version) pair and one
:class:`~shopkeep.retrieval.Retriever` per surface. It is immutable from the request's point of view:
the Engine builds a new set (copy-on-write) when the catalog changes or new artifacts load, and swaps
one reference, so a request in flight finishes on the set it started with.

Sources (each present only when its inputs are): ``popular`` (trending counts, updated on the write
path; also the backfill), ``affinity`` (hot session affinities), ``content`` (hashed title/brand/
category/attribute text vectors, computed for every item, so a new item is found at once),
``sequential`` and ``covisit`` (a trained itemknn or sasrec from the artifacts), ``lookalike`` (a trained
lookalike model, fused only for shoppers with 0-2 interactions), ``stated`` (zero-party preferences)
and ``context`` (a visit-context prior: device, referrer, campaign, channel; shoppers with no history).

With a bus configured, ``popular`` is a :class:`SharedPopularSource`: it reads the trend and all-time
counts that ``shopkeep worker`` keeps in the shared aggregates (beside the online state) instead of
counting the events this process happened to receive, so every API worker serves the same popularity.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import StorageError
from shopkeep.events.bus_aggregates import SharedAggregates
from shopkeep.index import EXACT_BELOW, VectorIndex, cached_index
from shopkeep.models.content import embed_texts
from shopkeep.pipeline.artifacts import LoadedArtifacts
from shopkeep.retrieval.affinity import AffinitySource
from shopkeep.retrieval.base import CandidateSource
from shopkeep.retrieval.binding import ModelBinding
from shopkeep.retrieval.coldstart import PreferenceSource, ShortHistorySource, VisitContextSource, VisitPrior
from shopkeep.retrieval.fusion import SURFACE_WEIGHTS, Retriever
from shopkeep.retrieval.sources import CovisitSource, PopularSource, SequentialSource
from shopkeep.retrieval.vectors import ContentSource
from shopkeep.types import Event, Item

__all__ = ["SURFACES", "SharedPopularSource", "SourceSet", "build_sources", "item_text"]

log = logging.getLogger("shopkeep.engine")

#: Surfaces the engine answers.
SURFACES = ("home", "pdp", "cart")
#: Seconds the engine's local popularity scores serve after new events before they are rescored (the
#: shared popularity's refresh is the same 1 s; see PopularSource's ``rescore_s``).
POPULAR_RESCORE_S = 1.0
#: Sources the home surface uses even without the retrieval defaults naming them.
_EXTRA_WEIGHTS: Mapping[str, Mapping[str, float]] = {
    # lookalike: chosen on Beauty validation; context: speaks only for shoppers with no history
    "home": {"covisit": 0.5, "lookalike": 0.3, "stated": 1.0, "context": 1.0},
    "pdp": {"popular": 0.05},
    "cart": {"content": 0.3, "popular": 0.05},
}


def item_text(item: Item) -> str:
    """The text a content vector is computed from: title, brand, categories and attribute values."""
    attrs = " ".join(f"{k} {' '.join(v) if isinstance(v, tuple) else v}" for k, v in sorted(item.attributes.items()))
    return " ".join(p for p in (item.title, item.brand or "", " ".join(item.category), attrs) if p)


def _embed(items: Sequence[Item]) -> npt.NDArray[np.float32]:
    return embed_texts([item_text(it) for it in items], encoder="hashing", cache_dir=None)


@dataclass(frozen=True, eq=False)
class SourceSet:
    """Sources over one snapshot and one artifact version, and a retriever per surface."""

    snapshot: CatalogSnapshot
    sources: Mapping[str, CandidateSource]
    retrievers: Mapping[str, Retriever]
    artifacts: LoadedArtifacts | None
    content_index: VectorIndex | None
    popular: PopularSource
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The visit-context prior behind the ``context`` source (its ``item_ids`` name its indices).
    visit_prior: VisitPrior | None = None

    @property
    def version(self) -> str | None:
        """The artifact version in use (None: no trained models, cold-start sources only)."""
        return self.artifacts.version if self.artifacts is not None else None

    def retriever(self, surface: str) -> Retriever:
        """The retriever of ``surface`` (home for unknown ones)."""
        return self.retrievers.get(surface, self.retrievers["home"])

    def add_events(self, events: Iterable[Event]) -> None:
        """Fold accepted events into the live popularity counts (the write path)."""
        with self.lock:
            self.popular.add(events)

    def with_items(self, items: Sequence[Item], snapshot: CatalogSnapshot) -> SourceSet:
        """A new set over ``snapshot`` (which already holds ``items``); their content vectors are indexed
        in a copy of the index (requests in flight keep the old one)."""
        index = self.content_index
        if index is not None and items:
            index = index.copy()
            index.upsert([it.item_id for it in items], _embed(items))
        return _assemble(snapshot, self.artifacts, self.popular.with_snapshot(snapshot), index, self.visit_prior)


class SharedPopularSource(PopularSource):
    """:class:`PopularSource` over the shared aggregates: the ``top_n`` items by decayed trend and by
    all-time total, read again at most every ``refresh_s`` seconds (so API workers agree within that).

    :meth:`add` counts nothing: ``shopkeep worker`` folds the events in from the bus, exactly once. Until
    the aggregates hold any count (a fresh deployment), the counts the source started with (training's)
    stay in use; when the aggregates cannot be read, the last counts stay in use (the failure is logged).
    """

    def __init__(self, snapshot: CatalogSnapshot, aggregates: SharedAggregates, *, refresh_s: float = 1.0,
                 top_n: int = 5000, **kwargs: Any) -> None:
        super().__init__(snapshot, **kwargs)
        self.aggregates = aggregates
        self.refresh_s = refresh_s
        self.top_n = top_n
        self._read_at = -float("inf")
        self._read_lock = threading.Lock()

    def add(self, events: Iterable[Event]) -> Self:
        """Nothing to fold in here: the shared counts are the worker's."""
        return self

    def refresh(self, *, force: bool = False) -> bool:
        """Read the shared counts when ``refresh_s`` has passed (or ``force``); True when they were read."""
        now = time.monotonic()
        if not force and now - self._read_at < self.refresh_s:
            return False
        with self._read_lock:
            if not force and now - self._read_at < self.refresh_s:
                return False
            self._read_at = now
            now_ms = int(time.time() * 1000)
            try:
                trend = dict(self.aggregates.popular(self.top_n, trending=True, now_ms=now_ms))
                total = dict(self.aggregates.popular(self.top_n, trending=False))
            except StorageError as exc:
                log.warning("shared popularity unreadable, keeping the last counts: %s", exc)
                return False
            if not total:  # nothing aggregated yet: keep the counts we started with
                return False
            # new tables: PopularSource rebuilds its dense arrays and scores from them
            self.trend_, self.total_, self.ref_ms_ = trend, total, now_ms
            self._changes += 1
            self._scores = None
            return True

    def scores(self) -> npt.NDArray[np.float64]:
        """:meth:`PopularSource.scores` over the shared counts (refreshed first when due)."""
        self.refresh()
        return super().scores()

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same shared counts over ``snapshot``."""
        out = type(self)(snapshot, self.aggregates, refresh_s=self.refresh_s, top_n=self.top_n, name=self.name,
                         half_life_hours=self.half_life_hours, global_weight=self.global_weight,
                         event_weights=self.event_weights)
        out.trend_, out.total_, out.ref_ms_ = dict(self.trend_), dict(self.total_), self.ref_ms_
        out._read_at = self._read_at
        return out


def _model_sources(snapshot: CatalogSnapshot, artifacts: LoadedArtifacts | None) -> dict[str, CandidateSource]:
    out: dict[str, CandidateSource] = {}
    if artifacts is None:
        return out
    ids = artifacts.manifest.item_ids
    models = artifacts.models
    sequential = next((n for n in ("sasrec", "sasrec_session", "itemknn") if n in models), None)
    if sequential is not None:
        out["sequential"] = SequentialSource(ModelBinding(models[sequential], ids), snapshot, exclude_history=True)
    if "lookalike" in models:  # speaks only for shoppers with 0-2 interactions (retrieval/coldstart.py)
        out["lookalike"] = ShortHistorySource(SequentialSource(ModelBinding(models["lookalike"], ids), snapshot,
                                                               name="lookalike", exclude_history=True))
    if "itemknn" in models:
        out["covisit"] = CovisitSource.from_itemknn(ModelBinding(models["itemknn"], ids), snapshot)
    return out


def _assemble(snapshot: CatalogSnapshot, artifacts: LoadedArtifacts | None, popular: PopularSource,
              content_index: VectorIndex | None, visit_prior: VisitPrior | None = None) -> SourceSet:
    sources: dict[str, CandidateSource] = {"popular": popular}
    sources["affinity"] = AffinitySource(snapshot, prior=_prior(popular))
    sources["stated"] = PreferenceSource(snapshot, prior=_prior(popular))
    if content_index is not None and len(content_index):
        sources["content"] = ContentSource(content_index, snapshot)
    sources.update(_model_sources(snapshot, artifacts))
    ids = getattr(visit_prior, "item_ids", None)
    if visit_prior is not None and ids is not None:
        sources["context"] = VisitContextSource(visit_prior, ids, snapshot)
    retrievers = {}
    for surface in SURFACES:
        weights = {**SURFACE_WEIGHTS[surface], **_EXTRA_WEIGHTS.get(surface, {})}
        retrievers[surface] = Retriever.for_surface(surface, sources, weights, index=snapshot.index)
    return SourceSet(snapshot, sources, retrievers, artifacts, content_index, popular, visit_prior=visit_prior)


def _prior(popular: PopularSource) -> npt.NDArray[np.float64]:
    scores = np.asarray(popular.scores(), dtype=np.float64)
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else scores


def build_sources(snapshot: CatalogSnapshot, artifacts: LoadedArtifacts | None = None,
                  popular_counts: Mapping[str, Any] | None = None,
                  events: Iterable[Event] = (), *, exact_below: int = EXACT_BELOW,
                  shared: SharedAggregates | None = None, shared_refresh_s: float = 1.0,
                  visit_prior: VisitPrior | None = None) -> SourceSet:
    """Every source for ``snapshot``: content vectors for all items (HNSW from ``exact_below`` items;
    with artifacts, the built index is cached next to them and reused while the item texts are the
    same), popularity from ``popular_counts`` (saved by training) and/or ``events`` -- or, with
    ``shared`` aggregates, from those (read every ``shared_refresh_s``; training's counts until they
    hold any) -- and the trained models of
    ``artifacts``; ``visit_prior`` (with ``item_ids``) backs the ``context`` source."""
    popular = SharedPopularSource(snapshot, shared, refresh_s=shared_refresh_s) if shared is not None \
        else PopularSource(snapshot, rescore_s=POPULAR_RESCORE_S)
    _load_counts(popular, popular_counts)
    popular.add(events)  # (the shared source counts nothing here: the worker does)
    return _assemble(snapshot, artifacts, popular, _content_index(snapshot, artifacts, exact_below), visit_prior)


def _load_counts(popular: PopularSource, counts: Mapping[str, Any] | None) -> None:
    """Start ``popular`` from the counts training saved (trend, total, their reference time)."""
    if counts:
        popular.trend_ = {str(k): float(v) for k, v in counts.get("trend", {}).items()}
        popular.total_ = {str(k): float(v) for k, v in counts.get("total", {}).items()}
        ref = counts.get("ref_ms")
        popular.ref_ms_ = int(ref) if ref is not None else None


def _content_index(snapshot: CatalogSnapshot, artifacts: LoadedArtifacts | None,
                   exact_below: int) -> VectorIndex | None:
    """Content vectors of every item, cached next to the artifacts while the item texts are the same."""
    if not snapshot.n:
        return None
    texts = [item_text(it) for it in snapshot.items]
    key = hashlib.sha256("\0".join(f"{i}\0{t}" for i, t in zip(snapshot.item_ids, texts, strict=True))
                         .encode()).hexdigest()
    cache = artifacts.path.parent / ".content-index" if artifacts is not None else None
    return cached_index(key, cache, lambda: (snapshot.item_ids, embed_texts(texts, encoder="hashing",
                                                                             cache_dir=None)),
                        "cosine", n_items=snapshot.n, exact_below=exact_below)
