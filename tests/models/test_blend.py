"""SASRec + itemknn blend: weight chosen on validation, member equivalence at w=0/1, cache, refit, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.evaluation.datasets import Dataset
from shopkeep.evaluation.protocols import make_split
from shopkeep.evaluation.runner import make_validate_fn, run_evaluation
from shopkeep.models.base import Interactions, SequentialRecommender
from shopkeep.models.blend import SASRecKNNBlend, zscore
from shopkeep.models.registry import create_model, load_model

N_ITEMS = 40
TINY_SASREC = {"d": 16, "n_layers": 1, "n_heads": 1, "max_len": 10, "max_epochs": 3,
               "epochs_without_validation": 2, "batch_size": 32, "num_threads": 1}


def _sequences(seed: int = 3, n: int = 120) -> tuple[np.ndarray, ...]:
    """Chains start, start+1, ... with 10 % noise: a strong next-item signal for both members."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(5, 12))
        seq = (start + np.arange(length)) % N_ITEMS
        noise = rng.random(length) < 0.1
        seq[noise] = rng.integers(N_ITEMS, size=int(noise.sum()))
        out.append(seq.astype(np.int64))
    return tuple(out)


def _dataset() -> Dataset:
    return Dataset("synthetic", "seqrec", _sequences(), N_ITEMS, tuple(map(str, range(N_ITEMS))), "f")


