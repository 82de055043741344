"""BM25F keyword index: exact scores on a tiny corpus, updates, removal, masks, batch == single."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.index.keyword import KeywordIndex, tokenize

DOCS = {"a": "red lipstick matte", "b": "red dress", "c": "blue dress dress", "d": "matte foundation"}


def _bm25(query: str, docs: dict[str, str], k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """Textbook single-field BM25 (the oracle)."""
    toks = {d: tokenize(t) for d, t in docs.items()}
    avg = sum(len(t) for t in toks.values()) / len(toks)
    out = {}
    for d, t in toks.items():
        s = 0.0
        for term in set(tokenize(query)):
            df = sum(term in x for x in toks.values())
            tf = t.count(term)
            if tf:
                idf = math.log(1 + (len(toks) - df + 0.5) / (df + 0.5))
                norm = tf / (1 - b + b * len(t) / avg)
                s += idf * norm * (k1 + 1) / (k1 + norm)
        if s > 0:
            out[d] = s
    return out


def test_scores_match_textbook_bm25() -> None:
    idx = KeywordIndex({"text": 1.0})
    idx.upsert(list(DOCS), [{"text": t} for t in DOCS.values()])
    for q in ("red dress", "matte", "dress", "green"):
        want = _bm25(q, DOCS)
        got = idx.search([q], k=10)
        assert dict(zip(got.ids[0], got.scores[0].tolist(), strict=True)) == pytest.approx(want, rel=1e-5)
        assert list(got.ids[0]) == sorted(want, key=lambda d: (-want[d], list(DOCS).index(d)))


def test_field_weights_prefer_title() -> None:
    idx = KeywordIndex({"title": 3.0, "description": 1.0})
    idx.upsert(["t", "d"], [{"title": "serum", "description": "glow"}, {"title": "glow", "description": "serum"}])
    assert idx.search(["serum"], k=2).ids == (("t", "d"),)


def test_update_in_place_remove_and_mask() -> None:
    idx = KeywordIndex({"text": 1.0})
    idx.upsert(list(DOCS), [{"text": t} for t in DOCS.values()])
    idx.upsert(["b", "e"], [{"text": "green scarf"}, {"text": "red scarf"}])
    assert idx.ids == ("a", "b", "c", "d", "e")
    assert set(idx.search(["red"], k=10).ids[0]) == {"a", "e"}
    idx.remove(["a"])
    assert idx.ids == ("b", "c", "d", "e") and idx.search(["red"], k=10).ids == (("e",),)
    mask = np.array([True, True, True, False])
    assert idx.search(["scarf"], k=10, mask=mask).ids == (("b",),)
    with pytest.raises(ValidationError):
        idx.remove(["zzz"])
    assert len(idx) == 4


def test_batch_equals_single_and_copy_is_independent() -> None:
    idx = KeywordIndex({"text": 1.0})
    idx.upsert(list(DOCS), [{"text": t} for t in DOCS.values()])
    batch = idx.search(["red", "dress", "matte"], k=3)
    for n, q in enumerate(["red", "dress", "matte"]):
        one = idx.search([q], k=3)
        assert one.ids[0] == batch.ids[n]
        np.testing.assert_allclose(one.scores[0], batch.scores[n])
    other = idx.copy()
    other.upsert(["z"], [{"text": "red red red"}])
    assert "z" not in idx.ids and other.search(["red"], k=1).ids == (("z",),)


def test_tokenizer_hyphens_plurals_accents() -> None:
    assert tokenize("Fragrance-free") == ["fragrance", "free", "fragrancefree"]
    assert tokenize("Crèmes brushes glass") == ["creme", "brush", "glass"]
    with pytest.raises(ValidationError):
        KeywordIndex({})


def test_postings_search_equals_the_sparse_product_on_a_random_corpus() -> None:
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(60)]
    docs = [{"title": " ".join(rng.choice(vocab, size=rng.integers(1, 8))),
             "body": " ".join(rng.choice(vocab, size=rng.integers(0, 20)))} for _ in range(400)]
    idx = KeywordIndex({"title": 2.0, "body": 1.0})
    idx.upsert([f"d{i}" for i in range(400)], docs)
    mask = rng.random(400) < 0.6
    for _ in range(30):
        query = " ".join(rng.choice(vocab, size=rng.integers(1, 4)))
        dense = idx.scores([query]).toarray()[0]
        np.testing.assert_allclose(idx.score_rows(query), dense, rtol=1e-5)
        found = idx.search([query], k=15, mask=mask)
        allowed = np.where(mask & (dense > 0), dense, -np.inf)
        best = np.lexsort((np.arange(400), -allowed))[: min(15, int(np.isfinite(allowed).sum()))]
        np.testing.assert_allclose(found.scores[0], dense[best], rtol=1e-5)
        assert set(found.rows[0].tolist()) <= set(np.flatnonzero(mask).tolist())
