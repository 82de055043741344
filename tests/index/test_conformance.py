"""One conformance suite for every VectorIndex (house rule 2): exact, HNSW with its defaults, and HNSW
forced onto the graph for every filtered search (no exact fallback unless the graph comes up short)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import ConflictError, NotFoundError, ValidationError
from shopkeep.index import ExactIndex, SearchResult, VectorIndex, load_index

pytest.importorskip("faiss", reason="the ml extra (faiss-cpu) is not installed")

from shopkeep.index.ann import HNSWIndex

Factory = Callable[..., VectorIndex]
KINDS: dict[str, Factory] = {
    "exact": lambda dim, metric="cosine": ExactIndex(dim, metric),
    "hnsw": lambda dim, metric="cosine": HNSWIndex(dim, metric, threads=1),
    "hnsw-graph": lambda dim, metric="cosine": HNSWIndex(dim, metric, threads=1, brute_force_below=0,
                                                         brute_force_fraction=0.0),
}


@pytest.fixture(params=sorted(KINDS))
def make(request: pytest.FixtureRequest) -> Factory:
    return KINDS[request.param]


def _data(n: int = 300, dim: int = 16, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"item-{i}" for i in range(n)], rng.normal(size=(n, dim)).astype(np.float32)


def _brute(vectors: np.ndarray, queries: np.ndarray, k: int, cosine: bool,
           mask: np.ndarray | None = None) -> list[list[int]]:
    if cosine:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[int(j) for j in row if np.isfinite(scores[q, j])] for q, row in enumerate(order)]


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_search_matches_brute_force(make: Factory, metric: str) -> None:
    ids, vectors = _data()
    index = make(16, metric)
    index.upsert(ids, vectors)
    assert isinstance(index, VectorIndex) and len(index) == 300 and index.ids == tuple(ids)
    queries = np.random.default_rng(1).normal(size=(25, 16)).astype(np.float32)
    result = index.search(queries, k=10)
    assert isinstance(result, SearchResult) and result.scores.shape == (25, 10) and result.rows.shape == (25, 10)
    expected = _brute(vectors, queries, 10, metric == "cosine")
    assert [list(r) for r in result.ids] == [[ids[j] for j in row] for row in expected]
    assert result.rows.tolist() == expected
    assert np.all(np.diff(result.scores, axis=1) <= 0)
    single = index.search(queries[:1], k=10)
    assert single.ids[0] == result.ids[0]
    np.testing.assert_allclose(single.scores[0], result.scores[0], rtol=1e-5)


@pytest.mark.parametrize("share", [0.6, 0.2, 0.02])
def test_mask_returns_only_eligible_rows_and_the_exact_top_k(make: Factory, share: float) -> None:
    ids, vectors = _data(400, 8, seed=3)
    index = make(8, "ip")
    index.upsert(ids, vectors)
    rng = np.random.default_rng(4)
    queries = rng.normal(size=(12, 8)).astype(np.float32)
    shared = rng.random(400) < share
    result = index.search(queries, k=10, mask=shared)
    expected = _brute(vectors, queries, 10, False, shared)
    assert [list(r) for r in result.ids] == [[ids[j] for j in row] for row in expected]
    per_query = rng.random((12, 400)) < share
    result = index.search(queries, k=10, mask=per_query)
    for q in range(12):
        assert list(result.ids[q]) == [ids[j] for j in _brute(vectors, queries[q:q + 1], 10, False, per_query[q])[0]]
        n_found = len(result.ids[q])
        assert n_found == min(10, int(per_query[q].sum()))
        assert (result.rows[q, n_found:] == -1).all() and np.isneginf(result.scores[q, n_found:]).all()


def test_mask_with_nothing_eligible_and_bad_masks(make: Factory) -> None:
    ids, vectors = _data(50, 4)
    index = make(4, "ip")
    index.upsert(ids, vectors)
    none = index.search(vectors[:2], k=5, mask=np.zeros(50, dtype=bool))
    assert none.ids == ((), ()) and (none.rows == -1).all()
    with pytest.raises(ValidationError, match="mask"):
        index.search(vectors[:2], k=5, mask=np.ones(49, dtype=bool))
    with pytest.raises(ValidationError, match="mask"):
        index.search(vectors[:2], k=5, mask=np.ones(50, dtype=np.int8))  # type: ignore[arg-type]


def test_ties_break_by_row_and_k_larger_than_index(make: Factory) -> None:
    index = make(2, "ip")
    index.upsert(["b", "a", "c"], np.array([[1, 0], [1, 0.0001], [0, 1]], dtype=np.float32))
    result = index.search(np.array([[1.0, 0.0]], dtype=np.float32), k=10)
    assert result.ids == (("b", "a", "c"),) and result.rows.shape == (1, 3)


def test_upsert_replaces_and_inserts_and_is_found_at_once(make: Factory) -> None:
    ids, vectors = _data(200, 8, seed=5)
    index = make(8, "ip")
    index.upsert(ids, vectors)
    before = index.version
    target = np.full((1, 8), 3.0, dtype=np.float32)
    index.upsert(["item-7", "fresh"], np.vstack([-target, 2 * target]))
    assert index.version != before and len(index) == 201 and "fresh" in index
    np.testing.assert_allclose(index.vectors(["item-7"]), -target)
    assert index.search(target, k=1).ids == (("fresh",),)
    assert "item-7" not in index.search(target, k=200).ids[0][:150]


def test_remove_and_errors_leave_the_index_unchanged(make: Factory) -> None:
    ids, vectors = _data(50, 4)
    index = make(4)
    index.upsert(ids, vectors)
    index.remove(["item-0", "item-7"])
    assert len(index) == 48 and "item-7" not in index and "item-7" not in index.ids
    queries = vectors[:5]
    found = {i for row in index.search(queries, k=48).ids for i in row}
    assert "item-0" not in found and "item-7" not in found and len(found) == 48
    with pytest.raises(NotFoundError):
        index.remove(["item-1", "nope"])
    assert "item-1" in index and len(index) == 48
    kept = [i for i in ids if i not in ("item-0", "item-7")]
    expected = _brute(vectors[[ids.index(i) for i in kept]], queries, 5, True)
    assert [list(r) for r in index.search(queries, k=5).ids] == [[kept[j] for j in row] for row in expected]
    mask = np.array([i.endswith("3") for i in index.ids])
    assert all(i.endswith("3") for row in index.search(queries, k=5, mask=mask).ids for i in row)


def test_add_refuses_existing_ids(make: Factory) -> None:
    index = make(3)
    index.upsert(["a"], np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ConflictError):
        index.add(["new", "a"], np.ones((2, 3), dtype=np.float32))  # type: ignore[attr-defined]
    assert "new" not in index and len(index) == 1


def test_copy_is_independent(make: Factory) -> None:
    ids, vectors = _data(60, 4)
    index = make(4)
    index.upsert(ids, vectors)
    twin = index.copy()
    twin.remove(["item-1"])
    twin.upsert(["extra"], vectors[:1])
    assert "item-1" in index and "extra" not in index and len(index) == 60 and len(twin) == 60
    assert index.search(vectors[1:2], k=1).ids == (("item-1",),)


def test_bad_input_is_a_validation_error(make: Factory) -> None:
    index = make(3)
    with pytest.raises(ValidationError, match="vectors"):
        index.upsert(["a"], np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(ValidationError, match="ids"):
        index.upsert(["a", "a"], np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValidationError, match="k"):
        index.search(np.zeros((1, 3), dtype=np.float32), k=0)
    with pytest.raises(ValidationError, match="vectors"):
        index.upsert(["a"], np.array([[np.nan, 0, 0]], dtype=np.float32))
    assert len(index) == 0
    assert index.search(np.ones((2, 3), dtype=np.float32), k=3).ids == ((), ())


@pytest.mark.parametrize("cls", [ExactIndex, HNSWIndex])
def test_unknown_metric_is_refused(cls: type) -> None:
    with pytest.raises(ValidationError, match="metric"):
        cls(3, metric="l2")


def test_save_load_round_trip(make: Factory, tmp_path: Path) -> None:
    ids, vectors = _data(40, 8)
    index = make(8, "ip")
    index.upsert(ids, vectors)
    index.remove(["item-3"])
    index.upsert(["item-5"], vectors[:1])
    index.save(tmp_path / "idx")
    assert not list(tmp_path.glob("idx/*.pkl")) and (tmp_path / "idx" / "index.json").is_file()
    loaded = load_index(tmp_path / "idx")
    assert type(loaded) is type(index) and loaded.ids == index.ids and loaded.metric == "ip"
    queries = vectors[:6]
    mask = np.arange(len(index)) % 2 == 0
    for m in (None, mask):
        a, b = index.search(queries, k=7, mask=m), loaded.search(queries, k=7, mask=m)
        assert a.ids == b.ids
        np.testing.assert_array_equal(a.scores, b.scores)
    with pytest.raises(ValidationError):
        load_index(tmp_path / "missing")
