"""The query encoder: the direct MiniLM forward gives SentenceTransformer.encode's vectors, and many
threads may encode at once (the tokenizer is serialized, the forward pass is not)."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from shopkeep.models.content import MINILM
from shopkeep.search.dense import QueryEncoder

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None,
                                reason="needs the ml extra (sentence-transformers)")


@pytest.fixture(scope="module")
def model() -> object:
    return QueryEncoder(MINILM)._load()


def _encoder(model: object) -> QueryEncoder:
    enc = QueryEncoder(MINILM)
    enc._model = model  # one model load for the module
    return enc


def test_direct_forward_matches_sentence_transformers(model: object) -> None:
    enc = _encoder(model)
    texts = ["red dress", "fragrance-free moisturizer for sensitive skin under $30", "a"]
    reference = enc._load().encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    np.testing.assert_allclose(enc.encode(texts), reference, atol=1e-5)


def test_concurrent_encodes_are_correct(model: object) -> None:
    enc = _encoder(model)
    texts = [f"vegan lipstick number {i}" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: enc.encode([t])[0], texts))
    fresh = _encoder(model).encode(texts)
    np.testing.assert_allclose(np.stack(got), fresh, atol=1e-5)
    assert enc.misses == len(texts)


def test_the_vectors_of_a_padded_batch_equal_those_of_single_queries(model: object) -> None:
    enc = _encoder(model)
    texts = ["red dress", "fragrance-free moisturizer for sensitive skin under $30 with spf 30", "tea"]
    batch = enc._forward(texts)
    single = np.concatenate([enc._forward([t]) for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert enc._direct(model) is not None  # the plain-function forward, not the SentenceTransformer fallback
