"""A stochastic slate logging policy for exploration, with exact per-position propensities.

For each request the policy builds a *pool*: the top ``pool_size`` of the ranked list plus the
request's eligible new items. With probability ``1 - eps`` it serves the ranked top ``k``; with
probability ``eps`` a uniformly random ordered choice of ``k`` pool items. So the probability that
pool item ``i`` is shown at position ``j`` is exactly::

    P(i at j) = (1 - eps) * [ranked[j] == i] + eps / len(pool)

which lies strictly in ``(0, 1)`` whenever ``0 < eps < 1`` and the pool has two or more items. Items
outside the pool are never shown (propensity 0): a target policy evaluated off-line must rank within
the same pool (its support).

**New-item exposure.** New items take, in expectation, ``eps * n_new / len(pool)`` of the random
branch's slots. ``new_item_share`` raises ``eps`` for a request just enough that new items get at
least that share of the slots (``eps = max(epsilon, new_item_share * len(pool) / n_new)``), capped at
``max_epsilon``; when even ``max_epsilon`` cannot buy the share, the ranked part of the pool shrinks
(down to the top ``k``) until it can, or stays at ``k`` with ``max_epsilon`` (the share is then not
reached). :func:`new_item_exposure` measures the share actually served.

Randomness: each request draws from ``request_rng(seed, request_id)``, so a replayed request gets
the same slate.

>>> policy = SlatePolicy(epsilon=0.2, pool_size=4, seed=1)
>>> s = policy.sample([["a", "b", "c", "d", "e"]], k=2, request_ids=["r1"])[0]
>>> s == policy.sample([["a", "b", "c", "d", "e"]], k=2, request_ids=["r1"])[0]
True
>>> round(policy.propensity(["a", "b", "c", "d", "e"], 2, "a", 0), 6)
0.85
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError
from shopkeep.explore.seeding import request_rng

__all__ = ["ExplorationSlate", "SlatePolicy", "new_item_exposure"]


@dataclass(frozen=True)
class ExplorationSlate:
    """A served slate: ``propensities[j]`` = P(``items[j]`` at position ``j``); ``epsilon`` as applied."""

    items: tuple[str, ...]
    propensities: tuple[float, ...]
    explored: bool
    epsilon: float
    n_pool: int


class SlatePolicy:
    """Epsilon-mixing of the ranked slate with a uniformly random slate from a pool (see module doc)."""

    def __init__(self, epsilon: float = 0.1, *, pool_size: int | None = None, new_item_share: float = 0.0,
                 max_epsilon: float = 0.5, seed: int = 0) -> None:
        self.epsilon = epsilon
        self.pool_size = pool_size
        self.new_item_share = new_item_share
        self.max_epsilon = max_epsilon
        self.seed = seed
        self._check_params()

    def _check_params(self) -> None:
        if not 0.0 < self.epsilon < 1.0:
            raise ValidationError("epsilon", self.epsilon, "must be within (0, 1) so propensities lie in (0, 1)")
        if not self.epsilon <= self.max_epsilon < 1.0:
            raise ValidationError("max_epsilon", self.max_epsilon, "must be within [epsilon, 1)")
        if not 0.0 <= self.new_item_share < 1.0:
            raise ValidationError("new_item_share", self.new_item_share, "must be within [0, 1)")
        if self.pool_size is not None and (isinstance(self.pool_size, bool) or self.pool_size < 2):
            raise ValidationError("pool_size", self.pool_size, "must be an integer >= 2 (or None = 3k)")

    def pool(self, ranked: Sequence[str], k: int, new_items: Collection[str] = (),
             head: int | None = None) -> tuple[str, ...]:
        """The ranked top ``head`` (default ``pool_size``, itself default ``3k``) then the new items not in it."""
        size = head if head is not None else (self.pool_size if self.pool_size is not None else 3 * k)
        top = list(dict.fromkeys(ranked))[: max(size, k)]
        seen = set(top)
        return tuple(top + [i for i in dict.fromkeys(new_items) if i not in seen])

    def effective_epsilon(self, n_pool: int, n_new: int) -> float:
        """``eps`` for a request whose pool has ``n_new`` new items out of ``n_pool`` (capped at ``max_epsilon``)."""
        if n_new <= 0 or self.new_item_share <= 0:
            return self.epsilon
        return float(min(self.max_epsilon, max(self.epsilon, self.new_item_share * n_pool / n_new)))

    def _check_request(self, ranked: Sequence[str], k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValidationError("k", k, "must be an integer >= 1")
        if len(set(ranked)) < k:
            raise ValidationError("ranked", len(set(ranked)), f"needs at least k={k} distinct items")

    def _plan(self, ranked: Sequence[str], k: int, new_items: Collection[str]) -> tuple[tuple[str, ...], float]:
        """Pool and eps: raise eps first; if ``max_epsilon`` cannot buy the new-item share, shrink the pool."""
        self._check_request(ranked, k)
        fresh = set(new_items)
        size = self.pool_size if self.pool_size is not None else 3 * k
        for head in range(max(size, k), k - 1, -1):
            pool = self.pool(ranked, k, new_items, head)
            n_new = sum(1 for i in pool if i in fresh)
            eps = self.effective_epsilon(len(pool), n_new)
            if n_new == 0 or eps * n_new >= self.new_item_share * len(pool) - 1e-12:
                break
        return pool, eps

    def marginals(self, ranked: Sequence[str], k: int,
                  new_items: Collection[str] = ()) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
        """``(pool, P)`` with ``P[i, j]`` = P(pool item ``i`` at position ``j``); columns sum to 1."""
        pool, eps = self._plan(ranked, k, new_items)
        p = np.full((len(pool), k), eps / len(pool))
        p[np.arange(k), np.arange(k)] += 1.0 - eps  # the ranked top k are the pool's first k rows
        return pool, p

    def propensity(self, ranked: Sequence[str], k: int, item: str, position: int,
                   new_items: Collection[str] = ()) -> float:
        """P(``item`` shown at ``position``) for this request (0.0 outside the pool)."""
        pool, p = self.marginals(ranked, k, new_items)
        if not 0 <= position < k:
            raise ValidationError("position", position, f"must be within [0, {k})")
        return float(p[pool.index(item), position]) if item in pool else 0.0

    def sample(self, ranked: Sequence[Sequence[str]], k: int, *, request_ids: Sequence[str],
               new_items: Sequence[Collection[str]] | None = None) -> list[ExplorationSlate]:
        """One slate per request (batch-first); ``new_items[i]`` are request ``i``'s eligible new items."""
        if len(request_ids) != len(ranked):
            raise ValidationError("request_ids", len(request_ids), f"must have one id per ranked list ({len(ranked)})")
        if new_items is not None and len(new_items) != len(ranked):
            raise ValidationError("new_items", len(new_items), f"must have one collection per request ({len(ranked)})")
        out = []
        for i, (lst, rid) in enumerate(zip(ranked, request_ids, strict=True)):
            pool, p = self.marginals(lst, k, new_items[i] if new_items is not None else ())
            eps = self._plan(lst, k, new_items[i] if new_items is not None else ())[1]
            rng = request_rng(self.seed, rid)
            explored = bool(rng.random() < eps)
            rows = rng.permutation(len(pool))[:k] if explored else np.arange(k)
            out.append(ExplorationSlate(tuple(pool[r] for r in rows),
                                        tuple(float(p[r, j]) for j, r in enumerate(rows)), explored, eps, len(pool)))
        return out


def new_item_exposure(slates: Sequence[ExplorationSlate], new_items: Collection[str]) -> float:
    """Share of all served slots that showed a new item."""
    slots = sum(len(s.items) for s in slates)
    shown = sum(1 for s in slates for item in s.items if item in new_items)
    return shown / slots if slots else 0.0
