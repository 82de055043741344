"""Protocol splits and the runner: what each phase sees, the validate callback, refit, truncation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from shopkeep.cli.main import main
from shopkeep.errors import ValidationError
from shopkeep.evaluation.datasets import Dataset
from shopkeep.evaluation.protocols import SESSION_VALIDATION_SHARE, make_split
from shopkeep.evaluation.runner import evaluate, run_evaluation
from shopkeep.models.base import Interactions, ValidateFn
from shopkeep.models.popularity import PopularityRecommender

IDS = tuple(str(i) for i in range(10))


def _seqrec() -> Dataset:
    seqs = (np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7]), np.array([8, 9]), np.array([1]))
    return Dataset("s", "seqrec", seqs, 10, IDS, "fp")


def _sessions() -> Dataset:
    seqs = tuple(np.array([i % 10, (i + 1) % 10, (i + 2) % 10]) for i in range(20))
    return Dataset("x", "sessions", seqs, 10, IDS, "fp", test_prefixes=(np.array([3, 3]), np.array([4])),
                   test_labels=np.array([3, 5]))


def test_leave_one_out_phases() -> None:
    split = make_split(_seqrec(), "seqrec")
    assert [s.tolist() for s in split.fit_train.sequences] == [[0, 1, 2], [5]]
    assert [s.tolist() for s in split.refit_train.sequences] == [[0, 1, 2, 3], [5, 6], [8]]
    assert [h.tolist() for h in split.validation.histories] == [[0, 1, 2], [5]]
    assert split.validation.targets.tolist() == [3, 6] and split.validation.exclude_history
    assert [h.tolist() for h in split.test.histories] == [[0, 1, 2, 3], [5, 6], [8]]
    assert split.test.targets.tolist() == [4, 7, 9]
    assert [h.tolist() for h in split.test.truncated(1).histories] == [[3], [6], [8]]


def test_session_split_holds_out_the_latest_tenth() -> None:
    ds = _sessions()
    split = make_split(ds, "sessions")
    n_val = int(np.ceil(20 * SESSION_VALIDATION_SHARE))
    assert len(split.fit_train.sequences) == 20 - n_val and len(split.refit_train.sequences) == 20
    assert len(split.validation) == 2 * n_val  # two prefixes per 3-item session
    assert split.validation.histories[0].tolist() == ds.sequences[20 - n_val][:1].tolist()
    assert not split.validation.exclude_history and not split.test.exclude_history
    assert split.test.targets.tolist() == [3, 5]


def test_protocol_must_match_the_format() -> None:
    with pytest.raises(ValidationError):
        make_split(_seqrec(), "sessions")
    with pytest.raises(ValidationError):
        make_split(_seqrec(), "loo")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        make_split(_seqrec(), "seqrec").test.truncated(0)


class Recorder:
    """A test model that remembers what it was fit on and scores item i with i (last item first)."""

    name = "recorder"

    def __init__(self, refit: bool = False) -> None:
        self.refit = refit
        self.refit_on_validation = refit
        self.seen: list[list[int]] | None = None
        self.validations: list[float] = []

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        self.seen = [s.tolist() for s in train.sequences]
        if validate is not None:
            self.validations.append(validate(self))
        return self

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.tile(np.arange(10, dtype=np.float32), (len(histories), 1))
        for row, h in enumerate(histories):
            if len(h):
                out[row, (int(h[-1]) + 1) % 10] = 100.0  # "the next id follows"
        return out

    def save(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path) -> Self:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"refit": self.refit}


def test_runner_passes_validate_and_keeps_test_items_out() -> None:
    model = Recorder()
    result = evaluate(model, _seqrec(), seed=3)
    assert model.seen == [[0, 1, 2], [5]]
    assert model.validations == [1.0]  # both validation targets are "the next id"
    assert result.metrics["hr@5"] == 1.0 and result.validation["ndcg@10"] == 1.0
    assert result.n_cases == 3 and result.n_validation_cases == 2 and not result.refit_on_validation
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["seed"] == 3 and doc["model"] == "recorder" and "numpy" in doc["versions"]
    assert len(doc["config_hash"]) == 12 and doc["fingerprint"] == "fp"


def test_refit_models_are_tested_after_a_fit_on_train_plus_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    fitted: list[Recorder] = []
    original = Recorder.fit

    def spy(self: Recorder, train: Interactions, validate: ValidateFn | None = None) -> Recorder:
        fitted.append(self)
        return original(self, train, validate)

    monkeypatch.setattr(Recorder, "fit", spy)
    result = evaluate(Recorder(refit=True), _seqrec())
    assert result.refit_on_validation and len(fitted) == 2
    assert fitted[1].seen == [[0, 1, 2, 3], [5, 6], [8]]  # no test target


def test_pop_counts_validation_items_at_test_time_only() -> None:
    ds = Dataset("p", "seqrec", (np.array([0, 1, 2]),) * 3 + (np.array([3, 2, 4]),), 5, IDS[:5], "fp")
    result, tested = run_evaluation(PopularityRecommender(), ds, ks=(1, 5))
    assert isinstance(tested, PopularityRecommender) and tested.counts_ is not None
    assert tested.counts_.tolist() == [3, 3, 1, 1, 0]  # train + validation items, never the test items
    # validation phase (train only: counts 0:3, 3:1) - target 1 after [0] ties with nothing above 0 -> rank 1
    assert result.validation["hr@1"] == 0.0
    # test: [0, 1] masked, target 2 ties with item 3 (1 each) -> miss; [3, 2] masked, target 4 -> miss
    assert result.metrics["hr@1"] == 0.0 and result.metrics["hr@5"] == 1.0


def test_sessions_truncation_and_p_at_k() -> None:
    result = evaluate(Recorder(), _sessions(), ks=(1, 20), truncate=1)
    assert set(result.metrics) >= {"p@20", "mrr@20", "hr@1", "coverage@20"}
    assert result.metrics["p@1"] == 0.5  # label 5 follows 4 ("the next id"), label 3 after 3 does not
    assert result.truncate == 1
    # both test inputs are cut to one item: one bucket holding both cases, with the same metrics
    assert set(result.by_input_length) == {"1"}
    assert result.by_input_length["1"]["cases"] == 2.0 and result.by_input_length["1"]["p@1"] == 0.5
    untruncated = evaluate(Recorder(), _sessions(), ks=(1, 20))
    assert {k: v["cases"] for k, v in untruncated.by_input_length.items()} == {"1": 1.0, "2": 1.0}


def test_cli_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seqs = "\n".join(f"{u} " + " ".join(str(1 + (u + j) % 12) for j in range(6)) for u in range(1, 40))
    (tmp_path / "Mini.txt").write_text(seqs + "\n")
    code = main(["evaluate", "--data", str(tmp_path), "--format", "seqrec", "--model", "itemknn", "--json",
                 "--seed", "5", "--param", "window=2", "--save", str(tmp_path / "model")])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr@20", "train_seconds",
                "eval_seconds", "config", "config_hash", "validation", "fingerprint", "dataset"):
        assert key in doc
    assert doc["model"] == "itemknn" and doc["seed"] == 5 and doc["config"]["window"] == 2
    assert doc["hr@10"] > 0.9  # the next item is deterministic in this data
    assert (tmp_path / "model" / "model.json").is_file()


def test_cli_rejects_a_bad_param(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Mini.txt").write_text("1 1 2 3\n")
    assert main(["evaluate", "--data", str(tmp_path), "--format", "seqrec", "--model", "pop",
                 "--param", "nope=1"]) == 2
    assert "invalid_input" in capsys.readouterr().err
