"""The candidate stacker: features by hand, the stacked order, learning a signal the blend misses, the
session blend keeping it only when it wins on held-out validation, refit, save/load without pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from shopkeep.errors import ValidationError
from shopkeep.evaluation.datasets import Dataset
from shopkeep.evaluation.protocols import make_split
from shopkeep.evaluation.runner import make_validate_fn, run_evaluation
from shopkeep.models.base import LabeledValidate
from shopkeep.models.stacking import (
    FEATURE_NAMES,
    CandidateStacker,
    StackInputs,
    candidate_features,
    stacked_scores,
    target_rank_after,
    top_candidates,
)

F = {name: i for i, name in enumerate(FEATURE_NAMES)}
SIM = sp.csr_matrix(np.array([[0, 1, 2, 0], [1, 0, 0, 3], [2, 0, 0, 1], [0, 3, 1, 0]], dtype=np.float32))


def test_stack_inputs_count_all_and_recent_sequences() -> None:
    seqs = [np.array([0, 1, 2]), np.array([1, 3]), np.array([3, 3])]
    inputs = StackInputs.from_sequences(seqs, 4, SIM, recent_share=0.34)
    assert inputs.popularity.tolist() == [1, 2, 1, 3]
    assert inputs.recent_popularity.tolist() == [0, 0, 0, 2]  # the last third: one sequence
    with pytest.raises(ValidationError, match="recent_share"):
        StackInputs.from_sequences(seqs, 4, SIM, recent_share=0.0)


def test_candidate_features_by_hand() -> None:
    inputs = StackInputs.from_sequences([np.array([0, 1, 2]), np.array([1, 3])], 4, SIM, recent_share=0.5)
    hist = [np.array([0, 1, 0]), np.array([3])]
    zs = np.array([[0.1, 0.5, 0.2, 0.9], [1, 0, 0, 0]], dtype=np.float32)
    zk = zs[:, ::-1].copy()
    blend = (0.5 * zs + 0.5 * zk).astype(np.float32)
    cand, f = candidate_features(hist, zs, zk, zs, blend, inputs, 3)
    assert cand.tolist() == [[0, 3, 1], [0, 3, 1]]  # ties: the lower index first
    assert f.shape == (2, 3, len(FEATURE_NAMES))
    assert f[0, :, F["transformer_rank"]].tolist() == [2, 0, 1]
    assert f[0, :, F["in_history"]].tolist() == [1, 0, 1]
    np.testing.assert_array_equal(f[0, :, F["history_distance"]], [0, np.nan, 1])
    assert f[0, :, F["history_count"]].tolist() == [2, 0, 1]
    assert f[0, :, F["last_item_similarity"]].tolist() == [0, 0, 0.5]  # row of item 0: [0, 1, 2, 0] / 2
    assert f[1, :, F["last_item_similarity"]].tolist() == [0, 0, 1]  # row of item 3: [0, 3, 1, 0] / 3
    assert f[0, :, F["history_length"]].tolist() == [3, 3, 3] and f[0, :, F["history_unique"]].tolist() == [2, 2, 2]
    assert f[0, :, F["log_popularity"]].tolist() == pytest.approx(np.log1p([1, 1, 2]).tolist())
    softmax = np.exp(zs[0]) / np.exp(zs[0]).sum()
    expected = np.log(softmax[[0, 3, 1]]).tolist()
    assert f[0, :, F["transformer_log_softmax"]].tolist() == pytest.approx(expected, abs=1e-6)


def test_stacked_scores_put_candidates_first_in_the_stacker_order() -> None:
    rng = np.random.default_rng(0)
    blend = rng.normal(size=(20, 50)).astype(np.float32)
    cand = top_candidates(blend, 10)
    pred = rng.normal(size=(20, 10)).astype(np.float32)
    out = stacked_scores(blend, cand, pred)
    order = np.argsort(-out, axis=1, kind="stable")
    for r in range(20):
        assert order[r, :10].tolist() == cand[r, np.argsort(-pred[r], kind="stable")].tolist()
        rest = [i for i in np.argsort(-blend[r], kind="stable") if i not in set(cand[r].tolist())]
        assert order[r, 10:].tolist() == rest  # the others keep the blend's order below
    labels = (cand == cand[:, [3]]).astype(np.float32)  # the target: each row's 4th candidate
    ranks = target_rank_after(pred, labels, np.full(20, 99))
    assert ranks.tolist() == [int((out[r] > out[r, cand[r, 3]]).sum()) for r in range(20)]
    tied = target_rank_after(np.zeros_like(pred), labels, np.full(20, 99))
    assert tied.tolist() == [9] * 20  # ties count against the target, as in the evaluation
    assert target_rank_after(pred, np.zeros_like(labels), np.full(20, 42)).tolist() == [42] * 20


def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features where the target is the candidate seen most often in the history, which the blend ranks
    anywhere in its top 10."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 10, len(FEATURE_NAMES))).astype(np.float32)
    feats[..., F["blend_position"]] = np.arange(10)
    counts = rng.integers(0, 3, size=(n, 10)).astype(np.float32)
    target = rng.integers(0, 10, size=n)
    counts[np.arange(n), target] = 5
    feats[..., F["history_count"]] = counts
    labels = np.zeros((n, 10), dtype=np.float32)
    labels[np.arange(n), target] = 1
    return feats, labels, target


def test_stacker_learns_what_the_blend_misses_and_reports_on_held_out_cases() -> None:
    feats, labels, target = _planted(3000, 1)
    stacker = CandidateStacker(n_candidates=10, rounds=30, train_share=0.7).fit(feats, labels, target)
    report = stacker.report_
    assert report["held_out_cases"] == 900
    assert report["blend_mrr@20"] == pytest.approx(float(np.mean(1.0 / (target[2100:] + 1))))
    assert report["stacked_mrr@20"] > 0.95 > report["blend_mrr@20"]
    top = stacker.predict(feats[2100:]).argmax(axis=1)
    assert (top == target[2100:]).mean() > 0.95


def test_stacker_save_load_predicts_the_same_without_pickle(tmp_path: Path) -> None:
    feats, labels, target = _planted(600, 2)
    stacker = CandidateStacker(n_candidates=10, rounds=10).fit(feats, labels, target)
    inputs = StackInputs.from_sequences([np.array([0, 1]), np.array([2, 3])], 4, SIM)
    stacker.save(tmp_path / "s", inputs)
    assert not list(tmp_path.rglob("*.pkl"))
    loaded, loaded_inputs = CandidateStacker.load(tmp_path / "s", SIM)
    np.testing.assert_array_equal(loaded.predict(feats), stacker.predict(feats))
    assert loaded.get_config() == stacker.get_config() and loaded.report_ == stacker.report_
    np.testing.assert_array_equal(loaded_inputs.popularity, inputs.popularity)
    with pytest.raises(ValidationError, match="popularity"):
        CandidateStacker.load(tmp_path / "s", sp.csr_matrix((5, 5), dtype=np.float32))


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_candidates", 0), ("candidate_weight", 1.5), ("train_share", 1.0), ("rounds", 0), ("learning_rate", 0.0),
     ("recent_share", 2.0), ("num_threads", 0), ("max_cases", 5)],
)
def test_bad_stacker_parameters_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        CandidateStacker(**{field: value})


def test_stacker_without_a_positive_in_training_is_refused() -> None:
    feats, labels, target = _planted(100, 3)
    with pytest.raises(ValidationError, match="labels"):
        CandidateStacker(n_candidates=10).fit(feats, np.zeros_like(labels), target)


# -- in the session blend -------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from shopkeep.models.blend import SASRecSessionKNNBlend  # noqa: E402
from shopkeep.models.registry import load_model  # noqa: E402

N_ITEMS = 60
TINY = {"d": 16, "n_layers": 1, "n_heads": 1, "max_len": 10, "max_epochs": 2, "epochs_without_validation": 2,
        "batch_size": 32, "num_threads": 1, "loss": "sampled", "n_negatives": 16, "negative_sampling": "frequency"}
STACKER = {"n_candidates": 20, "rounds": 40, "train_share": 0.6}


def _anchor_sessions(seed: int, n: int) -> tuple[np.ndarray, ...]:
    """Sessions that keep coming back to one anchor item: a r1 a r2 a r3 ... (r random). After an r the next
    item is the anchor, two steps back and the most frequent item of the session."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        anchor, length = int(rng.integers(N_ITEMS)), int(rng.integers(5, 12))
        seq = rng.integers(N_ITEMS, size=length)
        seq[::2] = anchor
        out.append(seq.astype(np.int64))
    return tuple(out)