def _blend(**kwargs: object) -> SASRecKNNBlend:
    return SASRecKNNBlend(sasrec=dict(TINY_SASREC), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fitted() -> tuple[SASRecKNNBlend, Interactions, object]:
    split = make_split(_dataset(), "seqrec")
    validate = make_validate_fn(split.validation, "seqrec")
    model = _blend(weights=(0.0, 0.5, 1.0)).fit(split.fit_train, validate=validate)
    return model, split.fit_train, validate


HISTORIES = [np.array([3, 4, 5]), np.array([10]), np.array([39, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])]


def test_registered_and_config_is_json() -> None:
    model = create_model("sasrec_knn")
    assert isinstance(model, SASRecKNNBlend) and model.name == "sasrec_knn"
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["sasrec"]["max_train_seconds"] == 780.0


def test_weight_is_the_best_on_validation(fitted: tuple[SASRecKNNBlend, Interactions, object]) -> None:
    model, _, validate = fitted
    assert set(model.search_) == {"0.0", "0.5", "1.0"}
    assert model.weight_ == max((0.0, 0.5, 1.0), key=lambda w: model.search_[str(w)])
    # The chosen blend, re-validated without the search cache, scores what the search recorded.
    assert validate(model) == pytest.approx(model.search_[str(model.weight_)])  # type: ignore[operator]


def test_cached_search_scores_equal_uncached(fitted: tuple[SASRecKNNBlend, Interactions, object]) -> None:
    model, _, _ = fitted
    assert model.sasrec_ is not None
    plain = model.sasrec_.score(HISTORIES)
    model._cache = {}
    try:
        first = model._sasrec_scores(HISTORIES)
        second = model._sasrec_scores(HISTORIES)  # served from the cache
        assert len(model._cache) == 1
    finally:
        model._cache = None
    np.testing.assert_allclose(first, plain, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(first, second)


def test_extreme_weights_are_the_members_alone(fitted: tuple[SASRecKNNBlend, Interactions, object]) -> None:
    model, _, _ = fitted
    assert model.sasrec_ is not None and model.itemknn_ is not None
    saved = model.weight_
    try:
        model.weight_ = 0.0
        np.testing.assert_allclose(model.score(HISTORIES), zscore(model.itemknn_.score(HISTORIES)), atol=1e-5)
        model.weight_ = 1.0
        np.testing.assert_allclose(model.score(HISTORIES), zscore(model.sasrec_.score(HISTORIES)), atol=1e-5)
        model.weight_ = 0.5
        both = 0.5 * zscore(model.sasrec_.score(HISTORIES)) + 0.5 * zscore(model.itemknn_.score(HISTORIES))
        np.testing.assert_allclose(model.score(HISTORIES), both, atol=1e-5)
    finally:
        model.weight_ = saved


def test_zscore_rows_are_standardized() -> None:
    rows = zscore(np.random.default_rng(0).random((4, 50)).astype(np.float32) * 100)
    np.testing.assert_allclose(rows.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(rows.std(axis=1), 1.0, atol=1e-4)


def test_without_validate_uses_the_default_weight() -> None:
    model = _blend(default_weight=0.3).fit(Interactions(_sequences(n=40), N_ITEMS))
    assert model.weight_ == 0.3 and model.search_ == {}


def test_refit_keeps_sasrec_and_weight_and_refits_itemknn(
    fitted: tuple[SASRecKNNBlend, Interactions, object],
) -> None:
    model, _, _ = fitted
    other = Interactions(tuple(np.array([i, (i + 7) % N_ITEMS]) for i in range(N_ITEMS)), N_ITEMS)
    refit = model.refit(other)
    assert refit.sasrec_ is model.sasrec_ and refit.weight_ == model.weight_
    assert refit.itemknn_ is not model.itemknn_
    assert refit.itemknn_ is not None
    assert int(refit.itemknn_.score([np.array([2])])[0].argmax()) == 9  # learned from `other` only


def test_runner_tests_the_refit_blend_without_retraining_sasrec() -> None:
    model = _blend(weights=(0.0, 1.0))
    result, tested = run_evaluation(model, _dataset(), seed=0)
    assert isinstance(tested, SASRecKNNBlend) and tested is not model
    assert tested.sasrec_ is model.sasrec_ and tested.weight_ == model.weight_
    assert result.refit_on_validation
    assert result.validation["ndcg@10"] == pytest.approx(max(model.search_.values()))
    assert 0.0 <= result.metrics["ndcg@10"] <= 1.0


def test_save_load_roundtrip(fitted: tuple[SASRecKNNBlend, Interactions, object], tmp_path: Path) -> None:
    model, _, _ = fitted
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "sasrec" / "model.safetensors").is_file()
    assert (tmp_path / "m" / "itemknn" / "model.json").is_file()
    assert not list((tmp_path / "m").rglob("*.pkl"))
    for loaded in (SASRecKNNBlend.load(tmp_path / "m"), load_model(tmp_path / "m")):
        assert isinstance(loaded, SASRecKNNBlend)
        assert loaded.get_config() == model.get_config() and loaded.weight_ == model.weight_
        assert loaded.search_ == model.search_
        np.testing.assert_allclose(loaded.score(HISTORIES), model.score(HISTORIES), rtol=1e-5, atol=1e-5)


def test_load_rejects_a_bad_weight(fitted: tuple[SASRecKNNBlend, Interactions, object], tmp_path: Path) -> None:
    model, _, _ = fitted
    model.save(tmp_path / "m")
    doc_path = tmp_path / "m" / "model.json"
    doc = json.loads(doc_path.read_text())
    doc["meta"]["weight"] = 1.5
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(ValidationError) as err:
        SASRecKNNBlend.load(tmp_path / "m")
    assert err.value.field == "meta.weight"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"weights": (0.0, 1.2)}, "weights"), ({"weights": ()}, "weights"), ({"default_weight": -0.1}, "default_weight")],
)
def test_bad_parameters_are_validation_errors(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        _blend(**kwargs).fit(Interactions(_sequences(n=10), N_ITEMS))
    assert err.value.field == field


def test_unknown_member_parameter_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        SASRecKNNBlend(sasrec={"no_such": 1}).fit(Interactions(_sequences(n=10), N_ITEMS))


def test_out_of_range_history_is_rejected_during_the_search(
    fitted: tuple[SASRecKNNBlend, Interactions, object],
) -> None:
    model, _, _ = fitted
    model._cache = {}
    try:
        with pytest.raises(ValidationError):
            model._sasrec_scores([np.array([1, N_ITEMS])])
    finally:
        model._cache = None


def test_score_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        SASRecKNNBlend().score(HISTORIES)


def test_is_a_sequential_recommender() -> None:
    assert isinstance(SASRecKNNBlend(), SequentialRecommender)
