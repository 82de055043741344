"""Calibration of the default synthetic store, and that its sequences are learnable but not trivial."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeep.simulate import StoreConfig, SyntheticStore, calibration_report, generate_store
from shopkeep.types import EventType, ReturnReason


@pytest.fixture(scope="module")
def store() -> SyntheticStore:
    return generate_store(StoreConfig(seed=42))


@pytest.fixture(scope="module")
def report(store: SyntheticStore) -> dict[str, object]:
    return calibration_report(store)


def test_default_store_is_demo_sized(store: SyntheticStore) -> None:
    assert store.catalog.n == 3000 and len(store.shoppers) == 2000
    assert 50_000 < len(store.events) < 300_000


def test_popularity_is_skewed(report: dict[str, object]) -> None:
    pop = report["popularity"]
    assert isinstance(pop, dict)
    assert 0.08 < pop["top1pct_view_share"] < 0.35
    assert 0.4 < pop["top10pct_view_share"] < 0.8
    assert 0.55 < pop["gini_views"] < 0.9


def test_funnel_rates_look_like_ecommerce(report: dict[str, object]) -> None:
    funnel = report["funnel"]
    assert isinstance(funnel, dict)
    assert 0.08 <= funnel["view_to_cart"] <= 0.12
    assert 0.30 <= funnel["cart_to_purchase"] <= 0.50


def test_return_rates_by_department(store: SyntheticStore, report: dict[str, object]) -> None:
    rates = report["return_rate_by_department"]
    reasons = report["return_reasons"]
    assert isinstance(rates, dict) and isinstance(reasons, dict)
    assert 0.15 <= (rates["apparel"] + rates["footwear"]) / 2 <= 0.30
    assert 0.10 <= rates["apparel"] <= 0.35 and 0.10 <= rates["footwear"] <= 0.35  # few purchases per seed
    assert rates["beauty"] <= 0.05 and rates["grocery"] <= 0.025
    assert reasons["too_small"] > 0 and reasons["too_large"] > 0
    by_id = {i.item_id: i for i in store.items}
    worn = [e.reason for e in store.events if e.type == EventType.RETURN
            and by_id[e.item_id or ""].category[0] in ("Apparel", "Footwear")]
    sized = sum(r in (ReturnReason.TOO_SMALL, ReturnReason.TOO_LARGE) for r in worn)
    assert sized > 0.6 * len(worn)


def test_session_lengths(report: dict[str, object]) -> None:
    views = report["session_views"]
    assert isinstance(views, dict)
    assert 2.0 <= views["mean"] <= 6.0 and views["p90"] >= 2 * views["p50"] and views["max"] <= 31


def _split(store: SyntheticStore) -> tuple[list[np.ndarray], np.ndarray, int]:
    index = store.item_index
    seqs = [[index[i] for i in s] for s in store.interaction_sequences().values() if len(s) >= 3]
    train = [np.array(s[:-1]) for s in seqs]
    return train, np.array([s[-1] for s in seqs]), store.catalog.n


def _hit_rate(scores: np.ndarray, history: list[np.ndarray], targets: np.ndarray, k: int = 10) -> float:
    """Full ranking, history excluded, a tie with the target counts against it."""
    hits = 0
    for row, hist, target in zip(scores, history, targets, strict=True):
        row = row.astype(float).copy()
        row[hist] = -np.inf
        rank = int((row >= row[target]).sum()) - 1
        hits += rank < k
    return hits / len(targets)


def _popularity(train: list[np.ndarray], n: int) -> np.ndarray:
    return np.bincount(np.concatenate(train), minlength=n).astype(float)


def _itemknn(train: list[np.ndarray], n: int) -> np.ndarray:
    x = np.zeros((len(train), n))
    for u, seq in enumerate(train):
        x[u, seq] = 1.0
    co = x.T @ x
    norm = np.sqrt(np.maximum(np.diag(co), 1.0))
    sim = co / norm[:, None] / norm[None, :]
    np.fill_diagonal(sim, 0.0)
    return sim


def test_itemknn_clearly_beats_popularity_but_is_not_perfect(store: SyntheticStore) -> None:
    train, targets, n = _split(store)
    assert len(targets) > 1000
    pop = _popularity(train, n)
    pop_hr = _hit_rate(np.tile(pop, (len(train), 1)), train, targets)
    sim = _itemknn(train, n)
    knn_scores = np.stack([sim[seq].sum(axis=0) + 1e-9 * pop for seq in train])
    knn_hr = _hit_rate(knn_scores, train, targets)
    assert pop_hr > 0.01
    assert knn_hr >= 1.3 * pop_hr, (knn_hr, pop_hr)
    assert knn_hr < 0.6, knn_hr
