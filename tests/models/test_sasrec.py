"""SASRec on small synthetic data: learns a sequential pattern, is deterministic, round-trips, early-stops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.models.base import Interactions, ItemFeatures, SequentialRecommender

torch = pytest.importorskip("torch")
from shopkeep.models.sasrec import SASRec, SASRecSession  # noqa: E402

N_ITEMS = 40
FAST = {"d": 32, "n_heads": 2, "max_len": 10, "dropout": 0.1, "lr": 5e-3, "batch_size": 64, "num_threads": 1}


def _pattern_data(seed: int = 0, n_seq: int = 300) -> tuple[Interactions, list[np.ndarray], np.ndarray]:
    """Sequences walking ``i -> i + 3 (mod N)`` from random starts; each gets one held-out next item."""
    rng = np.random.default_rng(seed)
    seqs, targets = [], []
    for _ in range(n_seq):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(4, 9))
        walk = (start + 3 * np.arange(length + 1)) % N_ITEMS
        seqs.append(walk[:-1].astype(np.int64))
        targets.append(int(walk[-1]))
    attrs = tuple(np.array([i % 5, 5 + i % 3], dtype=np.int64) for i in range(N_ITEMS))
    features = ItemFeatures(n_attributes=8, attributes=attrs)
    return Interactions(sequences=tuple(seqs), n_items=N_ITEMS, features=features), seqs, np.array(targets)


def _hit_rate(scores: np.ndarray, targets: np.ndarray, k: int = 5) -> float:
    top = np.argsort(-scores, axis=1)[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())


def test_learns_sequential_pattern_and_beats_popularity() -> None:
    train, seqs, targets = _pattern_data()
    model = SASRec(**FAST, epochs_without_validation=15).fit(train)
    assert isinstance(model, SequentialRecommender)
    scores = model.score(seqs)
    assert scores.shape == (len(seqs), N_ITEMS) and scores.dtype == np.float32
    counts = np.bincount(np.concatenate(seqs), minlength=N_ITEMS).astype(np.float32)
    pop = np.tile(counts, (len(seqs), 1))
    assert _hit_rate(scores, targets) > 0.9
    assert _hit_rate(scores, targets) > _hit_rate(pop, targets) + 0.5


def test_same_seed_gives_identical_scores() -> None:
    train, seqs, _ = _pattern_data()
    a = SASRec(**FAST, epochs_without_validation=2, seed=3).fit(train).score(seqs[:20])
    b = SASRec(**FAST, epochs_without_validation=2, seed=3).fit(train).score(seqs[:20])
    c = SASRec(**FAST, epochs_without_validation=2, seed=4).fit(train).score(seqs[:20])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("cls", [SASRec, SASRecSession])
def test_save_load_round_trip(cls: type[SASRec], tmp_path: Path) -> None:
    train, seqs, _ = _pattern_data()
    model = cls(**FAST, epochs_without_validation=2).fit(train)
    model.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.pkl"))
    loaded = cls.load(tmp_path / "m")
    np.testing.assert_array_equal(model.score(seqs[:30]), loaded.score(seqs[:30]))
    assert loaded.get_config() == model.get_config()
    assert loaded.n_items_ == N_ITEMS


def test_use_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        SASRec().score([np.array([1, 2])])
    with pytest.raises(NotFittedError):
        SASRec().save(Path("/nonexistent"))


def test_early_stopping_calls_validate_and_restores_best_epoch() -> None:
    train, seqs, _ = _pattern_data()
    calls: list[np.ndarray] = []
    script = [0.1, 0.5, 0.3, 0.2, 0.4, 0.9]

    def validate(m: SASRec) -> float:
        calls.append(m.score(seqs[:10]))
        return script[len(calls) - 1]

    model = SASRec(**FAST, patience=3, max_epochs=50).fit(train, validate)
    assert len(calls) == 5  # best at call 2, then three calls without improvement
    assert [r["validation"] for r in model.history_] == script[:5]
    np.testing.assert_array_equal(model.score(seqs[:10]), calls[1])


def test_works_without_features_sampled_loss_and_repeat_bias() -> None:
    train, seqs, targets = _pattern_data()
    bare = Interactions(sequences=train.sequences, n_items=N_ITEMS)
    model = SASRec(**FAST, loss="sampled", n_negatives=16, repeat_bias=True, epochs_without_validation=15).fit(bare)
    assert model.net_ is not None and model.net_.attr_emb is None
    assert _hit_rate(model.score(seqs), targets) > 0.8
    assert model.score([np.array([], dtype=np.int64)]).shape == (1, N_ITEMS)


def test_bad_input_is_rejected_with_field_names() -> None:
    train, _, _ = _pattern_data()
    with pytest.raises(ValidationError, match="loss"):
        SASRec(loss="bce").fit(train)
    with pytest.raises(ValidationError, match="n_heads"):
        SASRec(d=30, n_heads=4).fit(train)
    with pytest.raises(ValidationError, match=r"train\.sequences"):
        SASRec().fit(Interactions(sequences=(np.array([1]),), n_items=N_ITEMS))
    model = SASRec(**FAST, epochs_without_validation=1).fit(train)
    with pytest.raises(ValidationError, match="histories"):
        model.score([np.array([N_ITEMS])])


def test_time_budget_stops_training_and_keeps_best_weights() -> None:
    train, seqs, _ = _pattern_data()
    calls: list[np.ndarray] = []

    def slow_validate(m: SASRec) -> float:
        import time

        time.sleep(0.3)
        calls.append(m.score(seqs[:5]))
        return float(len(calls))

    model = SASRec(**FAST, max_epochs=50, patience=50, max_train_seconds=1.0).fit(train, slow_validate)
    assert 1 <= len(model.history_) <= 3
    assert model.history_[-1]["seconds"] < 2.5
    np.testing.assert_array_equal(model.score(seqs[:5]), calls[-1])


def test_time_budget_is_checked_inside_an_epoch() -> None:
    train, _, _ = _pattern_data()
    seen: list[float] = []
    model = SASRec(**FAST, max_epochs=50, max_train_seconds=0.0).fit(train, lambda m: seen.append(1.0) or 1.0)
    assert len(seen) == 1 and len(model.history_) == 1
    assert 0.0 < model.history_[0]["epoch"] < 1.0  # one batch of 64 out of 300 sequences


def test_length_trimmed_scoring_equals_full_padding() -> None:
    """score() pads each chunk only to its longest history; the numbers match padding to max_len."""
    train, seqs, _ = _pattern_data()
    model = SASRec(**{**FAST, "dropout": 0.0}, epochs_without_validation=1).fit(train)
    mixed = [seqs[0][:1], seqs[1], np.array([], dtype=np.int64), seqs[2][:3], seqs[3]]
    from shopkeep.models.base import left_pad

    with torch.no_grad():
        table = model.net_.item_table()
        padded = torch.from_numpy(left_pad(mixed, model.max_len))
        expected = (model.net_.encode(padded, table)[:, -1] @ table[1:].T).numpy()
    np.testing.assert_allclose(model.score(mixed), expected, rtol=1e-5, atol=1e-5)


def test_length_buckets_cover_every_row_once_and_group_similar_lengths() -> None:
    model = SASRec(batch_size=8, length_buckets=4)
    lengths = np.random.default_rng(0).integers(1, 50, size=203)
    batches = model._epoch_batches(lengths, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(203))
    spread = np.mean([np.ptp(lengths[b]) for b in batches if len(b) > 1])
    plain = SASRec(batch_size=8, length_buckets=0)._epoch_batches(lengths, np.random.default_rng(1))
    assert spread < np.mean([np.ptp(lengths[b]) for b in plain if len(b) > 1]) / 2
    with pytest.raises(ValidationError, match="length_buckets"):
        SASRec(length_buckets=-1).fit(_pattern_data()[0])