def _dataset() -> Dataset:
    seqs = _anchor_sessions(3, 900)
    train, test = seqs[:800], seqs[800:]
    prefixes = tuple(s[:i] for s in test for i in range(1, s.size))
    labels = np.array([s[i] for s in test for i in range(1, s.size)], dtype=np.int64)
    return Dataset("anchor-sessions", "sessions", train, N_ITEMS, tuple(map(str, range(N_ITEMS))), "f",
                   test_prefixes=prefixes, test_labels=labels)


@pytest.fixture(scope="module")
def split() -> Any:
    return make_split(_dataset(), "sessions")


@pytest.fixture(scope="module")
def stacked(split: Any) -> SASRecSessionKNNBlend:
    validate = make_validate_fn(split.validation, "sessions")
    return SASRecSessionKNNBlend(sasrec=dict(TINY), stacker=dict(STACKER)).fit(split.fit_train, validate=validate)


def test_the_runner_validate_callback_shows_its_cases(split: Any) -> None:
    validate = make_validate_fn(split.validation, "sessions")
    assert isinstance(validate, LabeledValidate)
    assert validate.histories is split.validation.histories and validate.targets is split.validation.targets


def test_blend_keeps_a_stacker_that_wins_on_held_out_validation_and_scores_with_it(
    stacked: SASRecSessionKNNBlend, split: Any
) -> None:
    assert stacked.stacker_ is not None and stacked.stack_inputs_ is not None
    search = stacked.search_
    assert search["held_out:stacked"] > max(search["held_out:blend"], search["held_out:knn"])
    assert stacked.weight_ == STACKER.get("candidate_weight", 0.85)
    hist = split.validation.histories[:50]
    scores = stacked.score(hist)
    assert scores.shape == (50, N_ITEMS)
    # the stacked order: the candidates first, in the booster's order
    plain = SASRecSessionKNNBlend(sasrec=dict(TINY), stacker=None)
    plain.sasrec_, plain.itemknn_, plain.weight_ = stacked.sasrec_, stacked.itemknn_, stacked.weight_
    blend = plain.score(hist)
    cand = top_candidates(blend, 20)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    assert all(set(top[r].tolist()) == set(cand[r].tolist()) for r in range(50))


