"""Candidate sources over a :class:`~shopkeep.catalog.snapshot.CatalogSnapshot`.

* :class:`SequentialSource` (``sequential``): a fitted sequential model scores the next item after
  the context's recent items;
* :class:`CovisitSource` (``covisit``): item-to-item co-visitation anchored on the pdp item, the cart
  and the last recent items;
* :class:`PopularSource` (``popular``): time-decayed trending counts with an all-time fallback; it
  returns every eligible item up to ``k``, so it is also the cold-start and backfill source.

The affinity source (the context's strongest affinity keys) is :mod:`shopkeep.retrieval.affinity`.

Each is immutable after ``fit``/construction except :meth:`PopularSource.add`; :meth:`with_snapshot`
returns a copy bound to a newer catalog snapshot (live catalog updates). Sources whose signal is the
shopper's own behaviour return nothing when ``context.personalize`` is False.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.models.base import Interactions, check_fitted
from shopkeep.models.itemknn import cooccurrence
from shopkeep.retrieval.base import Candidate, Mask
from shopkeep.retrieval.binding import (
    FloatArray,
    Hit,
    IntArray,
    ModelBinding,
    anchors,
    check_masks,
    no_hit,
    scatter,
    to_candidate_lists,
    top_k,
)
from shopkeep.types import Event

__all__ = ["CovisitSource", "PopularSource", "SequentialSource"]

#: Default weight of each event type in popularity counts.
EVENT_WEIGHTS: Mapping[str, float] = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


class SequentialSource:
    """Next-item scores of a fitted :class:`~shopkeep.models.base.SequentialRecommender` (SASRec, itemknn, ...).

    Uses the last ``max_history`` recent items the model knows; a context without any returns no
    candidates. ``exclude_history`` drops the recent items themselves.
    """

    def __init__(
        self,
        binding: ModelBinding,
        snapshot: CatalogSnapshot,
        *,
        name: str = "sequential",
        max_history: int = 50,
        exclude_history: bool = False,
    ) -> None:
        if max_history <= 0:
            raise ValidationError("max_history", max_history, "must be > 0")
        self.name = name
        self.binding = binding
        self.snapshot = snapshot
        self.max_history = max_history
        self.exclude_history = exclude_history
        self._to_snap = binding.to_snapshot(snapshot)

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same source over ``snapshot``."""
        return type(self)(self.binding, snapshot, name=self.name, max_history=self.max_history,
                          exclude_history=self.exclude_history)

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible next items by model score."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = [no_hit() for _ in contexts]
        rows, histories = [], []
        for r, ctx in enumerate(contexts):
            hist = self.binding.history(ctx.recent_items)[-self.max_history :] if ctx.personalize else None
            if hist is not None and hist.size:
                rows.append(r)
                histories.append(hist)
        if not rows:
            return out
        scores = scatter(self.binding.model.score(histories), self._to_snap, self.snapshot.n)
        for j, r in enumerate(rows):
            mask = masks[r]
            if self.exclude_history:
                mask = mask.copy()
                seen = self.snapshot.indices(contexts[r].recent_items)
                mask[seen[seen >= 0]] = False
            out[r] = top_k(scores[j], mask, k)
        return out


