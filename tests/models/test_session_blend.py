"""sasrec_session_knn (session transformer + session_knn) and the frequency sampler with logQ correction."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.evaluation.datasets import Dataset
from shopkeep.evaluation.protocols import make_split
from shopkeep.evaluation.runner import make_validate_fn, run_evaluation
from shopkeep.models.base import Interactions

torch = pytest.importorskip("torch")
from shopkeep.models.blend import SASRecSessionKNNBlend, zscore  # noqa: E402
from shopkeep.models.itemknn import SessionKNNRecommender  # noqa: E402
from shopkeep.models.registry import best_model, create_model, load_model  # noqa: E402
from shopkeep.models.sasrec import NegativeSampler, SASRecSession  # noqa: E402

N_ITEMS = 40
TINY = {
    "d": 16,
    "n_layers": 1,
    "n_heads": 1,
    "max_len": 10,
    "max_epochs": 3,
    "epochs_without_validation": 2,
    "batch_size": 32,
    "num_threads": 1,
    "loss": "sampled",
    "n_negatives": 16,
    "negative_sampling": "frequency",
}
HISTORIES = [np.array([3, 4, 5]), np.array([10]), np.array([7, 7, 8]), np.array([39, 0, 1, 2, 3, 4, 5, 6, 7, 8])]


def _sessions(seed: int = 5, n: int = 160) -> tuple[np.ndarray, ...]:
    """Short chains start, start+1, ... with repeats and noise, like anonymous browsing sessions."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(2, 8))
        seq = (start + np.arange(length)) % N_ITEMS
        repeat = rng.random(length) < 0.15
        seq[1:][repeat[1:]] = seq[:-1][repeat[1:]]
        noise = rng.random(length) < 0.1
        seq[noise] = rng.integers(N_ITEMS, size=int(noise.sum()))
        out.append(seq.astype(np.int64))
    return tuple(out)


def _dataset() -> Dataset:
    seqs = _sessions()
    train, test = seqs[:130], seqs[130:]
    prefixes = tuple(s[:i] for s in test for i in range(1, s.size))
    labels = np.array([s[i] for s in test for i in range(1, s.size)], dtype=np.int64)
    return Dataset(
        "synthetic-sessions",
        "sessions",
        train,
        N_ITEMS,
        tuple(map(str, range(N_ITEMS))),
        "f",
        test_prefixes=prefixes,
        test_labels=labels,
    )


def _blend(**kwargs: object) -> SASRecSessionKNNBlend:
    """The blend with a tiny transformer and, unless asked for, no stacker (tests/models/test_stacking.py)."""
    return SASRecSessionKNNBlend(sasrec=dict(TINY), **{"stacker": None, **kwargs})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def split() -> object:
    return make_split(_dataset(), "sessions")


@pytest.fixture(scope="module")
def fitted(split: object) -> SASRecSessionKNNBlend:
    validate = make_validate_fn(split.validation, "sessions")  # type: ignore[attr-defined]
    return _blend(weights=(0.0, 0.5, 1.0)).fit(split.fit_train, validate=validate)  # type: ignore[attr-defined]


def test_registered_as_the_sessions_default_with_a_sampled_frequency_transformer() -> None:
    model = create_model("sasrec_session_knn")
    assert isinstance(model, SASRecSessionKNNBlend) and model.name == "sasrec_session_knn"
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["sasrec"]["loss"] == "sampled" and config["sasrec"]["negative_sampling"] == "frequency"
    assert 0.0 in config["weights"]  # w = 0 is session_knn alone: never validates below it
    assert config["refit_epochs"] == 2  # the refit fine-tunes the transformer on train + validation
    assert config["stacker"]["n_candidates"] == 100  # a learned re-ranker over the blend's top 100
    assert best_model("sessions") == "sasrec_session_knn"
    assert best_model("seqrec") == "sasrec_knn"


