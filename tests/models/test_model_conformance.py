"""One conformance suite for every registered model (house rule 2), on a tiny synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.evaluation.datasets import Dataset
from shopkeep.evaluation.runner import evaluate
from shopkeep.models.base import Interactions, ItemFeatures, SequentialRecommender
from shopkeep.models.registry import available_models, create_model, load_model, model_class

N_ITEMS = 30
# Small settings so iterative models finish in seconds; keys must exist in the model's constructor.
_FAST_SASREC: dict[str, object] = {
    "d": 16,
    "n_layers": 1,
    "n_heads": 1,
    "max_len": 10,
    "max_epochs": 2,
    "epochs_without_validation": 2,
    "batch_size": 32,
    "num_threads": 1,
}

FAST_PARAMS: dict[str, dict[str, object]] = {
    "als": {"factors": 8, "iterations": 3, "threads": 1},
    "segment_pop": {"n_segments": 4, "n_components": 4},
    "sasrec": dict(_FAST_SASREC),
    "sasrec_session": dict(_FAST_SASREC),
    "two_tower": {
        "d": 16,
        "max_len": 10,
        "max_epochs": 2,
        "epochs_without_validation": 2,
        "batch_size": 32,
        "n_negatives": 16,
        "num_threads": 1,
        "text_encoder": "hashing",
        "cache_dir": None,
    },
    "content_knn": {"text_encoder": "hashing", "cache_dir": None},
    "sasrec_knn": {"sasrec": dict(_FAST_SASREC)},
    "sasrec_session_knn": {
        "sasrec": {**_FAST_SASREC, "loss": "sampled", "n_negatives": 8, "negative_sampling": "frequency"}
    },
}


def _sequences(seed: int = 7, n: int = 80) -> tuple[np.ndarray, ...]:
    """Chains start, start+1, ... (mod N_ITEMS) with a little noise: a learnable next-item signal."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(5, 10))
        seq = (start + np.arange(length)) % N_ITEMS
        noise = rng.random(length) < 0.1
        seq[noise] = rng.integers(N_ITEMS, size=int(noise.sum()))
        out.append(seq.astype(np.int64))
    return tuple(out)


def _features() -> ItemFeatures:
    attrs = tuple(np.array([i % 5, 5 + i % 3], dtype=np.int64) for i in range(N_ITEMS))
    return ItemFeatures(n_attributes=8, attributes=attrs, titles=tuple(f"item {i}" for i in range(N_ITEMS)))


@pytest.fixture(scope="module")
def train() -> Interactions:
    return Interactions(_sequences(), N_ITEMS, _features())


HISTORIES = [np.array([3, 4, 5]), np.array([10]), np.array([29, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])]


def _new(name: str) -> SequentialRecommender:
    return create_model(name, **FAST_PARAMS.get(name, {}))  # type: ignore[arg-type]


MODEL_NAMES = available_models()


def test_the_registry_lists_the_baselines() -> None:
    assert {"pop", "itemknn", "als", "segment_pop"} <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
class TestConformance:
    def test_protocol_name_and_config_roundtrip(self, name: str) -> None:
        model = _new(name)
        assert isinstance(model, SequentialRecommender)
        assert model.name == name
        config = model.get_config()
        assert json.loads(json.dumps(config)) == config
        assert create_model(name, **config).get_config() == config

    def test_score_before_fit_raises_not_fitted(self, name: str) -> None:
        with pytest.raises(NotFittedError):
            _new(name).score(HISTORIES)

    def test_unknown_hyper_parameter_is_a_validation_error(self, name: str) -> None:
        with pytest.raises(ValidationError):
            create_model(name, no_such_parameter=1)

    def test_fit_returns_self_and_scores_every_item(self, name: str, train: Interactions) -> None:
        model = _new(name)
        assert model.fit(train) is model
        scores = model.score(HISTORIES)
        assert scores.shape == (len(HISTORIES), N_ITEMS)
        assert scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_batch_equals_singles(self, name: str, train: Interactions) -> None:
        model = _new(name).fit(train)
        batch = model.score(HISTORIES)
        for i, hist in enumerate(HISTORIES):
            np.testing.assert_allclose(model.score([hist])[0], batch[i], rtol=1e-4, atol=1e-5)

    def test_save_load_roundtrip_without_pickle(self, name: str, train: Interactions, tmp_path: Path) -> None:
        model = _new(name).fit(train)
        model.save(tmp_path / "m")
        assert not list((tmp_path / "m").glob("*.pkl"))
        for loaded in (model_class(name).load(tmp_path / "m"), load_model(tmp_path / "m")):
            assert loaded.get_config() == model.get_config()
            np.testing.assert_allclose(loaded.score(HISTORIES), model.score(HISTORIES), rtol=1e-5, atol=1e-6)

    def test_same_seed_same_scores(self, name: str, train: Interactions) -> None:
        a = _new(name).fit(train).score(HISTORIES)
        b = _new(name).fit(train).score(HISTORIES)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    def test_accepts_a_validate_callback(self, name: str, train: Interactions) -> None:
        calls: list[float] = []

        def validate(model: SequentialRecommender) -> float:
            value = float(model.score(HISTORIES[:1])[0, 6])
            calls.append(value)
            return value

        model = _new(name).fit(train, validate=validate)
        assert model.score(HISTORIES).shape == (len(HISTORIES), N_ITEMS)

    def test_runs_under_the_evaluation_runner(self, name: str) -> None:
        ds = Dataset(
            "synthetic", "seqrec", _sequences(n=60), N_ITEMS, tuple(map(str, range(N_ITEMS))), "f", features=_features()
        )
        result = evaluate(_new(name), ds, seed=1)
        assert result.n_cases == 60 and result.n_validation_cases == 60
        for key, value in [*result.metrics.items(), *result.validation.items()]:
            assert 0.0 <= value <= 1.0, key
        assert result.metrics["hr@5"] <= result.metrics["hr@10"] <= result.metrics["hr@20"]
