"""A small synthetic store with every candidate source fitted on it (built once per test session)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features.context import Context, ContextRequest
from shopkeep.index import VectorIndex
from shopkeep.models.base import Interactions, ItemFeatures
from shopkeep.models.registry import create_model
from shopkeep.retrieval import (
    AffinitySource,
    AssociationRules,
    CandidateSource,
    ComplementsSource,
    ContentSource,
    CovisitSource,
    ModelBinding,
    PopularSource,
    SequentialSource,
    TwoTowerSource,
    baskets_from_events,
)
from shopkeep.simulate import StoreConfig, SyntheticStore, generate_store

FAST_TT: dict[str, Any] = {"d": 16, "max_len": 8, "batch_size": 64, "n_negatives": 32, "num_threads": 1,
                           "text_encoder": "hashing", "cache_dir": None, "epochs_without_validation": 2}
FAST_SAS: dict[str, Any] = {"d": 16, "n_layers": 1, "max_len": 10, "batch_size": 64, "num_threads": 1,
                            "epochs_without_validation": 2}


@dataclass
class World:
    store: SyntheticStore
    snapshot: CatalogSnapshot
    sequences: dict[str, list[str]]
    sources: dict[str, CandidateSource]


def item_features(snapshot: CatalogSnapshot) -> ItemFeatures:
    """Titles and affinity-key attribute ids of every snapshot item (model index = snapshot index)."""
    vocab: dict[str, int] = {}
    attrs = tuple(np.array([vocab.setdefault(k, len(vocab)) for k in snapshot.affinity_keys(i)], dtype=np.int64)
                  for i in range(snapshot.n))
    return ItemFeatures(len(vocab), attrs, tuple(it.title for it in snapshot.items))


def _graph_copy(index: VectorIndex, metric: str) -> VectorIndex:
    """The same vectors in an HNSW index that searches the graph even under selective masks."""
    from shopkeep.index.ann import HNSWIndex

    out = HNSWIndex(index.dim, metric, threads=1, brute_force_below=0, brute_force_fraction=0.0)
    out.add(list(index.ids), index.vectors(list(index.ids)))
    return out


def build_world(seed: int = 5) -> World:
    store = generate_store(StoreConfig(n_items=300, n_shoppers=500, n_days=14, seed=seed))
    snap = CatalogSnapshot.from_items(store.items)
    seqs = store.interaction_sequences()
    ids = snap.item_ids
    train = Interactions(tuple(snap.indices(s) for s in seqs.values()), snap.n, item_features(snap))
    knn = ModelBinding(create_model("itemknn").fit(train), ids)
    sources: list[CandidateSource] = [
        SequentialSource(knn, snap),
        SequentialSource(ModelBinding(create_model("sasrec", **FAST_SAS).fit(train), ids), snap, name="sasrec"),
        CovisitSource.from_itemknn(knn, snap),
        CovisitSource.from_sequences(seqs.values(), snap, name="covisit_own"),
        content := ContentSource.from_content_knn(
            ModelBinding(create_model("content_knn", text_encoder="hashing", cache_dir=None).fit(train), ids), snap),
        tt := TwoTowerSource(ModelBinding(create_model("two_tower", **FAST_TT).fit(train), ids), snap),
        ComplementsSource(AssociationRules(min_count=1, min_lift=0.0).fit(baskets_from_events(store.events)), snap),
    ]
    popular = PopularSource(snap).fit(store.events)
    sources += [popular, AffinitySource(snap, prior=popular.scores())]
    sources += [ContentSource(_graph_copy(content.index, "cosine"), snap, name="content_hnsw"),
                TwoTowerSource(tt.binding, snap, name="two_tower_hnsw", index=_graph_copy(tt.index, "ip"))]
    return World(store, snap, seqs, {s.name: s for s in sources})


@pytest.fixture(scope="session")
def world() -> World:
    return build_world()


def random_contexts(world: World, n: int, rng: np.random.Generator) -> list[Context]:
    """Contexts on every surface with recent items, carts, a pdp item and affinities drawn from the store."""
    ids = world.snapshot.item_ids
    histories = list(world.sequences.values())
    out = []
    for r in range(n):
        hist = tuple(histories[int(rng.integers(len(histories)))])[-int(rng.integers(0, 8)):] if r % 5 else ()
        pdp = ids[int(rng.integers(len(ids)))] if r % 3 == 0 else None
        cart = tuple(ids[int(i)] for i in rng.integers(len(ids), size=int(rng.integers(0, 3))))
        keys = world.snapshot.affinity_keys(int(rng.integers(len(ids))))
        aff = {k: float(rng.uniform(0.1, 3)) for k in keys[: int(rng.integers(0, 4))]}
        surface = ("home", "pdp", "cart")[r % 3]
        out.append(Context(ContextRequest(surface=surface, item_id=pdp, cart_item_ids=cart), now_ms=0,
                           recent_items=hist, cart_items=cart, affinities=aff, personalize=r % 7 != 6))
    return out


@pytest.fixture(scope="session")
def make_contexts(world: World) -> Any:
    """``make_contexts(n, seed)``: random contexts over the session's store."""
    return lambda n, seed: random_contexts(world, n, np.random.default_rng(seed))