class CovisitSource:
    """Item-to-item co-visitation: ``score(j) = sum_a w_a * sim[a, j]`` over anchor items ``a``.

    Anchors (see :func:`~shopkeep.retrieval.binding.anchors`): the pdp item and cart items weigh 1,
    the last ``n_recent`` recent items ``decay**(t+1)``. Anchors are never returned; only items with a
    positive co-visitation score are. Build with :meth:`from_itemknn` (reuse a fitted itemknn's
    similarity) or :meth:`from_sequences` (own counts).
    """

    def __init__(
        self,
        similarity: sp.csr_matrix,
        item_ids: Sequence[str],
        snapshot: CatalogSnapshot,
        *,
        name: str = "covisit",
        n_recent: int = 3,
        decay: float = 0.5,
    ) -> None:
        sim = sp.csr_matrix(similarity, dtype=np.float64)
        if sim.shape != (len(item_ids), len(item_ids)):
            raise ValidationError("similarity", sim.shape, f"must be square over the {len(item_ids)} item ids")
        self.name = name
        self.similarity = sim
        self.binding = ModelBinding(None, tuple(item_ids))
        self.snapshot = snapshot
        self.n_recent = n_recent
        self.decay = decay
        self._to_snap = self.binding.to_snapshot(snapshot)

    @classmethod
    def from_itemknn(cls, binding: ModelBinding, snapshot: CatalogSnapshot, **kwargs: Any) -> CovisitSource:
        """Reuse the similarity matrix of a fitted :class:`~shopkeep.models.itemknn.ItemKNNRecommender`."""
        check_fitted(binding.model, "sim_")
        return cls(binding.model.sim_, binding.item_ids, snapshot, **kwargs)

    @classmethod
    def from_sequences(
        cls,
        sequences: Iterable[Sequence[str]],
        snapshot: CatalogSnapshot,
        *,
        window: int = 3,
        alpha: float = 0.5,
        **kwargs: Any,
    ) -> CovisitSource:
        """Count co-visits within ``window`` positions of each item-id sequence (symmetric, cosine-normalized)."""
        vocab: dict[str, int] = {}
        seqs = [np.array([vocab.setdefault(i, len(vocab)) for i in s], dtype=np.int64) for s in sequences]
        if not vocab:
            raise ValidationError("sequences", 0, "need at least one item to count co-visits")
        counts = cooccurrence(Interactions(tuple(seqs), len(vocab)), window, 1.0, 1.0)
        pop = np.maximum(np.bincount(np.concatenate(seqs), minlength=len(vocab)).astype(np.float64), 1.0)
        sim = sp.diags(pop ** -(1.0 - alpha)) @ counts @ sp.diags(pop**-alpha)
        return cls(sp.csr_matrix(sim), list(vocab), snapshot, **kwargs)

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same source over ``snapshot``."""
        return type(self)(self.similarity, self.binding.item_ids, snapshot, name=self.name,
                          n_recent=self.n_recent, decay=self.decay)

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible items co-visited with its anchors."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = []
        for ctx, mask in zip(contexts, masks, strict=True):
            weights = anchors(ctx, self.n_recent, self.decay)
            idx = self.binding.indices(list(weights))
            known = idx >= 0
            if not known.any():
                out.append(no_hit())
                continue
            w = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))[known]
            row = np.asarray(self.similarity[idx[known]].T @ w, dtype=np.float64).ravel()
            scores = scatter(np.where(row > 0, row, -np.inf), self._to_snap, self.snapshot.n)
            m = mask.copy()
            own = self.snapshot.indices(list(weights))
            m[own[own >= 0]] = False
            out.append(top_k(scores, m, k))
        return out


class PopularSource:
    """Trending items: event counts decayed with half-life ``half_life_hours``, plus ``global_weight``
    times the all-time share as the fallback; ties go to the lower snapshot index.

    Every eligible item gets a score, so ``retrieve`` returns ``min(k, eligible)`` items: this is the
    cold-start and backfill source. :meth:`fit` starts from events; :meth:`add` folds in new ones.

    ``rescore_s``: how long a computed score vector keeps serving after :meth:`add` changed the counts
    (0, the default: every request after an event sees it). Rescoring is a few passes over the whole
    catalog (0.64 ms at 100k items), so where events outnumber requests a serving engine would pay it on
    every request; the engine serves counts at most ``rescore_s`` = 1 s old, as the shared popularity
    of several workers is (:class:`~shopkeep.pipeline.stages.SharedPopularSource`).

    >>> from datetime import UTC, datetime
    >>> from shopkeep.features.context import ContextRequest
    >>> from shopkeep.types import EventType, Item
    >>> snap = CatalogSnapshot.from_items([Item("a", "A"), Item("b", "B"), Item("c", "C")])
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> events = [Event("e1", EventType.VIEW, t, item_id="b"), Event("e2", EventType.PURCHASE, t, item_id="c")]
    >>> src = PopularSource(snap).fit(events)
    >>> [c.item_id for c in src.retrieve([Context(ContextRequest(), now_ms=0)], [np.ones(3, bool)], k=3)[0]]
    ['c', 'b', 'a']
    """

    def __init__(
        self,
        snapshot: CatalogSnapshot,
        *,
        name: str = "popular",
        half_life_hours: float = 72.0,
        global_weight: float = 0.05,
        event_weights: Mapping[str, float] | None = None,
        rescore_s: float = 0.0,
    ) -> None:
        if not half_life_hours > 0:
            raise ValidationError("half_life_hours", half_life_hours, "must be > 0")
        if global_weight < 0:
            raise ValidationError("global_weight", global_weight, "must be >= 0")
        if not rescore_s >= 0:
            raise ValidationError("rescore_s", rescore_s, "must be >= 0 seconds")
        self.rescore_s = rescore_s
        self.name = name
        self.snapshot = snapshot
        self.half_life_hours = half_life_hours
        self.global_weight = global_weight
        self.event_weights = dict(EVENT_WEIGHTS if event_weights is None else event_weights)
        self.trend_: dict[str, float] = {}
        self.total_: dict[str, float] = {}
        self.ref_ms_: int | None = None
        self._scores: FloatArray | None = None
        # the count version (_changes) and monotonic time the cached scores were computed at
        self._scored: tuple[int, float] = (-1, -math.inf)
        # the best items of the current scores, in top_k order, and whether that is every scored item
        self._top: tuple[FloatArray, IntArray, bool] | None = None
        #: How many best items are kept sorted per score version (a request filters them by its mask).
        self.prefix_min = 2048
        # dense copies of trend_/total_ over snapshot indices, kept in step by add() (the tables they
        # were built from are remembered: assigning new tables rebuilds them)
        self._dense: tuple[FloatArray, FloatArray] | None = None
        self._dense_of: tuple[object, object] | None = None
        self._changes = 0

    def fit(self, events: Iterable[Event]) -> Self:
        """Reset and count ``events`` (any order)."""
        self.trend_, self.total_, self.ref_ms_ = {}, {}, None
        return self.add(events)

    def add(self, events: Iterable[Event]) -> Self:
        """Fold in more events (the write path); scores are recomputed on the next ``retrieve``
        (vector operations over dense counts updated here, item by item)."""
        tau_ms = self.half_life_hours * 3_600_000.0 / math.log(2.0)
        dense = self._arrays() if self._dense is not None else None
        index = self.snapshot.index
        for e in events:
            w = self.event_weights.get(str(e.type), 0.0)
            if e.item_id is None or w <= 0:
                continue
            t = int(e.timestamp.timestamp() * 1000)
            if self.ref_ms_ is None:
                self.ref_ms_ = t
            if t - self.ref_ms_ > 30 * tau_ms:  # rebase so that exp() stays finite
                shrink = math.exp(-(t - self.ref_ms_) / tau_ms)
                self.trend_ = {i: v * shrink for i, v in self.trend_.items() if v * shrink > 1e-12}
                self.ref_ms_ = t
                if dense is not None:
                    dense[0][:] = dense[0] * shrink
                    dense[0][dense[0] <= 1e-12] = 0.0
                    self._dense_of = (self.trend_, self.total_)
            trend = self.trend_[e.item_id] = self.trend_.get(e.item_id, 0.0) + w * math.exp((t - self.ref_ms_) / tau_ms)
            total = self.total_[e.item_id] = self.total_.get(e.item_id, 0.0) + w
            i = index.get(e.item_id)
            if dense is not None and i is not None:
                dense[0][i], dense[1][i] = trend, total
        self._changes += 1  # scores() sees the new version (and rescores unless within rescore_s)
        return self

    def _arrays(self) -> tuple[FloatArray, FloatArray]:
        """Dense (trend, total) over snapshot indices, rebuilt only when the tables were replaced."""
        if self._dense is None or self._dense_of is None or self._dense_of[0] is not self.trend_ \
                or self._dense_of[1] is not self.total_:
            n = self.snapshot.n
            trend, total = np.zeros(n), np.zeros(n)
            for table, arr in ((self.trend_, trend), (self.total_, total)):
                if table:
                    idx = self.snapshot.indices(list(table))
                    vals = np.fromiter(table.values(), dtype=np.float64, count=len(table))
                    arr[idx[idx >= 0]] = vals[idx >= 0]
            self._dense, self._dense_of = (trend, total), (self.trend_, self.total_)
        return self._dense

    def scores(self) -> FloatArray:
        """Score per snapshot index: trend share + ``global_weight`` x all-time share (0 when unseen), as of
        the latest counts, or of counts at most ``rescore_s`` seconds older."""
        found = self._scores
        version, at = self._scored
        now = time.monotonic()
        if found is not None and (version == self._changes or now - at < self.rescore_s):
            return found
        changes = self._changes  # an add() while computing leaves the version behind: rescored next time
        trend, total = self._arrays()
        found = np.asarray(trend / max(trend.sum(), 1e-300) + self.global_weight * total / max(total.sum(), 1e-300),
                           dtype=np.float64)
        self._scores, self._scored = found, (changes, now)
        return found

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same counts over ``snapshot``."""
        out = type(self)(snapshot, name=self.name, half_life_hours=self.half_life_hours,
                         global_weight=self.global_weight, event_weights=self.event_weights, rescore_s=self.rescore_s)
        out.trend_, out.total_, out.ref_ms_ = dict(self.trend_), dict(self.total_), self.ref_ms_
        return out

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, the ``k`` most popular eligible items."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        scores = self.scores()
        top = self._top
        if top is None or top[0] is not scores or (len(top[1]) < 4 * k and not top[2]):
            want = min(self.snapshot.n, max(self.prefix_min, 8 * k))
            best = top_k(scores, np.ones(self.snapshot.n, dtype=np.bool_), want)[0]
            top = self._top = (scores, best, len(best) < want or want == self.snapshot.n)
        out: list[Hit] = []
        for m in masks:
            # the first k eligible of the best items are the k best eligible, unless too few are eligible
            idx = top[1][m[top[1]]][:k]
            out.append((idx, scores[idx]) if len(idx) == k or top[2] else top_k(scores, m, k))
        return out