def test_weight_zero_is_session_knn_exactly(split: object) -> None:
    train: Interactions = split.fit_train  # type: ignore[attr-defined]
    model = _blend(default_weight=0.0).fit(train)
    assert model.weight_ == 0.0 and isinstance(model.sasrec_, SASRecSession)
    knn = SessionKNNRecommender().fit(train).score(HISTORIES)
    np.testing.assert_array_equal(model.score(HISTORIES), zscore(knn))
    assert (
        np.argsort(-model.score(HISTORIES), axis=1, kind="stable") == np.argsort(-zscore(knn), axis=1, kind="stable")
    ).all()


def test_weight_is_the_best_on_validation_and_never_below_session_knn(fitted: SASRecSessionKNNBlend) -> None:
    assert set(fitted.search_) == {"0.0", "0.5", "1.0"}
    assert fitted.weight_ == max((0.0, 0.5, 1.0), key=lambda w: fitted.search_[str(w)])
    assert fitted.search_[str(fitted.weight_)] >= fitted.search_["0.0"]


def test_save_load_round_trips_identical_scores_without_pickle(fitted: SASRecSessionKNNBlend, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, SASRecSessionKNNBlend)
    assert isinstance(loaded.sasrec_, SASRecSession) and isinstance(loaded.itemknn_, SessionKNNRecommender)
    assert loaded.weight_ == fitted.weight_ and loaded.search_ == fitted.search_
    np.testing.assert_array_equal(loaded.score(HISTORIES), fitted.score(HISTORIES))


def test_same_seed_same_scores_other_seed_other_scores(split: object) -> None:
    train: Interactions = split.fit_train  # type: ignore[attr-defined]

    def run(seed: int) -> np.ndarray:
        return SASRecSessionKNNBlend(sasrec={**TINY, "seed": seed}, default_weight=0.5).fit(train).score(HISTORIES)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_blend_seed_reaches_the_transformer(split: object) -> None:
    train: Interactions = split.fit_train  # type: ignore[attr-defined]
    sasrec = {k: v for k, v in TINY.items()}

    def run(seed: int) -> SASRecSessionKNNBlend:
        return SASRecSessionKNNBlend(sasrec=sasrec, default_weight=0.5, seed=seed).fit(train)

    a, b, c = run(1), run(1), run(2)
    assert a.sasrec_ is not None and a.sasrec_.seed == 1 and a.get_config()["seed"] == 1
    np.testing.assert_array_equal(a.score(HISTORIES), b.score(HISTORIES))
    assert not np.array_equal(a.score(HISTORIES), c.score(HISTORIES))
    assert SASRecSessionKNNBlend(sasrec={**sasrec, "seed": 7}, seed=1)._members()[0].seed == 7
    assert "seed" not in SASRecSessionKNNBlend(seed=3).sasrec  # the config keeps what the caller gave


def test_runner_refits_session_knn_and_keeps_the_transformer() -> None:
    result, tested = run_evaluation(_blend(weights=(0.0, 0.6), refit_epochs=0), _dataset(), "sessions", ks=(5, 20))
    assert isinstance(tested, SASRecSessionKNNBlend) and result.refit_on_validation
    assert result.model == "sasrec_session_knn" and 0.0 <= result.metrics["mrr@20"] <= 1.0
    assert result.validation["mrr@20"] == pytest.approx(tested.search_[str(tested.weight_)])
    assert tested.sasrec_ is not None and not any("fine_tune" in r for r in tested.sasrec_.history_)


def _with_refit_epochs(model: SASRecSessionKNNBlend, epochs: int) -> SASRecSessionKNNBlend:
    out = copy.copy(model)
    out.refit_epochs = epochs
    return out


