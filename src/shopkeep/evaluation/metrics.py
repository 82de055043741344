"""Ranking metrics computed from the 0-based rank of each case's single target.

``rank`` = the number of *other* items scoring at least as high as the target (a tie counts against
the target); a target that cannot be ranked (masked out) gets rank :data:`MISS` and never hits.

>>> ranks = np.array([0, 3, 12, 1])
>>> float(hit_rate(ranks, k=10))
0.75
>>> round(float(ndcg(ranks, k=10)), 4)   # (1 + 1/log2(5) + 0 + 1/log2(3)) / 4
0.5154
>>> float(mrr(ranks, k=10))               # (1 + 1/4 + 0 + 1/2) / 4
0.4375
>>> float(precision(ranks, k=10)) == float(hit_rate(ranks, k=10))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError

__all__ = [
    "MISS",
    "catalog_coverage",
    "hit_rate",
    "mask_history",
    "metric_table",
    "mrr",
    "ndcg",
    "precision",
    "target_ranks",
    "top_k",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

#: Rank given to a target that was masked out (``-inf``): larger than any cut-off.
MISS = 2**62


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValidationError("k", k, "must be a positive integer")


def hit_rate(ranks: IntArray, k: int) -> float:
    """HR@k (= Recall@k with one target): share of cases whose target ranks in the top ``k``.

    >>> hit_rate(np.array([0, 9, 10]), k=10)
    0.6666666666666666
    """
    _check_k(k)
    return float(np.mean(ranks < k)) if ranks.size else 0.0


def precision(ranks: IntArray, k: int) -> float:
    """P@k as the session papers define it (SR-GNN): the same as HR@k with one target."""
    return hit_rate(ranks, k)


def ndcg(ranks: IntArray, k: int) -> float:
    """NDCG@k with one relevant item: mean of ``1/log2(rank + 2)`` for hits, 0 otherwise.

    >>> ndcg(np.array([0, 1]), k=1)
    0.5
    """
    _check_k(k)
    if not ranks.size:
        return 0.0
    gains = np.where(ranks < k, 1.0 / np.log2(np.minimum(ranks, k) + 2.0), 0.0)
    return float(gains.mean())


def mrr(ranks: IntArray, k: int) -> float:
    """MRR@k: mean of ``1/(rank + 1)`` for hits within ``k``, 0 otherwise.

    >>> mrr(np.array([0, 1, 50]), k=20)
    0.5
    """
    _check_k(k)
    if not ranks.size:
        return 0.0
    return float(np.where(ranks < k, 1.0 / (np.minimum(ranks, k) + 1.0), 0.0).mean())


def catalog_coverage(top_items: IntArray, n_items: int) -> float:
    """Share of the catalog that appears in at least one top-k list (``top_items``: cases x k).

    >>> catalog_coverage(np.array([[0, 1], [1, 2]]), n_items=10)
    0.3
    """
    if n_items <= 0:
        raise ValidationError("n_items", n_items, "must be > 0")
    return float(np.unique(top_items).size) / n_items if top_items.size else 0.0


def mask_history(scores: FloatArray, histories: Sequence[IntArray]) -> None:
    """Set, in place, the score of every item in each row's history to ``-inf``."""
    if not histories:
        return
    rows = np.repeat(np.arange(len(histories)), [h.size for h in histories])
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    scores[rows, cols] = -np.inf


def target_ranks(scores: FloatArray, targets: IntArray) -> IntArray:
    """0-based rank of each row's target; ties count against it; a ``-inf`` target gets :data:`MISS`.

    >>> s = np.array([[0.1, 0.5, 0.5], [0.9, -np.inf, 0.2]], dtype=np.float32)
    >>> target_ranks(s, np.array([1, 1])).tolist() == [1, MISS]
    True
    """
    rows = np.arange(scores.shape[0])
    target_scores = scores[rows, targets][:, None]
    ranks: IntArray = np.asarray((scores >= target_scores).sum(axis=1), dtype=np.int64) - 1
    masked = ~np.isfinite(target_scores[:, 0]) | np.isnan(target_scores[:, 0])
    ranks[masked] = MISS
    return ranks


def top_k(scores: FloatArray, k: int) -> IntArray:
    """Indices of the ``k`` highest scores per row, best first (torch.topk when torch is installed).

    >>> top_k(np.array([[0.1, 0.9, 0.5]], dtype=np.float32), k=2).tolist()
    [[1, 2]]
    """
    _check_k(k)
    k = min(k, scores.shape[1])
    try:  # an order of magnitude faster than argpartition over 40k columns
        import torch
    except ImportError:  # pragma: no cover - torch is in the ml extra
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1).astype(np.int64)
    _, idx = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)).topk(k, dim=1)
    return np.asarray(idx.numpy(), dtype=np.int64)


def metric_table(ranks: IntArray, ks: Sequence[int], *, sessions: bool = False) -> dict[str, float]:
    """``hr@k``, ``ndcg@k``, ``mrr@k`` for every k (plus ``p@k`` for sessions), as plain floats.

    >>> metric_table(np.array([0, 2]), ks=[1])
    {'hr@1': 0.5, 'ndcg@1': 0.5, 'mrr@1': 0.5}
    """
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(ranks, k)
        out[f"ndcg@{k}"] = ndcg(ranks, k)
        out[f"mrr@{k}"] = mrr(ranks, k)
        if sessions:
            out[f"p@{k}"] = precision(ranks, k)
    return out
