"""The visit-context prior read at engine start straight from the stored JSON equals the one built by
parsing every logged event (the start-up fast path changes speed only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.events.log import EVENTS_LOG
from shopkeep.events.schema import parse_event
from shopkeep.explore.context_prior import ContextPrior
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.pipeline.visit_prior import VisitPriorStage
from shopkeep.simulate import StoreConfig, event_to_wire, generate_store
from shopkeep.storage import open_store


def test_prior_from_stored_json_equals_the_prior_from_parsed_events(tmp_path: Path) -> None:
    synthetic = generate_store(StoreConfig(n_items=400, n_shoppers=300, n_days=10, seed=8))
    store = open_store(f"sqlite:///{tmp_path}/shop.db")
    try:
        CatalogRepository(store).upsert_many(synthetic.items)
        wire = [event_to_wire(e) for e in synthetic.events]
        rng = np.random.default_rng(2)
        for j in rng.choice(len(wire), size=len(wire) // 3, replace=False).tolist():  # mixed-case, padded values
            wire[j] = {**wire[j], "context": {"device": " Mobile ", "campaign": f"CAMP-{j % 4}", "store": "s-1"}}
        Ingestor(store).ingest_batch(wire)
        snapshot = CatalogSnapshot.from_repository(CatalogRepository(store))
        stage = VisitPriorStage(snapshot, page=97).fit(store)  # pages that do not divide the log
        payloads = [rec.payload for rec in store.read(EVENTS_LOG, after_seq=0, k=10**9)]
        reference = ContextPrior(shrinkage=stage.shrinkage).fit(
            stage._rows(parse_event(json.loads(p)) for p in payloads), n_items=snapshot.n)
    finally:
        store.close()
    assert stage.prior_.counts_.keys() == reference.counts_.keys()
    assert len(stage.prior_.counts_) > 5  # devices, campaigns and stores were counted
    for key, counts in reference.counts_.items():
        assert np.array_equal(stage.prior_.counts_[key], counts), key
    assert np.array_equal(stage.prior_.total_, reference.total_)
    assert stage.knows({"campaign": "camp-1"}) and not stage.knows({"campaign": "camp-9"})
