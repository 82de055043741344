"""The engine's content source on an HNSW index: an item upserted through the source set is found at once,
and the set in use before the upsert is not changed (copy-on-write)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features.context import Context, ContextRequest
from shopkeep.pipeline.stages import build_sources
from shopkeep.simulate import StoreConfig, generate_store

pytest.importorskip("faiss", reason="the ml extra (faiss-cpu) is not installed")

from shopkeep.index.ann import HNSWIndex


def _pdp(item_id: str) -> Context:
    return Context(request=ContextRequest(surface="pdp", anonymous_id="a", item_id=item_id), now_ms=0)


def test_an_upserted_item_is_found_at_once_on_hnsw() -> None:
    store = generate_store(StoreConfig(n_items=300, n_shoppers=50, n_days=2, seed=3))
    snapshot = CatalogSnapshot.from_items(store.items)
    sources = build_sources(snapshot, exact_below=100)
    assert isinstance(sources.content_index, HNSWIndex)
    anchor = store.items[17]
    twin = dataclasses.replace(anchor, item_id="twin-of-17")
    fresh = sources.with_items([twin], snapshot.with_items([twin]))
    assert "twin-of-17" in fresh.content_index and "twin-of-17" not in sources.content_index
    content = fresh.sources["content"]
    (hits,) = content.retrieve([_pdp(anchor.item_id)], [np.ones(fresh.snapshot.n, dtype=bool)], 5)
    assert hits and hits[0].item_id == "twin-of-17"  # same text, same vector: the nearest item
    (old,) = sources.sources["content"].retrieve([_pdp(anchor.item_id)], [np.ones(snapshot.n, dtype=bool)], 5)
    assert "twin-of-17" not in {c.item_id for c in old}
