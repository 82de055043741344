"""The read path's retrieval bindings: candidate sources built from a catalog snapshot and artifacts.

:class:`SourceSet` holds every named source of one (snapshot, artifact version) pair and one
:class:`~shopkeep.retrieval.Retriever` per surface. It is immutable from the request's point of view:
the Engine builds a new set (copy-on-write) when the catalog changes or new artifacts load, and swaps
one reference, so a request in flight finishes on the set it started with.

Sources (each present only when its inputs are): ``popular`` (trending counts, updated on the write
path; also the backfill), ``affinity`` (hot session affinities), ``content`` (hashed title/brand/
category/attribute text vectors, computed for every item, so a new item is found at once),
``sequential`` and ``covisit`` (a trained itemknn or sasrec from the artifacts), ``lookalike`` (a trained
lookalike model, fused only for shoppers with 0-2 interactions) and ``stated`` (zero-party preferences).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.index import EXACT_BELOW, VectorIndex, cached_index
from shopkeep.models.content import embed_texts
from shopkeep.pipeline.artifacts import LoadedArtifacts
from shopkeep.retrieval.base import CandidateSource
from shopkeep.retrieval.binding import ModelBinding
from shopkeep.retrieval.coldstart import PreferenceSource, ShortHistorySource
from shopkeep.retrieval.fusion import SURFACE_WEIGHTS, Retriever
from shopkeep.retrieval.sources import AffinitySource, CovisitSource, PopularSource, SequentialSource
from shopkeep.retrieval.vectors import ContentSource
from shopkeep.types import Event, Item

__all__ = ["SURFACES", "SourceSet", "build_sources", "item_text"]

#: Surfaces the engine answers.
SURFACES = ("home", "pdp", "cart")
#: Sources the home surface uses even without the retrieval defaults naming them.
_EXTRA_WEIGHTS: Mapping[str, Mapping[str, float]] = {
    "home": {"covisit": 0.5, "lookalike": 0.3, "stated": 1.0},  # lookalike: chosen on Beauty validation
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
        return _assemble(snapshot, self.artifacts, self.popular.with_snapshot(snapshot), index)


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
              content_index: VectorIndex | None) -> SourceSet:
    sources: dict[str, CandidateSource] = {"popular": popular}
    sources["affinity"] = AffinitySource(snapshot, prior=_prior(popular))
    sources["stated"] = PreferenceSource(snapshot, prior=_prior(popular))
    if content_index is not None and len(content_index):
        sources["content"] = ContentSource(content_index, snapshot)
    sources.update(_model_sources(snapshot, artifacts))
    retrievers = {}
    for surface in SURFACES:
        weights = {**SURFACE_WEIGHTS[surface], **_EXTRA_WEIGHTS.get(surface, {})}
        retrievers[surface] = Retriever.for_surface(surface, sources, weights, index=snapshot.index)
    return SourceSet(snapshot, sources, retrievers, artifacts, content_index, popular)


def _prior(popular: PopularSource) -> npt.NDArray[np.float64]:
    scores = np.asarray(popular.scores(), dtype=np.float64)
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else scores


def build_sources(snapshot: CatalogSnapshot, artifacts: LoadedArtifacts | None = None,
                  popular_counts: Mapping[str, Any] | None = None,
                  events: Iterable[Event] = (), *, exact_below: int = EXACT_BELOW) -> SourceSet:
    """Every source for ``snapshot``: content vectors for all items (HNSW from ``exact_below`` items;
    with artifacts, the built index is cached next to them and reused while the item texts are the
    same), popularity from ``popular_counts`` (saved by training) and/or ``events``, the trained models
    of ``artifacts``."""
    popular = PopularSource(snapshot)
    if popular_counts:
        popular.trend_ = {str(k): float(v) for k, v in popular_counts.get("trend", {}).items()}
        popular.total_ = {str(k): float(v) for k, v in popular_counts.get("total", {}).items()}
        ref = popular_counts.get("ref_ms")
        popular.ref_ms_ = int(ref) if ref is not None else None
    popular.add(events)
    index = None
    if snapshot.n:
        texts = [item_text(it) for it in snapshot.items]
        key = hashlib.sha256("\0".join(f"{i}\0{t}" for i, t in zip(snapshot.item_ids, texts, strict=True))
                             .encode()).hexdigest()
        cache = artifacts.path.parent / ".content-index" if artifacts is not None else None
        index = cached_index(key, cache, lambda: (snapshot.item_ids, embed_texts(texts, encoder="hashing",
                                                                                 cache_dir=None)),
                             "cosine", n_items=snapshot.n, exact_below=exact_below)
    return _assemble(snapshot, artifacts, popular, index)
