"""LinUCB and linear Thompson sampling: learning, replayable choices, propensities, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.explore.bandits import LinearThompson, LinUCB

ARMS = [f"arm-{a}" for a in range(5)]


def _world(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(len(ARMS), 4))


def _run(bandit: LinUCB | LinearThompson, rounds: int, seed: int) -> float:
    """Play ``rounds`` batches of 20 contexts; return the share of best-arm choices in the last quarter."""
    true = _world(seed)
    rng = np.random.default_rng(seed + 1)
    hits = []
    for t in range(rounds):
        x = rng.normal(size=(20, 4))
        sel = bandit.select(x, ARMS, k=1, request_ids=[f"{t}-{i}" for i in range(20)])
        acts = [a[0] for a in sel.arms]
        mean = np.array([x[i] @ true[ARMS.index(a)] for i, a in enumerate(acts)])
        bandit.update(x, acts, mean + rng.normal(0.0, 0.5, size=20))
        if t >= rounds * 3 // 4:
            best = np.argmax(x @ true.T, axis=1)
            hits.extend(ARMS.index(a) == b for a, b in zip(acts, best, strict=True))
    return float(np.mean(hits))


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_learns_the_best_arm_per_context(cls: type[LinUCB | LinearThompson]) -> None:
    bandit = cls(epsilon=0.05, seed=3).fit(n_features=4, arms=ARMS)
    assert _run(bandit, 100, seed=11) > 0.8


def test_random_policy_does_not_pass_the_learning_check() -> None:
    # The learning threshold above is meaningful: an untrained, pure-exploration choice is far below it.
    bandit = LinUCB(epsilon=0.99, seed=3).fit(n_features=4, arms=ARMS)
    true, rng = _world(11), np.random.default_rng(5)
    x = rng.normal(size=(400, 4))
    sel = bandit.select(x, ARMS, k=1, request_ids=[str(i) for i in range(400)])
    best = np.argmax(x @ true.T, axis=1)
    assert np.mean([ARMS.index(a[0]) == b for a, b in zip(sel.arms, best, strict=True)]) < 0.4


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_replayed_request_reproduces_its_choice(cls: type[LinUCB | LinearThompson]) -> None:
    bandit = cls(epsilon=0.3, seed=9).fit(n_features=4, arms=ARMS)
    _run(bandit, 10, seed=2)
    x = np.random.default_rng(0).normal(size=(50, 4))
    ids = [f"req-{i}" for i in range(50)]
    a, b = bandit.select(x, ARMS, k=3, request_ids=ids), bandit.select(x, ARMS, k=3, request_ids=ids)
    assert a == b
    c = bandit.select(x, ARMS, k=3, request_ids=[f"other-{i}" for i in range(50)])
    assert c.explored != a.explored or c.arms != a.arms


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_propensities_strictly_between_zero_and_one(cls: type[LinUCB | LinearThompson]) -> None:
    bandit = cls(epsilon=0.1, seed=1).fit(n_features=4, arms=ARMS)
    _run(bandit, 20, seed=4)
    sel = bandit.select(np.random.default_rng(1).normal(size=(200, 4)), ARMS, k=2,
                        request_ids=[str(i) for i in range(200)])
    flat = [p for row in sel.propensities for p in row]
    assert all(0.0 < p < 1.0 for p in flat)


def test_linucb_propensity_matches_frequency() -> None:
    bandit = LinUCB(epsilon=0.2, seed=5).fit(n_features=4, arms=ARMS)
    _run(bandit, 20, seed=6)
    x = np.tile(np.random.default_rng(2).normal(size=(1, 4)), (4000, 1))
    sel = bandit.select(x, ARMS, k=1, request_ids=[f"r{i}" for i in range(4000)])
    chosen = [a[0] for a in sel.arms]
    for arm in set(chosen):
        p = next(p[0] for a, p in zip(sel.arms, sel.propensities, strict=True) if a[0] == arm)
        freq = chosen.count(arm) / len(chosen)
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / len(chosen)) + 1e-9, (arm, freq, p)


def test_thompson_propensity_estimate_matches_frequency() -> None:
    bandit = LinearThompson(v=1.0, epsilon=0.1, seed=5, n_propensity_samples=2000).fit(n_features=4, arms=ARMS)
    bandit.update(np.eye(4)[[0, 0, 1]], ["arm-0", "arm-1", "arm-2"], [1.0, 0.8, 0.5])
    x = np.tile(np.array([[1.0, 0.2, 0.0, 0.0]]), (3000, 1))
    sel = bandit.select(x, ARMS, k=1, request_ids=[f"r{i}" for i in range(3000)])
    chosen = [a[0] for a in sel.arms]
    for arm in ARMS:
        props = [p[0] for a, p in zip(sel.arms, sel.propensities, strict=True) if a[0] == arm]
        if props:
            assert abs(chosen.count(arm) / 3000 - float(np.mean(props))) < 0.04, arm


def test_new_arm_is_explored_by_linucb() -> None:
    bandit = LinUCB(alpha=1.0, epsilon=0.0).fit(n_features=2)
    x = np.tile([[1.0, 0.0]], (200, 1))
    bandit.update(x, ["old"] * 200, np.full(200, 0.1))
    sel = bandit.select(np.array([[1.0, 0.0]]), ["old", "new"], k=1, request_ids=["r"])
    assert sel.arms == (("new",),)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_save_load_round_trip_without_pickle(cls: type[LinUCB | LinearThompson], tmp_path) -> None:
    bandit = cls(epsilon=0.2, seed=4).fit(n_features=4, arms=ARMS)
    _run(bandit, 10, seed=8)
    bandit.save(tmp_path / "b")
    loaded = cls.load(tmp_path / "b")
    x = np.random.default_rng(3).normal(size=(30, 4))
    ids = [str(i) for i in range(30)]
    assert loaded.select(x, ARMS, k=2, request_ids=ids) == bandit.select(x, ARMS, k=2, request_ids=ids)
    with np.load(tmp_path / "b" / "arrays.npz", allow_pickle=False) as arrays:
        assert arrays["a_inv"].shape == (5, 4, 4)
    assert json.loads((tmp_path / "b" / "model.json").read_text())["meta"]["arm_ids"] == ARMS


def test_bad_input_is_named() -> None:
    with pytest.raises(NotFittedError):
        LinUCB().select(np.zeros((1, 2)), ["a"], request_ids=["r"])
    with pytest.raises(ValidationError, match="epsilon"):
        LinUCB(epsilon=1.0).fit(n_features=2)
    bandit = LinUCB().fit(n_features=2)
    with pytest.raises(ValidationError, match="contexts"):
        bandit.select(np.zeros((1, 3)), ["a"], request_ids=["r"])
    with pytest.raises(ValidationError, match="k="):
        bandit.select(np.zeros((1, 2)), ["a"], k=2, request_ids=["r"])
    with pytest.raises(ValidationError, match="rewards"):
        bandit.update(np.zeros((2, 2)), ["a", "b"], [1.0, float("nan")])
    with pytest.raises(ValidationError, match="request_ids"):
        bandit.select(np.zeros((2, 2)), ["a"], request_ids=["r"])
