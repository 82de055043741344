"""TwoTower: determinism, persistence, content-only embeddings of new items, logQ correction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.index import ExactIndex
from shopkeep.models.base import Interactions, ItemFeatures
from shopkeep.models.two_tower import TwoTower

N_CAT, PER_CAT = 5, 12
N_ITEMS = N_CAT * PER_CAT
WORDS = ["lipstick gloss", "shampoo conditioner", "nail polish", "perfume eau", "sunscreen lotion"]
FAST: dict[str, Any] = {"d": 16, "max_len": 8, "batch_size": 64, "n_negatives": 32, "num_threads": 1,
                        "text_encoder": "hashing", "cache_dir": None, "epochs_without_validation": 15}


def _features(n: int = N_ITEMS, offset: int = 0) -> ItemFeatures:
    """Item i is in category i // PER_CAT (attribute and title words) and has its own model number."""
    cats = [(i + offset) // PER_CAT for i in range(n)]
    return ItemFeatures(
        n_attributes=N_CAT,
        attributes=tuple(np.array([c], dtype=np.int64) for c in cats),
        titles=tuple(f"{WORDS[c]} {WORDS[c]} no {i + offset}" for i, c in enumerate(cats)),
    )


def _sequences(n: int, rng: np.random.Generator, cold: set[int], pop_skew: float = 0.0) -> tuple[np.ndarray, ...]:
    """Each shopper stays within one category; within it items are drawn with a Zipf-like skew."""
    out = []
    for _ in range(n):
        cat = int(rng.integers(N_CAT))
        items = [i for i in range(cat * PER_CAT, (cat + 1) * PER_CAT) if i not in cold]
        p = 1.0 / (1.0 + np.arange(len(items))) ** pop_skew
        out.append(rng.choice(items, size=int(rng.integers(4, 8)), p=p / p.sum()).astype(np.int64))
    return tuple(out)


COLD = {5, 17, 29, 41, 53}  # one per category, never interacted with


@pytest.fixture(scope="module")
def fitted() -> TwoTower:
    rng = np.random.default_rng(0)
    train = Interactions(_sequences(300, rng, COLD), N_ITEMS, _features())
    return TwoTower(**FAST).fit(train)


HIST = [np.array([0, 1, 2]), np.array([13]), np.array([50, 51, 52, 54, 55])]


def test_same_seed_same_scores_and_config(fitted: TwoTower) -> None:
    rng = np.random.default_rng(0)
    train = Interactions(_sequences(300, rng, COLD), N_ITEMS, _features())
    again = TwoTower(**FAST).fit(train)
    np.testing.assert_allclose(again.score(HIST), fitted.score(HIST), rtol=1e-5, atol=1e-6)
    other = TwoTower(**{**FAST, "seed": 1}).fit(train)
    assert not np.allclose(other.score(HIST), fitted.score(HIST))


def test_save_load_identical(fitted: TwoTower, tmp_path: Path) -> None:
    fitted.save(tmp_path / "tt")
    loaded = TwoTower.load(tmp_path / "tt")
    assert loaded.get_config() == fitted.get_config()
    np.testing.assert_array_equal(loaded.score(HIST), fitted.score(HIST))
    new = _features(3, offset=PER_CAT)
    np.testing.assert_array_equal(loaded.embed_items(new), fitted.embed_items(new))
    assert not list((tmp_path / "tt").glob("*.pkl"))


def test_scores_follow_the_session_category(fitted: TwoTower) -> None:
    scores = fitted.score(HIST)
    for row, hist in enumerate(HIST):
        cat = int(hist[-1]) // PER_CAT
        top = np.argsort(-scores[row])[:8] // PER_CAT
        assert (top == cat).mean() >= 0.75


def test_cold_item_embedding_comes_from_content(fitted: TwoTower) -> None:
    ids, vectors = fitted.export_item_vectors()
    assert ids.tolist() == list(range(N_ITEMS)) and vectors.dtype == np.float32
    assert vectors.shape[1] > fitted.d  # tower part + content-kNN part
    tower = vectors[:, : fitted.d]
    np.testing.assert_allclose(np.linalg.norm(tower, axis=1), 1.0, rtol=1e-5)
    cats = np.arange(N_ITEMS) // PER_CAT
    for item in COLD:
        sims = tower @ tower[item]
        same = (cats == cats[item]) & (np.arange(N_ITEMS) != item)
        assert sims[same].mean() > sims[~same].mean() + 0.3
    # the exported vector of a never-seen catalog item is exactly its content-only embedding
    cold = sorted(COLD)
    feats = _features()
    only = ItemFeatures(
        feats.n_attributes, tuple(feats.attributes[i] for i in cold), tuple(feats.titles[i] for i in cold)
    )
    np.testing.assert_allclose(fitted.embed_items(only), vectors[cold], rtol=1e-5, atol=1e-6)


def test_brand_new_item_is_retrievable_from_the_vector_index(fitted: TwoTower) -> None:
    ids, vectors = fitted.export_item_vectors()
    index = ExactIndex(dim=vectors.shape[1], metric="ip")
    index.add([str(i) for i in ids], vectors)
    new = ItemFeatures(N_CAT, (np.array([3]),), (f"{WORDS[3]} {WORDS[3]} no 999",))  # a new perfume
    index.add(["new-perfume"], fitted.embed_items(new))
    users = fitted.user_vectors([np.array([36, 37, 38]), np.array([0, 1, 2])])
    found = index.search(users, k=PER_CAT)
    assert "new-perfume" in found.ids[0]
    assert "new-perfume" not in found.ids[1]


@pytest.mark.slow
def test_logq_correction_removes_the_in_batch_bias_against_popular_items() -> None:
    """Without logQ correction in-batch negatives over-penalize popular items; with it the order is right.

    Next items are drawn from one Zipf distribution, whatever the history, so the true score order
    is the popularity order. Uncorrected, the model learns ``log p - log q``: flat over the tail
    and too low for the head: its scores order the head worse and lift it less above the rest.
    """
    rng = np.random.default_rng(3)
    n_items = 100
    p = 1.0 / (1.0 + np.arange(n_items))
    seqs = tuple(rng.choice(n_items, size=6, p=p / p.sum()).astype(np.int64) for _ in range(600))
    train = Interactions(seqs, n_items)
    hists = [np.array([i]) for i in range(0, n_items, 5)]

    def measure(logq: float) -> tuple[float, float, float]:
        params = {**FAST, "logq_weight": logq, "id_dropout": 0.0, "batch_size": 8, "n_negatives": 4,
                  "epochs_without_validation": 10}
        mean = TwoTower(**params).fit(train).score(hists).mean(axis=0)
        top = np.argsort(-mean)[:10]
        head_rho = float(spearmanr(mean[:20], -np.arange(20)).statistic)
        return float(top.mean()), head_rho, float(mean[:3].mean() - mean.mean())

    (plain_rank, plain_rho, plain_head), (corr_rank, corr_rho, corr_head) = measure(0.0), measure(1.0)
    assert corr_rank <= plain_rank + 0.5, (plain_rank, corr_rank)  # the top-10 stays the true head
    assert corr_rho > plain_rho + 0.05, (plain_rho, corr_rho)  # the head is ordered right
    assert corr_head > 1.3 * plain_head, (plain_head, corr_head)  # and not pushed down to the tail


def test_early_stopping_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    train = Interactions(_sequences(100, rng, set()), N_ITEMS, _features())
    values = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0])
    best: list[np.ndarray] = []

    def validate(model: Any) -> float:
        value = next(values)
        if value == 0.5:
            best.append(model.score(HIST))
        return value

    one = {"content_weight_grid": (1.0,), "cold_scale_grid": (1.0,)}  # the blend search: one more call
    model = TwoTower(**{**FAST, "patience": 2, "max_epochs": 9, **one}).fit(train, validate=validate)
    assert [h["epoch"] for h in model.history_ if "epoch" in h] == [1, 2, 3, 4]
    np.testing.assert_allclose(model.score(HIST), best[0], rtol=1e-5, atol=1e-6)