def test_stacked_blend_beats_the_plain_blend_on_test_through_the_runner() -> None:
    data = _dataset()
    res_stacked, tested = run_evaluation(
        SASRecSessionKNNBlend(sasrec=dict(TINY), stacker=dict(STACKER), refit_epochs=0), data, "sessions", ks=(20,)
    )
    res_plain, _ = run_evaluation(
        SASRecSessionKNNBlend(sasrec=dict(TINY), stacker=None, refit_epochs=0), data, "sessions", ks=(20,)
    )
    assert isinstance(tested, SASRecSessionKNNBlend) and tested.stacker_ is not None
    assert res_stacked.metrics["mrr@20"] > res_plain.metrics["mrr@20"] + 0.05
    assert res_stacked.config["stacker"] == STACKER and res_plain.config["stacker"] is None


def test_refit_keeps_the_stacker_and_recounts_its_inputs(stacked: SASRecSessionKNNBlend, split: Any) -> None:
    refit = stacked.refit(split.refit_train)
    assert refit.stacker_ is stacked.stacker_
    assert refit.stack_inputs_ is not None and stacked.stack_inputs_ is not None
    assert refit.stack_inputs_.popularity.sum() > stacked.stack_inputs_.popularity.sum()  # + validation sessions
    assert refit.itemknn_ is not None and refit.stack_inputs_.similarity.nnz == refit.itemknn_.sim_.nnz  # type: ignore[union-attr]


