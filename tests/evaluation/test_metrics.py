"""Metric functions against hand-computed values and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeep.errors import ValidationError
from shopkeep.evaluation.metrics import (
    MISS,
    catalog_coverage,
    hit_rate,
    mask_history,
    metric_table,
    mrr,
    ndcg,
    target_ranks,
    top_k,
)


def test_a_tie_counts_against_the_target() -> None:
    scores = np.array([[1.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    assert target_ranks(scores, np.array([0])).tolist() == [2]
    assert hit_rate(target_ranks(scores, np.array([0])), k=2) == 0.0


def test_masked_target_never_hits() -> None:
    scores = np.array([[0.5, 0.2, 0.1]], dtype=np.float32)
    mask_history(scores, [np.array([1, 0])])
    assert np.isneginf(scores[0, :2]).all() and scores[0, 2] == np.float32(0.1)
    ranks = target_ranks(scores, np.array([0]))
    assert ranks.tolist() == [MISS] and hit_rate(ranks, k=20) == 0.0 and ndcg(ranks, k=20) == 0.0


def test_values_by_hand() -> None:
    ranks = np.array([0, 1, 4, 30])
    assert hit_rate(ranks, 5) == 0.75
    assert ndcg(ranks, 5) == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(6)) / 4)
    assert mrr(ranks, 5) == pytest.approx((1 + 1 / 2 + 1 / 5) / 4)
    table = metric_table(ranks, [5], sessions=True)
    assert table["p@5"] == table["hr@5"] and set(table) == {"hr@5", "ndcg@5", "mrr@5", "p@5"}


def test_top_k_and_coverage() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.8, 0.1, 0.2, 0.3]], dtype=np.float32)
    assert top_k(scores, 2).tolist() == [[1, 3], [0, 3]]
    assert catalog_coverage(top_k(scores, 2), 4) == 0.75


def test_bad_k_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        hit_rate(np.array([1]), k=0)


@given(st.lists(st.integers(0, 100), min_size=1, max_size=50), st.integers(1, 30))
def test_invariants(ranks_list: list[int], k: int) -> None:
    ranks = np.array(ranks_list)
    assert 0.0 <= mrr(ranks, k) <= ndcg(ranks, k) <= hit_rate(ranks, k) <= 1.0
    assert hit_rate(ranks, k) <= hit_rate(ranks, k + 1)


def test_ranks_match_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(20, 15)).astype(np.float32)
    targets = rng.integers(0, 15, size=20)
    expected = [sum(1 for j in range(15) if j != t and scores[i, j] >= scores[i, t]) for i, t in enumerate(targets)]
    assert target_ranks(scores, targets).tolist() == expected
