"""HNSWIndex specifics: recall against exact, the filtering rule, dead slots and compaction, seeding,
the size-based factory, and that ``import shopkeep`` does not load faiss."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.index import ExactIndex, build_index, make_index

pytest.importorskip("faiss", reason="the ml extra (faiss-cpu) is not installed")

from shopkeep.index.ann import HNSWIndex


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Vectors around 40 centres (item embeddings are clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    return (centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)


def _recall(a: tuple[tuple[str, ...], ...], b: tuple[tuple[str, ...], ...]) -> float:
    return float(np.mean([len(set(x) & set(y)) / max(len(y), 1) for x, y in zip(a, b, strict=True)]))


@pytest.fixture(scope="module")
def pair() -> tuple[HNSWIndex, ExactIndex, np.ndarray]:
    vectors = _clustered(6000, 32, seed=11)
    ids = [f"i{n}" for n in range(len(vectors))]
    hnsw = HNSWIndex(32, "ip", seed=0, threads=1)
    hnsw.add(ids, vectors)
    exact = ExactIndex(32, "ip")
    exact.add(ids, vectors)
    queries = _clustered(200, 32, seed=12)
    return hnsw, exact, queries


def test_recall_at_10_against_exact(pair: tuple[HNSWIndex, ExactIndex, np.ndarray]) -> None:
    hnsw, exact, queries = pair
    assert _recall(hnsw.search(queries, k=10).ids, exact.search(queries, k=10).ids) >= 0.95
    # graph path under a half mask (the exact fallback would make this trivially 1.0)
    graph = HNSWIndex(32, "ip", seed=0, threads=1, brute_force_below=0, brute_force_fraction=0.0)
    graph._index, graph._slot_ids, graph._slot_of, graph._live = hnsw._index, hnsw._slot_ids, hnsw._slot_of, hnsw._live
    mask = np.random.default_rng(13).random(len(exact)) < 0.5
    assert _recall(graph.search(queries, k=10, mask=mask).ids, exact.search(queries, k=10, mask=mask).ids) >= 0.95


def test_selective_masks_fall_back_to_exact(pair: tuple[HNSWIndex, ExactIndex, np.ndarray]) -> None:
    hnsw, exact, queries = pair
    for share in (0.001, 0.01, 0.03):  # 6, 60, 180 eligible: at most brute_force_below -> exact scoring
        mask = np.random.default_rng(int(share * 1000)).random(len(exact)) < share
        assert hnsw.search(queries, k=10, mask=mask).ids == exact.search(queries, k=10, mask=mask).ids


def test_same_seed_same_graph_and_results(tmp_path: Path) -> None:
    vectors = _clustered(3000, 16, seed=2)
    ids = [f"i{n}" for n in range(len(vectors))]
    built = []
    for _ in range(2):
        index = HNSWIndex(16, "cosine", seed=7, threads=1, ef_search=16)
        index.add(ids, vectors)
        built.append(index)
    queries = _clustered(50, 16, seed=3)
    a, b = (i.search(queries, k=20) for i in built)
    assert a.ids == b.ids
    built[0].save(tmp_path / "a")
    built[1].save(tmp_path / "b")
    assert (tmp_path / "a" / "index.faiss").read_bytes() == (tmp_path / "b" / "index.faiss").read_bytes()


def test_dead_slots_are_never_returned_and_compaction_keeps_rows() -> None:
    vectors = _clustered(500, 8, seed=4)
    ids = [f"i{n}" for n in range(500)]
    index = HNSWIndex(8, "ip", threads=1, compact_above=0.3)
    index.add(ids, vectors)
    index.remove(ids[:100])
    index.upsert(ids[100:140], vectors[100:140] * 2)
    assert index.n_slots == 540 and len(index) == 400
    dead = set(ids[:100])
    assert not dead & {i for row in index.search(vectors[:50], k=50).ids for i in row}
    index.remove(ids[140:200])  # 200 dead of 540 slots > 30%: rebuilt
    assert index.n_slots == len(index) == 340
    exact = ExactIndex(8, "ip")
    exact.add(list(index.ids), index.vectors(list(index.ids)))
    assert _recall(index.search(vectors[:50], k=10).ids, exact.search(vectors[:50], k=10).ids) >= 0.95


def test_bad_parameters_and_a_mismatched_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ef_search"):
        HNSWIndex(4, ef_search=1)
    with pytest.raises(ValidationError, match="brute_force_fraction"):
        HNSWIndex(4, brute_force_fraction=2.0)
    index = HNSWIndex(4)
    index.add(["a", "b"], np.eye(2, 4, dtype=np.float32))
    index.save(tmp_path / "x")
    text = (tmp_path / "x" / "index.json").read_text().replace('"a", ', "")
    (tmp_path / "x" / "index.json").write_text(text)
    with pytest.raises(ValidationError, match=r"index\.faiss"):
        HNSWIndex.load(tmp_path / "x")
    with pytest.raises(ValidationError, match="kind"):
        ExactIndex.load(tmp_path / "x")


def test_factory_picks_by_size() -> None:
    assert isinstance(make_index(8, 49_999), ExactIndex)
    assert isinstance(make_index(8, 50_000), HNSWIndex)
    assert isinstance(make_index(8, 10, exact_below=5, m=8), HNSWIndex)
    vectors = _clustered(300, 8, seed=9)
    index = build_index([str(n) for n in range(300)], vectors, "cosine", exact_below=100, threads=1)
    assert isinstance(index, HNSWIndex) and index.metric == "cosine" and len(index) == 300


def test_import_shopkeep_does_not_load_faiss() -> None:
    code = ("import sys, shopkeep, shopkeep.index, shopkeep.retrieval, shopkeep.pipeline.engine; "
            "print('faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cached_index_builds_once_and_reloads(tmp_path: Path) -> None:
    from shopkeep.index import cached_index

    vectors = _clustered(400, 8, seed=21)
    ids = [f"i{n}" for n in range(400)]
    calls: list[int] = []

    def source() -> tuple[list[str], np.ndarray]:
        calls.append(1)
        return ids, vectors

    first = cached_index("texts-v1", tmp_path, source, "cosine", n_items=400, exact_below=100, threads=1)
    again = cached_index("texts-v1", tmp_path, source, "cosine", n_items=400, exact_below=100, threads=1)
    assert len(calls) == 1 and isinstance(again, HNSWIndex) and again.ids == first.ids
    assert again.search(vectors[:5], k=5).ids == first.search(vectors[:5], k=5).ids
    small = cached_index("texts-v1", tmp_path, source, "cosine", n_items=400, exact_below=1000)
    assert len(calls) == 2 and isinstance(small, ExactIndex)  # another kind is another entry
    cached_index("texts-v2", tmp_path, source, "cosine", n_items=400, exact_below=1000)
    assert len(calls) == 3 and len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # the 2 newest kept
    none = cached_index("texts-v2", None, source, "cosine", n_items=400, exact_below=1000)
    assert len(calls) == 4 and len(none) == 400


def test_centering_keeps_the_ranking_and_true_scores_on_cone_shaped_vectors() -> None:
    """Item vectors in a narrow cone and queries orthogonal to its axis (the shape of two-tower vectors):
    the centered graph finds the exact top-10, answers the true inner products (not the centered ones)
    and gives the stored vectors back uncentered. (This small set does not show the recall gain; the
    Diginetica benchmark does.)"""
    rng = np.random.default_rng(31)
    axis = np.zeros(24)
    axis[0] = 1.0
    items = axis + 0.35 * _clustered(4000, 24, seed=32) / 3.0
    items = (items / np.linalg.norm(items, axis=1, keepdims=True)).astype(np.float32)
    queries = rng.normal(size=(100, 24)).astype(np.float32)
    queries[:, 0] = 0.0
    ids = [f"i{n}" for n in range(len(items))]
    exact = ExactIndex(24, "ip")
    exact.add(ids, items)
    centered = HNSWIndex(24, "ip", threads=1)
    centered.add(ids, items)
    truth = exact.search(queries, k=10)
    found = centered.search(queries, k=10)
    assert _recall(found.ids, truth.ids) >= 0.95
    same = [n for n in range(100) if found.ids[n] == truth.ids[n]]
    assert same and np.allclose(found.scores[same], truth.scores[same], atol=1e-4)
    np.testing.assert_allclose(centered.vectors(ids[:3]), items[:3], atol=1e-6)