def test_refit_fine_tunes_a_copy_of_the_transformer_deterministically(
    fitted: SASRecSessionKNNBlend, split: object
) -> None:
    train: Interactions = split.refit_train  # type: ignore[attr-defined]
    assert fitted.sasrec_ is not None
    before = fitted.sasrec_.score(HISTORIES)
    kept = _with_refit_epochs(fitted, 0).refit(train)
    assert kept.sasrec_ is fitted.sasrec_ and kept.refit_epochs == 0
    a = _with_refit_epochs(fitted, 2).refit(train)
    b = _with_refit_epochs(fitted, 2).refit(train)
    assert a.sasrec_ is not None and b.sasrec_ is not None and a.get_config()["refit_epochs"] == 2
    np.testing.assert_array_equal(fitted.sasrec_.score(HISTORIES), before)  # the fitted transformer is untouched
    np.testing.assert_array_equal(a.sasrec_.score(HISTORIES), b.sasrec_.score(HISTORIES))
    assert not np.allclose(a.sasrec_.score(HISTORIES), before, atol=1e-3)
    assert [r["fine_tune"] for r in a.sasrec_.history_ if "fine_tune" in r] == [1.0, 1.0]
    assert a.weight_ == fitted.weight_ and a.search_ == fitted.search_
    other = copy.deepcopy(fitted)
    assert other.sasrec_ is not None
    other.sasrec_.seed = fitted.sasrec_.seed + 1  # same weights, other fine-tune draws
    c = _with_refit_epochs(other, 2).refit(train)
    assert c.sasrec_ is not None and not np.array_equal(c.sasrec_.score(HISTORIES), a.sasrec_.score(HISTORIES))


def test_refit_fine_tuned_blend_saves_and_loads_without_pickle(
    fitted: SASRecSessionKNNBlend, split: object, tmp_path: Path
) -> None:
    refit = _with_refit_epochs(fitted, 1).refit(split.refit_train)  # type: ignore[attr-defined]
    refit.save(tmp_path / "m")
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, SASRecSessionKNNBlend) and loaded.refit_epochs == 1
    np.testing.assert_array_equal(loaded.score(HISTORIES), refit.score(HISTORIES))


def test_fine_tune_continues_the_decayed_learning_rate_schedule(split: object) -> None:
    fit_train: Interactions = split.fit_train  # type: ignore[attr-defined]
    refit_train: Interactions = split.refit_train  # type: ignore[attr-defined]

    def change(decay: float) -> float:
        model = SASRecSession(**{**TINY, "epochs_without_validation": 2, "lr_decay": decay}).fit(fit_train)
        before = model.score(HISTORIES)
        return float(np.abs(model.fine_tune(refit_train, 1).score(HISTORIES) - before).max())

    # After 2 epochs the fine-tune epoch runs at lr * decay**2: 1e-8 * lr barely moves a weight, lr does.
    assert change(1e-4) < 1e-4 < 1e-2 < change(1.0)


def test_runner_refit_fine_tunes_the_transformer() -> None:
    _, tested = run_evaluation(_blend(weights=(0.0, 0.6), refit_epochs=1), _dataset(), "sessions", ks=(20,))
    assert isinstance(tested, SASRecSessionKNNBlend) and tested.sasrec_ is not None
    assert [r for r in tested.sasrec_.history_ if "fine_tune" in r]


def test_bad_refit_parameters_name_the_field(split: object) -> None:
    train: Interactions = split.fit_train  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="refit_epochs"):
        _blend(refit_epochs=-1).fit(train)
    model = SASRecSession(**TINY).fit(train)
    with pytest.raises(ValidationError, match=r"train\.n_items"):
        model.fine_tune(Interactions(train.sequences, N_ITEMS + 5), 1)
    with pytest.raises(ValidationError, match="epochs"):
        model.fine_tune(train, -1)
    with pytest.raises(NotFittedError, match="not fitted"):
        SASRecSession(**TINY).fine_tune(train, 1)


def test_frequency_sampler_draws_in_proportion_and_log_q_is_normalized() -> None:
    counts = np.array([0, 9, 99, 0, 891])
    sampler = NegativeSampler(counts, power=1.0)
    expected = (counts + 1.0) / (counts + 1.0).sum()
    np.testing.assert_allclose(sampler.log_q.exp().numpy(), expected, rtol=1e-5)
    draws = sampler.draw(np.random.default_rng(0), 200_000)
    assert draws.dtype == np.int64 and draws.min() >= 0 and draws.max() < counts.size
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / draws.size, expected, atol=0.004)
    flat = NegativeSampler(counts, power=0.5)
    assert flat.log_q.exp()[4] < sampler.log_q.exp()[4]  # a lower power flattens the distribution


def test_uniform_sampler_keeps_the_original_draws() -> None:
    sampler = NegativeSampler(np.array([5, 0, 2, 7]), power=0.0)
    a = sampler.draw(np.random.default_rng(3), 50)
    b = np.random.default_rng(3).integers(0, 4, size=50)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sampler.log_q.exp().numpy(), 0.25)


