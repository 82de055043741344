"""session_knn: itemknn plus a repeat term for protocols that keep the history rankable."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.models import registry
from shopkeep.models.base import Interactions
from shopkeep.models.itemknn import ItemKNNRecommender, SessionKNNRecommender
from shopkeep.models.registry import best_model, create_model


def _train() -> Interactions:
    rng = np.random.default_rng(0)
    seqs = tuple(rng.integers(0, 30, size=int(rng.integers(2, 8))).astype(np.int64) for _ in range(400))
    return Interactions(sequences=seqs, n_items=30)


def test_repeat_term_lifts_history_items_by_recency_and_leaves_ranking_otherwise() -> None:
    train = _train()
    plain = ItemKNNRecommender().fit(train)
    rep = SessionKNNRecommender().fit(train)
    hist = [np.array([3, 7, 11], dtype=np.int64)]
    s_plain, s_rep = plain.score(hist)[0], rep.score(hist)[0]
    assert float(s_rep.max()) <= 1.0 + rep.repeat_weight + 1e-6
    top3 = set(np.argsort(-s_rep)[:3].tolist())
    assert top3 == {3, 7, 11}  # a weight of 1.2 on a [0, 1]-scaled row puts the history first
    bonus = s_rep - s_plain / s_plain.max()
    np.testing.assert_allclose(bonus[[11, 7, 3]], [1.2, 1.2 * 0.8, 1.2 * 0.64], rtol=1e-5)  # latest item: most
    others = np.setdiff1d(np.arange(30), [3, 7, 11])
    assert np.array_equal(np.argsort(-s_plain[others], kind="stable"), np.argsort(-s_rep[others], kind="stable"))


def test_zero_repeat_weight_is_plain_itemknn_and_bad_weights_are_refused() -> None:
    train = _train()
    hist = [np.array([1, 2], dtype=np.int64), np.array([], dtype=np.int64)]
    a = ItemKNNRecommender().fit(train).score(hist)
    b = SessionKNNRecommender(repeat_weight=0.0).fit(train).score(hist)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValidationError, match="repeat_weight"):
        SessionKNNRecommender(repeat_weight=-1.0).fit(train)
    with pytest.raises(ValidationError, match="repeat_decay"):
        SessionKNNRecommender(repeat_decay=2.0).fit(train)


def test_registered_and_the_sessions_fallback_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_model("session_knn").name == "session_knn"
    find_spec = registry.importlib.util.find_spec

    def no_torch(name: str, *args: object) -> object:
        return None if name == "torch" else find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(registry.importlib.util, "find_spec", no_torch)
    assert best_model("sessions") == "session_knn"
    assert best_model("seqrec") == "itemknn"