def test_stacked_blend_saves_and_loads_identical_scores_without_pickle(
    stacked: SASRecSessionKNNBlend, split: Any, tmp_path: Path
) -> None:
    stacked.save(tmp_path / "m")
    assert (tmp_path / "m" / "stacker" / "booster.txt").is_file() and not list(tmp_path.rglob("*.pkl"))
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, SASRecSessionKNNBlend) and loaded.stacker_ is not None
    hist = split.validation.histories[:40]
    np.testing.assert_array_equal(loaded.score(hist), stacked.score(hist))


def test_stacker_fit_reports_its_progress_through_the_validate_callback(split: Any) -> None:
    seen: list[tuple[str, int, int]] = []
    validate = make_validate_fn(split.validation, "sessions", lambda *a: seen.append(a))
    SASRecSessionKNNBlend(sasrec={**TINY, "max_epochs": 1}, stacker=dict(STACKER)).fit(split.fit_train, validate)
    mine = [(done, total) for phase, done, total in seen if phase == "stacker: candidates"]
    assert mine and mine[-1] == (len(split.validation), len(split.validation))
    assert any(phase == "validate" for phase, _, _ in seen)  # the transformer's early-stopping passes


def test_stacker_learns_from_at_most_max_cases_spread_over_validation(split: Any) -> None:
    model = SASRecSessionKNNBlend(sasrec={**TINY, "max_epochs": 1}, stacker={**STACKER, "max_cases": 40})
    model.fit(split.fit_train, make_validate_fn(split.validation, "sessions"))
    assert len(split.validation) > 40
    assert model.search_["held_out:cases"] == 40 - int(40 * 0.6)


def test_a_plain_validate_callable_runs_the_weight_search(split: Any) -> None:
    cases = split.validation

    def validate(model: Any) -> float:  # not a LabeledValidate: shows no cases
        return float(make_validate_fn(cases, "sessions")(model))

    model = SASRecSessionKNNBlend(sasrec=dict(TINY), stacker=dict(STACKER), weights=(0.0, 0.5))
    model.fit(split.fit_train, validate=validate)
    assert model.stacker_ is None and set(model.search_) == {"0.0", "0.5"}


def test_a_stacker_that_does_not_win_is_dropped_for_the_weight_search(split: Any) -> None:
    # re-ordering a single candidate changes nothing: the stacker ties the blend, which is not a win
    weak = {**STACKER, "n_candidates": 1, "rounds": 2}
    model = SASRecSessionKNNBlend(sasrec=dict(TINY), stacker=weak, weights=(0.0, 0.5))
    model.fit(split.fit_train, validate=make_validate_fn(split.validation, "sessions"))
    assert model.stacker_ is None and {"0.0", "0.5", "held_out:stacked"} <= set(model.search_)
    assert model.weight_ in (0.0, 0.5)


def test_bad_stacker_config_in_the_blend_names_the_field(split: Any) -> None:
    with pytest.raises(ValidationError, match="n_candidates"):
        SASRecSessionKNNBlend(sasrec=dict(TINY), stacker={"n_candidates": -1}).fit(split.fit_train)
    with pytest.raises(ValidationError, match="stacker"):
        SASRecSessionKNNBlend(sasrec=dict(TINY), stacker={"bogus": 1}).fit(split.fit_train)