def test_sampled_logits_are_log_q_corrected_and_mask_accidental_hits() -> None:
    model = SASRecSession(**TINY).fit(Interactions(_sessions(), N_ITEMS))
    assert model.net_ is not None
    counts = np.zeros(N_ITEMS, dtype=np.int64)
    counts[3] = 10_000  # item 3 is drawn almost every time
    model._sampler = NegativeSampler(counts, power=1.0)
    h = torch.randn(4, model.d)
    labels = torch.tensor([3, 5, 3, 0])
    with torch.no_grad():
        table = model.net_.item_table()
        logits, target = model._sampled_logits(h, labels, table, np.random.default_rng(0))
    neg = torch.from_numpy(model._sampler.draw(np.random.default_rng(0), model.n_negatives))
    log_q = model._sampler.log_q
    assert target.tolist() == [0, 0, 0, 0] and logits.shape == (4, 1 + model.n_negatives)
    raw_pos = (h * table[labels + 1]).sum(-1)
    torch.testing.assert_close(logits[:, 0], raw_pos - log_q[labels])
    hits = neg[None, :] == labels[:, None]
    assert hits[0].any() and not hits[1].any()
    assert (logits[:, 1:][hits] == -1e9).all()
    expected = (h @ table[neg + 1].T - log_q[neg][None, :])[~hits]
    torch.testing.assert_close(logits[:, 1:][~hits], expected)


def test_sampled_frequency_loss_learns_a_pattern() -> None:
    seqs = [(s + 3 * np.arange(7)) % N_ITEMS for s in np.random.default_rng(0).integers(0, N_ITEMS, 300)]
    train = Interactions(tuple(np.asarray(s[:-1], dtype=np.int64) for s in seqs), N_ITEMS)
    params = {**TINY, "d": 32, "lr": 5e-3, "dropout": 0.1, "epochs_without_validation": 15}
    scores = SASRecSession(**params).fit(train).score(list(train.sequences))
    top = np.argsort(-scores, axis=1)[:, :5]
    targets = np.array([s[-1] for s in seqs])
    assert float((top == targets[:, None]).any(axis=1).mean()) > 0.9


def test_bad_sampler_parameters_name_the_field() -> None:
    train = Interactions(_sessions(), N_ITEMS)
    with pytest.raises(ValidationError, match="negative_sampling"):
        SASRecSession(**{**TINY, "negative_sampling": "popular"}).fit(train)
    with pytest.raises(ValidationError, match="sampling_power"):
        SASRecSession(**{**TINY, "sampling_power": 1.5}).fit(train)


def test_validate_every_n_epochs_and_always_after_the_last() -> None:
    calls: list[int] = []

    def validate(model: object) -> float:
        calls.append(len(calls))
        return float(len(calls))  # always improving: no early stop

    model = SASRecSession(**{**TINY, "max_epochs": 5, "validate_every": 2, "patience": 10})
    model.fit(Interactions(_sessions(), N_ITEMS), validate=validate)
    validated = [r["epoch"] for r in model.history_ if "validation" in r]
    assert validated == [2.0, 4.0, 5.0] and len(calls) == 3 and len(model.history_) == 5
    with pytest.raises(ValidationError, match="validate_every"):
        SASRecSession(**{**TINY, "validate_every": 0}).fit(Interactions(_sessions(), N_ITEMS))


def test_lr_decay_changes_later_epochs_only_and_is_checked() -> None:
    train = Interactions(_sessions(), N_ITEMS)

    def scores(epochs: int, decay: float) -> np.ndarray:
        params = {**TINY, "epochs_without_validation": epochs, "lr_decay": decay}
        return SASRecSession(**params).fit(train).score(HISTORIES)

    np.testing.assert_array_equal(scores(1, 0.5), scores(1, 1.0))  # epoch 0 trains at lr either way
    assert not np.array_equal(scores(2, 0.5), scores(2, 1.0))
    with pytest.raises(ValidationError, match="lr_decay"):
        SASRecSession(**{**TINY, "lr_decay": 0.0}).fit(train)
