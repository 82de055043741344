"""``train_artifacts`` trains the learned re-ranker from the stored logs and the Engine serves it:
from served slates joined to clicks (logged positions as a feature) when there are enough, else from
next-item requests on a later window than its retrievers; the non-learned fallback says why."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.serving.conftest import event

from shopkeep.catalog import CatalogRepository
from shopkeep.config import Config, RankingConfig
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.artifacts import RANKER, load_artifacts, train_artifacts
from shopkeep.pipeline.engine import Engine
from shopkeep.ranking import Objective, Ranker
from shopkeep.ranking.features import SERVING_POSITION
from shopkeep.simulate import StoreConfig, event_to_wire, generate_store
from shopkeep.storage import open_online_state, open_store
from shopkeep.storage.base import Store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rt")
    synthetic = generate_store(StoreConfig(n_items=300, n_shoppers=300, n_days=14, seed=21))
    store = open_store(f"sqlite:///{folder}/base.db")
    CatalogRepository(store).upsert_many(synthetic.items)
    eng = Engine(store, open_online_state("memory://"), log_slates=False)
    eng.ingest([event_to_wire(e) for e in synthetic.events])
    eng.close()
    return folder / "base.db"


def _copy(store_path: Path, tmp_path: Path) -> Store:
    target = tmp_path / "s.db"
    target.write_bytes(store_path.read_bytes())
    return open_store(f"sqlite:///{target}")


def test_next_item_ranker_trains_on_a_later_window_and_serves(store_path: Path, tmp_path: Path) -> None:
    store = _copy(store_path, tmp_path)
    manifest = train_artifacts(store, tmp_path / "art", ["itemknn"])
    rep = manifest.ranker
    assert rep is not None and rep["mode"] == "next_item" and rep["n_train"] >= 20 and rep["n_calibration"] >= 20
    w = rep["windows_ms"]
    assert w["retrievers_until"] <= w["train_from"] < w["calibration_from"] < w["until"]  # no stacking leakage
    folder = tmp_path / "art" / manifest.version / RANKER
    assert sorted(p.name for p in folder.iterdir()) == ["click.txt", "purchase.txt", "ranker.json"]  # no pickle
    meta = json.loads((folder / "ranker.json").read_text())
    assert meta["stats"]["as_of_ms"] == w["until"]  # serving reads item stats as of the end of the log
    assert "ranker" in manifest.train_seconds
    cfg = dataclasses.replace(Config(), ranking=RankingConfig(margin=0.5, return_cost_fraction=0.2, version="m1"))
    eng = Engine(store, open_online_state("memory://"), cfg, artifacts=load_artifacts(tmp_path / "art"))
    try:
        slate = eng.recommend(ContextRequest(anonymous_id="x1", k=5, explain=True))
        assert slate.explain is not None and slate.explain["ranker"]["kind"] == "learned"
        assert slate.explain["objective"] == {"relevance": 1.0, "margin": 0.5, "conversion": 0.0, "version": "m1"}
    finally:
        eng.close()


def test_expected_contribution_margin_uses_purchase_probability_and_return_cost(store_path: Path,
                                                                                 tmp_path: Path) -> None:
    store = _copy(store_path, tmp_path)
    manifest = train_artifacts(store, tmp_path / "art", ["itemknn"])
    ranker = Ranker.load(tmp_path / "art" / manifest.version / RANKER, Objective(margin=1.0))
    ranker.return_cost_fraction = 0.25
    eng = Engine(store, open_online_state("memory://"), artifacts=load_artifacts(tmp_path / "art"), ranker=ranker,
                 log_slates=False)
    try:
        b = eng._bindings
        ctx = eng.features.context(ContextRequest(anonymous_id="m1"))
        mask = b.policy.eligibility(b.snapshot, ctx)
        cands = b.sources.retriever("home").retrieve([ctx], [mask], k=50)[0]
        ranked = ranker.rank(ctx, cands, b.snapshot)
        assert ranked and any(s.p_purchase > 0 for s in ranked)
        for s in ranked:
            i = b.snapshot.index[s.item_id]
            price, cost = float(b.snapshot.price_minor[i]), float(b.snapshot.cost_minor[i])
            assert 0.0 <= s.p_purchase <= 1.0 and 0.0 <= s.p_click <= 1.0
            assert math.isclose(s.expected_margin_minor, s.p_purchase * (price - cost - 0.25 * price), rel_tol=1e-9,
                                abs_tol=1e-9)
    finally:
        eng.close()


def test_served_slates_with_clicks_train_the_ranker_with_positions(store_path: Path, tmp_path: Path) -> None:
    store = _copy(store_path, tmp_path)
    eng = Engine(store, open_online_state("memory://"))
    rng = random.Random(3)
    anons = sorted({json.loads(r.payload).get("anonymous_id") for r in store.read("events", k=5000)} - {None})
    for anon in anons[:160]:
        slate = eng.recommend(ContextRequest(anonymous_id=anon, k=8))
        for it in slate.items:
            if rng.random() < 0.5 / (1 + it.position):  # position-biased clicks
                eng.ingest([event("click", anon, item_id=it.item_id, trace_id=slate.trace_id, position=it.position)])
    eng.close()
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    manifest = train_artifacts(store, tmp_path / "art", ["itemknn"])
    rep = manifest.ranker
    assert rep is not None and rep["mode"] == "slates", rep
    assert rep["n_train"] + rep["n_calibration"] == 160 and rep["windows_ms"]["train_from"] < rep["windows_ms"][
        "calibration_from"]
    meta = json.loads((tmp_path / "art" / manifest.version / RANKER / "ranker.json").read_text())
    assert meta["serving_position"] == SERVING_POSITION and "logged_position" in meta["feature_names"]
    loaded = Ranker.load(tmp_path / "art" / manifest.version / RANKER)
    assert loaded.learned
    store.close()


def test_fallbacks_say_why(store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _copy(store_path, tmp_path)
    manifest = train_artifacts(store, tmp_path / "art", ["itemknn"], ranker=False)
    assert manifest.ranker is None
    loaded = load_artifacts(tmp_path / "art")
    off = dataclasses.replace(Config(), ranking=RankingConfig(learned=False))
    for cfg, reason in ((Config(), "no learned ranker in the artifacts"), (off, "ranking.learned is off")):
        eng = Engine(store, open_online_state("memory://"), cfg, artifacts=loaded, log_slates=False)
        slate = eng.recommend(ContextRequest(anonymous_id="f1", k=3, explain=True))
        assert slate.explain is not None and slate.explain["ranker"] == {"kind": "non-learned", "reason": reason}
    train_artifacts(store, tmp_path / "art", ["itemknn"])
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if not installed: import raises ImportError
    eng = Engine(store, open_online_state("memory://"), artifacts=load_artifacts(tmp_path / "art"), log_slates=False)
    slate = eng.recommend(ContextRequest(anonymous_id="f2", k=3, explain=True))
    assert slate.explain is not None and slate.explain["ranker"]["reason"] == "lightgbm is not installed"
    assert np.all([0 < it.propensity < 1 for it in slate.items])
    eng.close()
