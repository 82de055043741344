"""The exploration slate policy: exact propensities, replay, and the new-item exposure guarantee."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.explore.slates import SlatePolicy, new_item_exposure

RANKED = [f"sku-{i:03d}" for i in range(40)]
NEW = [f"new-{i}" for i in range(3)]


def test_marginals_are_probabilities_strictly_inside_zero_one() -> None:
    pool, p = SlatePolicy(epsilon=0.1, pool_size=12).marginals(RANKED, 5, NEW)
    assert len(pool) == 15 and p.shape == (15, 5)
    assert np.all((p > 0) & (p < 1))
    np.testing.assert_allclose(p.sum(axis=0), 1.0)
    assert SlatePolicy(epsilon=0.1).propensity(RANKED, 5, "sku-039", 0) == 0.0  # outside the pool


def test_logged_propensities_match_observed_frequencies() -> None:
    policy = SlatePolicy(epsilon=0.3, pool_size=8, seed=2)
    n = 6000
    slates = policy.sample([RANKED] * n, 4, request_ids=[f"r{i}" for i in range(n)])
    pool, p = policy.marginals(RANKED, 4)
    counts = np.zeros_like(p)
    for s in slates:
        for j, item in enumerate(s.items):
            counts[pool.index(item), j] += 1
            assert s.propensities[j] == pytest.approx(p[pool.index(item), j])
    freq = counts / n
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n))
    assert all(len(set(s.items)) == 4 for s in slates)


def test_replayed_request_gets_the_same_slate() -> None:
    policy = SlatePolicy(epsilon=0.5, seed=7)
    ids = [f"req-{i}" for i in range(100)]
    assert policy.sample([RANKED] * 100, 5, request_ids=ids) == policy.sample([RANKED] * 100, 5, request_ids=ids)
    other = SlatePolicy(epsilon=0.5, seed=8).sample([RANKED] * 100, 5, request_ids=ids)
    assert other != policy.sample([RANKED] * 100, 5, request_ids=ids)


@pytest.mark.parametrize("share", [0.05, 0.1])
def test_new_items_get_the_guaranteed_share_of_exposure(share: float) -> None:
    n, k = 8000, 10
    policy = SlatePolicy(epsilon=0.05, new_item_share=share, max_epsilon=0.6, seed=3)
    slates = policy.sample([RANKED] * n, k, request_ids=[f"r{i}" for i in range(n)], new_items=[NEW] * n)
    measured = new_item_exposure(slates, set(NEW))
    # Expected share = share exactly (the ranked top k has no new item); allow 4 standard errors.
    sd = np.sqrt(share * (1 - share) / (n * k)) * 3  # slots within a slate are correlated: inflate
    assert abs(measured - share) < 4 * sd, measured
    baseline = SlatePolicy(epsilon=0.05, seed=3).sample([RANKED] * n, k, request_ids=[f"r{i}" for i in range(n)],
                                                       new_items=[NEW] * n)
    assert new_item_exposure(baseline, set(NEW)) < share * 0.5


def test_share_is_capped_by_max_epsilon() -> None:
    policy = SlatePolicy(epsilon=0.05, new_item_share=0.5, max_epsilon=0.2)
    assert policy.effective_epsilon(33, 3) == 0.2
    pool, p = policy.marginals(RANKED, 10, NEW)
    assert len(pool) == 13 and p[-1, 0] == pytest.approx(0.2 / 13)  # shrunk to the top k, share not reachable


def test_bad_input_is_named() -> None:
    with pytest.raises(ValidationError, match="epsilon"):
        SlatePolicy(epsilon=0.0)
    with pytest.raises(ValidationError, match="ranked"):
        SlatePolicy().marginals(["a", "a"], 2)
    with pytest.raises(ValidationError, match="new_items"):
        SlatePolicy().sample([RANKED], 3, request_ids=["r"], new_items=[NEW, NEW])
