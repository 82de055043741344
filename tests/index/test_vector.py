"""ExactIndex: exact top-k against brute force, add/upsert/remove, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import ConflictError, NotFoundError, ValidationError
from shopkeep.index import ExactIndex, SearchResult, VectorIndex


def _data(n: int = 300, dim: int = 16, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"item-{i}" for i in range(n)], rng.normal(size=(n, dim)).astype(np.float32)


def _brute(vectors: np.ndarray, queries: np.ndarray, k: int, cosine: bool) -> np.ndarray:
    if cosine:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ vectors.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_search_matches_brute_force(metric: str) -> None:
    ids, vectors = _data()
    index = ExactIndex(dim=16, metric=metric)
    index.add(ids, vectors)
    assert isinstance(index, VectorIndex) and len(index) == 300
    queries = np.random.default_rng(1).normal(size=(25, 16)).astype(np.float32)
    result = index.search(queries, k=10)
    assert isinstance(result, SearchResult) and result.scores.shape == (25, 10)
    expected = _brute(vectors, queries, 10, metric == "cosine")
    assert [list(r) for r in result.ids] == [[ids[j] for j in row] for row in expected]
    assert np.all(np.diff(result.scores, axis=1) <= 0)
    single = index.search(queries[:1], k=10)
    assert single.ids[0] == result.ids[0]
    np.testing.assert_allclose(single.scores[0], result.scores[0], rtol=1e-6)


def test_ties_break_by_insertion_order_and_k_larger_than_index() -> None:
    index = ExactIndex(dim=2, metric="ip")
    index.add(["b", "a", "c"], np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32))
    result = index.search(np.array([[1.0, 0.0]], dtype=np.float32), k=10)
    assert result.ids == (("b", "a", "c"),)


def test_upsert_replaces_and_inserts() -> None:
    index = ExactIndex(dim=2)
    index.add(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    index.upsert(["a", "c"], np.array([[0, 1], [1, 0]], dtype=np.float32))
    assert len(index) == 3
    np.testing.assert_allclose(index.vectors(["a"]), [[0, 1]])
    assert index.search(np.array([[1.0, 0.0]], dtype=np.float32), k=1).ids == (("c",),)


def test_remove_and_errors_leave_the_index_unchanged() -> None:
    ids, vectors = _data(50, 4)
    index = ExactIndex(dim=4)
    index.add(ids, vectors)
    index.remove(["item-0", "item-7"])
    assert len(index) == 48 and "item-7" not in index
    queries = vectors[:5]
    found = {i for row in index.search(queries, k=48).ids for i in row}
    assert "item-0" not in found and "item-7" not in found and len(found) == 48
    with pytest.raises(NotFoundError):
        index.remove(["item-1", "nope"])
    assert "item-1" in index and len(index) == 48
    with pytest.raises(ConflictError):
        index.add(["new", "item-2"], vectors[:2])
    assert "new" not in index and len(index) == 48
    kept = [i for i in ids if i not in ("item-0", "item-7")]
    expected = _brute(vectors[[ids.index(i) for i in kept]], queries, 5, True)
    assert [list(r) for r in index.search(queries, k=5).ids] == [[kept[j] for j in row] for row in expected]


def test_bad_input_is_a_validation_error() -> None:
    index = ExactIndex(dim=3)
    with pytest.raises(ValidationError, match="vectors"):
        index.add(["a"], np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(ValidationError, match="ids"):
        index.add(["a", "a"], np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValidationError, match="k"):
        index.search(np.zeros((1, 3), dtype=np.float32), k=0)
    with pytest.raises(ValidationError, match="metric"):
        ExactIndex(dim=3, metric="l2")
    with pytest.raises(ValidationError, match="vectors"):
        index.add(["a"], np.array([[np.nan, 0, 0]], dtype=np.float32))
    assert len(index) == 0


def test_save_load_round_trip(tmp_path: Path) -> None:
    ids, vectors = _data(40, 8)
    index = ExactIndex(dim=8, metric="ip")
    index.add(ids, vectors)
    index.remove(["item-3"])
    index.save(tmp_path / "idx")
    loaded = ExactIndex.load(tmp_path / "idx")
    assert loaded.ids == index.ids and loaded.metric == "ip"
    queries = vectors[:6]
    a, b = index.search(queries, k=7), loaded.search(queries, k=7)
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.scores, b.scores)
    with pytest.raises(ValidationError):
        ExactIndex.load(tmp_path / "missing")
