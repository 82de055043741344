"""Ranker: objective parsing, margin weight, monotonic relevance ↔ margin trade-off, batch == scalar."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context, ContextRequest
from shopkeep.ranking import Objective, Ranker, ScoredItem
from shopkeep.retrieval import FusedCandidate
from shopkeep.types import Item, Money

CTX = Context(ContextRequest(), now_ms=0)


def _catalog(n: int, seed: int) -> tuple[CatalogSnapshot, list[FusedCandidate]]:
    rng = np.random.default_rng(seed)
    price = rng.integers(500, 20000, size=n)
    cost = (price * rng.uniform(0.3, 0.95, size=n)).astype(int)
    items = [Item(f"i{j}", f"Item {j}", price=Money(int(price[j]), "USD"), cost=Money(int(cost[j]), "USD"))
             for j in range(n)]
    scores = np.sort(rng.uniform(0.01, 0.05, n))[::-1]
    fused = [FusedCandidate(f"i{j}", float(s), {"a": (float(s), r)})
             for r, (j, s) in enumerate(zip(rng.permutation(n), scores, strict=True))]
    return CatalogSnapshot.from_items(items), fused


def test_relevance_only_keeps_the_fused_order() -> None:
    snap, fused = _catalog(50, 0)
    ranked = Ranker().rank(CTX, fused, snap)
    assert [s.item_id for s in ranked] == [f.item_id for f in fused]
    assert isinstance(ranked[0], ScoredItem) and ranked[0].sources == fused[0].sources
    assert ranked[0].relevance == 1.0 and ranked[0].score == pytest.approx(1.0)


def test_margin_weight_moves_expensive_high_margin_items_up() -> None:
    items = [Item("cheap", "Cheap", price=Money(800, "USD"), cost=Money(700, "USD")),
             Item("mid", "Mid", price=Money(3000, "USD"), cost=Money(2500, "USD")),
             Item("lux", "Lux", price=Money(15000, "USD"), cost=Money(5000, "USD")),
             Item("unpriced", "No price")]
    snap = CatalogSnapshot.from_items(items)
    fused = [FusedCandidate(i, s, {}) for i, s in (("cheap", 0.05), ("mid", 0.045), ("unpriced", 0.04),
                                                    ("lux", 0.03))]
    positions = []
    for w in (0.0, 0.3, 1.0, 3.0):
        ranked = Ranker(Objective(relevance=1.0, margin=w)).rank(CTX, fused, snap)
        positions.append([s.item_id for s in ranked].index("lux"))
        assert {s.item_id: s.expected_margin_minor for s in ranked}["unpriced"] == 0.0
    assert positions[0] == 3 and positions[-1] == 0
    assert positions == sorted(positions, reverse=True)
    with_returns = Ranker(Objective(margin=1.0), return_cost_fraction=0.5).rank(CTX, fused, snap)
    assert {s.item_id: s.expected_margin_minor for s in with_returns}["mid"] < 0  # returns eat a thin margin


def test_trade_off_is_monotonic() -> None:
    snap, fused = _catalog(200, 1)
    rel_of = {f.item_id: f.score for f in fused}
    curve = []
    for w in np.linspace(0.0, 5.0, 21):
        top = Ranker(Objective(relevance=1.0, margin=float(w))).rank(CTX, fused, snap)[:10]
        curve.append((sum(rel_of[s.item_id] for s in top), sum(s.expected_margin_minor for s in top)))
    rel, margin = np.array(curve).T
    assert (np.diff(margin) >= -1e-9).all() and (np.diff(rel) <= 1e-12).all()
    assert margin[-1] > margin[0] and rel[-1] < rel[0]


def test_batch_equals_scalar_and_empty() -> None:
    snap, fused = _catalog(30, 2)
    ranker = Ranker(Objective(relevance=1.0, margin=0.5, conversion=0.2))
    many = ranker.rank_many([CTX, CTX, CTX], [fused, [], fused[:5]], snap)
    assert many[0] == ranker.rank(CTX, fused, snap) and many[1] == []
    assert many[2] == ranker.rank(CTX, fused[:5], snap)
    with pytest.raises(ValidationError):
        ranker.rank_many([CTX], [], snap)


def test_objective_validation() -> None:
    assert Objective.from_dict({"relevance": 1, "margin": 0.5, "version": "2"}).to_dict() == {
        "relevance": 1, "margin": 0.5, "conversion": 0.0, "version": "2"}
    for bad in ({"relevance": -1}, {"margin": float("nan")}, {"relevance": 0}, {"version": ""}, {"lift": 1},
                {"margin": True}):
        with pytest.raises(ValidationError):
            Objective.from_dict(bad)
    with pytest.raises(ValidationError):
        Ranker(return_cost_fraction=2.0)