def test_blend_is_chosen_on_validation() -> None:
    """After training, the (content multiplier, cold scale) pair with the best validation score is kept."""
    rng = np.random.default_rng(0)
    train = Interactions(_sequences(200, rng, COLD), N_ITEMS, _features())
    params = {**FAST, "max_epochs": 1, "epochs_without_validation": 1,
              "content_weight_grid": (1.0, 3.0), "cold_scale_grid": (1.0, 1.5)}
    plain = TwoTower(**params).fit(train)  # the same training, no blend search
    values = iter([0.5, 0.1, 0.2, 0.1, 0.9])  # epoch 1, then the grid in order: (1,1) (1,1.5) (3,1) (3,1.5)
    tuned = TwoTower(**params).fit(train, validate=lambda m: next(values))
    assert tuned.history_[-1] == {"blend_content_mult": 3.0, "blend_cold_scale": 1.5, "validation": 0.9}
    d = tuned.d
    u_plain, u_tuned = plain.user_vectors(HIST), tuned.user_vectors(HIST)
    np.testing.assert_allclose(u_tuned[:, :d], u_plain[:, :d], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(u_tuned[:, d:], 3.0 * u_plain[:, d:], rtol=1e-4, atol=1e-6)
    _, vectors = tuned.export_item_vectors()
    norms = np.linalg.norm(vectors[:, :d], axis=1)
    cold = np.isin(np.arange(N_ITEMS), sorted(COLD))
    np.testing.assert_allclose(norms[cold], 1.5, rtol=1e-5)
    np.testing.assert_allclose(norms[~cold], 1.0, rtol=1e-5)
    np.testing.assert_allclose(u_tuned @ vectors.T, tuned.score(HIST), rtol=1e-5, atol=1e-4)
    feats = _features()
    only = ItemFeatures(feats.n_attributes, (feats.attributes[5],), (feats.titles[5],))
    np.testing.assert_allclose(tuned.embed_items(only)[0], vectors[5], rtol=1e-5, atol=1e-6)


def test_content_aux_loss_and_epoch_fraction_run() -> None:
    """The auxiliary content-only softmax trains without breaking the ranking (no skip path to lean on)."""
    rng = np.random.default_rng(0)
    train = Interactions(_sequences(300, rng, COLD), N_ITEMS, _features())
    model = TwoTower(**{**FAST, "content_aux_weight": 1.0, "epoch_fraction": 0.5, "content_skip": False}).fit(train)
    assert len(model.history_) == FAST["epochs_without_validation"] and np.isfinite(model.history_[-1]["loss"])
    scores = model.score([np.array([36, 37, 38]), np.array([0, 1, 2])])
    for row, cat in enumerate((3, 0)):  # without the skip path the cold item of the category still ranks high
        cold_item = sorted(COLD)[cat]
        assert (scores[row] > scores[row, cold_item]).sum() < PER_CAT


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        TwoTower().score(HIST)
    train = Interactions((np.array([0, 1, 2]),), N_ITEMS, _features())
    with pytest.raises(ValidationError, match="encoder"):
        TwoTower(**{**FAST, "encoder": "lstm"}).fit(train)
    with pytest.raises(ValidationError, match="id_dropout"):
        TwoTower(**{**FAST, "id_dropout": 1.0}).fit(train)
    with pytest.raises(ValidationError, match="epoch_fraction"):
        TwoTower(**{**FAST, "epoch_fraction": 0.0}).fit(train)
    with pytest.raises(ValidationError, match="cold_scale_grid"):
        TwoTower(**{**FAST, "cold_scale_grid": (1.0, -1.0)}).fit(train)
    with pytest.raises(ValidationError, match="content_weight_grid"):
        TwoTower(**{**FAST, "content_weight_grid": ()}).fit(train)
    model = TwoTower(**{**FAST, "epochs_without_validation": 1}).fit(train)
    with pytest.raises(ValidationError, match="histories"):
        model.score([np.array([N_ITEMS])])
    with pytest.raises(ValidationError, match="attribute"):
        model.embed_items(ItemFeatures(N_CAT, (np.array([N_CAT]),), ("x",)))


def test_without_the_content_skip_path_vectors_are_unit_tower_vectors(fitted: TwoTower) -> None:
    rng = np.random.default_rng(0)
    train = Interactions(_sequences(200, rng, COLD), N_ITEMS, _features())
    model = TwoTower(**{**FAST, "content_skip": False}).fit(train)
    _, vectors = model.export_item_vectors()
    assert vectors.shape == (N_ITEMS, model.d)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    users = model.user_vectors(HIST)
    np.testing.assert_allclose(users @ vectors.T, model.score(HIST), rtol=1e-5, atol=1e-5)


def test_mean_encoder_and_ids_only() -> None:
    rng = np.random.default_rng(0)
    train = Interactions(_sequences(200, rng, set()), N_ITEMS)
    model = TwoTower(**{**FAST, "encoder": "mean", "epochs_without_validation": 40}).fit(train)
    scores = model.score(HIST)
    assert scores.shape == (3, N_ITEMS) and np.isfinite(scores).all()
    top = np.argsort(-scores[0])[:8] // PER_CAT
    assert (top == 0).mean() >= 0.75
