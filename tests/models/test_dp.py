"""Differential privacy for popularity and co-visitation counts: calibration, clipping, release rule,
and that the noise really behaves as calibrated (empirical checks on many draws)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.models.base import Interactions
from shopkeep.models.dp import (
    DPItemKNNRecommender,
    DPPopularityRecommender,
    clip_items,
    gaussian_sigma,
    noisy_item_counts,
    noisy_pair_counts,
)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


@pytest.mark.parametrize(("eps", "delta"), [(0.5, 1e-5), (1.0, 1e-6), (4.0, 1e-6), (8.0, 1e-6)])
def test_gaussian_sigma_meets_delta_exactly_and_beats_the_classical_bound(eps: float, delta: float) -> None:
    sigma = gaussian_sigma(eps, delta, 1.0)
    got = _phi(1 / (2 * sigma) - eps * sigma) - math.exp(eps) * _phi(-1 / (2 * sigma) - eps * sigma)
    assert got <= delta and got > delta * 0.99  # tight: a smaller sigma would break delta
    if eps <= 1:
        assert sigma < math.sqrt(2 * math.log(1.25 / delta)) / eps
    assert gaussian_sigma(eps, delta, 3.0) == pytest.approx(3 * sigma, rel=1e-6)  # linear in sensitivity


def test_clipping_bounds_each_users_contribution() -> None:
    rng = np.random.default_rng(0)
    seqs = [np.array([1, 1, 2, 3, 4, 5, 6]), np.array([2, 2]), np.array([7])]
    clipped = clip_items(seqs, 3, rng)
    assert [c.size for c in clipped] == [3, 1, 1]
    assert set(clipped[0]) <= {1, 2, 3, 4, 5, 6} and len(set(clipped[0])) == 3
    with pytest.raises(ValidationError, match="clip"):
        clip_items(seqs, 0, rng)


def test_noise_has_the_calibrated_spread() -> None:
    train = Interactions((np.arange(50),), n_items=2000)  # one user, 50 items, clipped to 5
    rng = np.random.default_rng(1)
    lap = noisy_item_counts(train, epsilon=2.0, delta=1e-6, clip=5, mechanism="laplace", rng=rng)
    untouched = np.setdiff1d(np.arange(2000), np.arange(50))
    # Laplace(b): mean |x| = b = clip / epsilon = 2.5
    assert np.abs(lap[untouched]).mean() == pytest.approx(2.5, rel=0.1)
    gau = noisy_item_counts(train, epsilon=2.0, delta=1e-6, clip=5, mechanism="gaussian", rng=rng)
    assert gau[untouched].std() == pytest.approx(gaussian_sigma(2.0, 1e-6, math.sqrt(5)), rel=0.1)
    assert (lap[:50] > 0.5).sum() < 50  # the user's own items are not all visible above the noise


def test_a_pair_held_by_one_user_is_released_about_delta_over_k_of_the_time() -> None:
    # one user with exactly one pair (0 -> 1); loose delta so the rare event is measurable
    train = Interactions((np.array([0, 1]),), n_items=3)
    delta, eps = 0.05, 1.0
    rng = np.random.default_rng(2)
    released = sum(noisy_pair_counts(train, epsilon=eps, delta=delta, pair_clip=1, window=1, rng=rng).nnz
                   for _ in range(4000))
    assert released / 4000 == pytest.approx(delta, abs=0.015)  # bound: P(release) = delta / pair_clip


def test_popular_pairs_survive_and_rare_ones_do_not() -> None:
    seqs = (*(np.array([0, 1]) for _ in range(400)), np.array([2, 3]))
    m = noisy_pair_counts(Interactions(seqs, n_items=4), epsilon=1.0, delta=1e-6, pair_clip=1, window=3,
                          rng=np.random.default_rng(3))
    assert m[0, 1] == pytest.approx(400, abs=40)
    assert m[2, 3] == 0


def test_dp_models_fit_score_save_load_and_refuse_bad_budgets(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    seqs = tuple(rng.integers(0, 30, size=12) for _ in range(300))
    train = Interactions(seqs, n_items=30)
    pop = DPPopularityRecommender(epsilon=8.0, seed=1).fit(train)
    again = DPPopularityRecommender(epsilon=8.0, seed=1).fit(train)
    assert np.array_equal(pop.score([seqs[0]]), again.score([seqs[0]]))  # seeded
    pop.save(tmp_path / "pop")
    assert np.array_equal(DPPopularityRecommender.load(tmp_path / "pop").score([seqs[0]]), pop.score([seqs[0]]))
    knn = DPItemKNNRecommender(epsilon=8.0, pair_clip=3, seed=1).fit(train)
    assert knn.score([seqs[0], seqs[1]]).shape == (2, 30)
    knn.save(tmp_path / "knn")
    loaded = DPItemKNNRecommender.load(tmp_path / "knn")
    assert np.allclose(loaded.score([seqs[0]]), knn.score([seqs[0]]))
    assert loaded.get_config() == knn.get_config()
    for bad in ({"epsilon": 0.0}, {"epsilon": float("inf")}, {"delta": 1.5}, {"mechanism": "uniform"},
                {"mechanism": "gaussian", "delta": 0.0}):
        with pytest.raises(ValidationError):
            DPPopularityRecommender(**bad).fit(train)  # type: ignore[arg-type]
