"""The array path of retrieval (``retrieve_arrays``, :class:`FusedArrays`) gives exactly the list path's
candidates, scores and order; ranking over arrays equals ranking over lists; popularity counts
updated incrementally equal counts fitted at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.ranking import Objective, Ranker
from shopkeep.retrieval import FusedArrays, PopularSource, Retriever, top_k
from shopkeep.retrieval.binding import to_candidate_lists
from shopkeep.retrieval.fusion import ArraySource

from .conftest import World


def _masks(world: World, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.random(world.snapshot.n) < (0.3 if r % 4 == 0 else 0.95) for r in range(n)]


def test_every_source_answers_arrays_equal_to_its_candidates(world: World, make_contexts: Any) -> None:
    contexts = make_contexts(24, 11)
    masks = _masks(world, len(contexts), np.random.default_rng(11))
    for name, source in world.sources.items():
        assert isinstance(source, ArraySource), name
        hits = source.retrieve_arrays(contexts, masks, 40)
        assert to_candidate_lists(world.snapshot, hits, source.name) == source.retrieve(contexts, masks, 40), name
        for (idx, _), mask in zip(hits, masks, strict=True):
            assert mask[idx].all(), name


@pytest.mark.parametrize("k", [1, 7, 60, 250, 1000])
def test_retrieve_arrays_equals_retrieve(world: World, make_contexts: Any, k: int) -> None:
    rng = np.random.default_rng(k)
    sources = list(world.sources.values())
    weights = {s.name: float(rng.choice([0.0, 0.3, 1.0, 2.5])) for s in sources}
    retriever = Retriever(sources, weights, fallback=world.sources["popular"], index=world.snapshot.index,
                          k_source=int(rng.integers(5, 80)) if k > 1 else None)
    contexts = make_contexts(30, k)
    masks = _masks(world, len(contexts), rng)
    slow = retriever.retrieve(contexts, masks, k)
    fast = retriever.retrieve_arrays(contexts, masks, world.snapshot, k)
    assert [f.candidates() for f in fast] == slow
    # the popular backfill fills every list to k or to every eligible item
    assert all(len(f) == min(k, int(m.sum())) for f, m in zip(fast, masks, strict=True))


def test_retrieve_arrays_without_array_sources_converts_the_lists(world: World, make_contexts: Any) -> None:
    class Plain:  # a conforming source without the array capability
        name = "plain"

        def retrieve(self, contexts: Any, masks: Any, k: int) -> Any:
            return world.sources["popular"].retrieve(contexts, masks, k)

    retriever = Retriever([Plain(), world.sources["affinity"]], index=world.snapshot.index)
    contexts = make_contexts(6, 3)
    masks = _masks(world, 6, np.random.default_rng(3))
    fast = retriever.retrieve_arrays(contexts, masks, world.snapshot, 50)
    assert [f.candidates() for f in fast] == retriever.retrieve(contexts, masks, 50)


def test_fused_arrays_is_a_sequence_of_fused_candidates(world: World, make_contexts: Any) -> None:
    retriever = Retriever.for_surface("home", world.sources, index=world.snapshot.index)
    ctx = make_contexts(2, 5)[1]
    fused = retriever.retrieve_arrays([ctx], [np.ones(world.snapshot.n, bool)], world.snapshot, 30)[0]
    listed = fused.candidates()
    assert len(fused) == len(listed) == 30
    assert fused[-1] == listed[-1] and fused[2:5] == listed[2:5]
    with pytest.raises(IndexError):
        fused[30]
    again = FusedArrays.from_candidates(listed, world.snapshot)
    assert again.candidates() == listed
    assert again.names == fused.names


def test_ranking_arrays_equals_ranking_lists(world: World, make_contexts: Any) -> None:
    retriever = Retriever(list(world.sources.values()), fallback=world.sources["popular"], index=world.snapshot.index)
    contexts = make_contexts(15, 8)
    masks = _masks(world, 15, np.random.default_rng(8))
    fast = retriever.retrieve_arrays(contexts, masks, world.snapshot, 120)
    slow = [f.candidates() for f in fast]
    for objective in (Objective(), Objective(relevance=1.0, margin=1.0, conversion=0.5)):
        ranker = Ranker(objective, return_cost_fraction=0.1)
        by_list = ranker.rank_many(contexts, slow, world.snapshot)
        by_arrays = ranker.rank_many(contexts, fast, world.snapshot)
        assert all(isinstance(r, list) for r in by_list)
        assert [list(r) for r in by_arrays] == by_list


def test_popular_counts_added_in_batches_equal_a_single_fit(world: World) -> None:
    events = sorted(world.store.events, key=lambda e: e.timestamp)
    once = PopularSource(world.snapshot, half_life_hours=1.0).fit(events)
    step = PopularSource(world.snapshot, half_life_hours=1.0)
    step.scores()  # the dense counts exist before the first event: add() must keep them in step
    for start in range(0, len(events), 97):
        step.add(events[start:start + 97])
        if start % 3 == 0:
            step.scores()
    assert np.array_equal(step.scores(), once.scores())
    assert step.trend_ == once.trend_ and step.total_ == once.total_
    replaced = PopularSource(world.snapshot, half_life_hours=1.0).fit(events[:10])
    replaced.scores()
    replaced.trend_, replaced.total_ = dict(once.trend_), dict(once.total_)  # assigned tables: rebuilt
    replaced.ref_ms_ = once.ref_ms_
    replaced.add([])
    assert np.array_equal(replaced.scores(), once.scores())


def test_popular_rescore_window_serves_counts_at_most_that_old(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """rescore_s = 0: every call after add() sees the new counts. rescore_s > 0: the scores computed before
    keep serving within the window (no catalog-wide rescoring per request), the new counts after it."""
    import shopkeep.retrieval.sources as sources

    clock = [1000.0]
    monkeypatch.setattr(sources.time, "monotonic", lambda: clock[0])
    events = sorted(world.store.events, key=lambda e: e.timestamp)
    half = len(events) // 2
    fresh = PopularSource(world.snapshot).fit(events[:half])
    windowed = PopularSource(world.snapshot, rescore_s=1.0).fit(events[:half])
    before = windowed.scores()
    assert np.array_equal(before, fresh.scores())
    fresh.add(events[half:])
    windowed.add(events[half:])
    latest = PopularSource(world.snapshot).fit(events).scores()
    assert not np.array_equal(before, latest)
    assert np.array_equal(fresh.scores(), latest)
    clock[0] += 0.5
    assert windowed.scores() is before  # within the window: the scores of the older counts
    clock[0] += 0.6
    assert np.array_equal(windowed.scores(), latest)  # 1.1 s later: rescored
    with pytest.raises(ValidationError, match="rescore_s"):
        PopularSource(world.snapshot, rescore_s=-1.0)


@pytest.mark.parametrize("prefix_min", [1, 8, 40])
def test_popular_best_items_prefix_equals_a_full_top_k(world: World, make_contexts: Any, prefix_min: int) -> None:
    source = PopularSource(world.snapshot).fit(world.store.events)
    source.prefix_min = prefix_min  # a short prefix: selective masks must fall back to the full top-k
    contexts = make_contexts(12, prefix_min)
    rng = np.random.default_rng(prefix_min)
    masks = [rng.random(world.snapshot.n) < share for share in np.linspace(0.01, 1.0, len(contexts))]
    for k in (1, 5, 30, 400):
        got = source.retrieve_arrays(contexts, masks, k)
        for (idx, val), mask in zip(got, masks, strict=True):
            want_idx, want_val = top_k(source.scores(), mask, k)
            assert np.array_equal(idx, want_idx) and np.array_equal(val, want_val)


@pytest.mark.parametrize("kind", ["uniform", "ties", "sparse", "nan"])
def test_top_k_on_long_arrays_equals_a_full_sort(kind: str) -> None:
    """Above the prefilter size, top_k (threshold read off a sample) equals sorting every eligible score:
    same indices, same order (ties to the lower index), with NaN/-inf never chosen."""
    rng = np.random.default_rng(len(kind))
    for trial in range(40):
        n, k = int(rng.integers(8192, 60_000)), int(rng.integers(1, 600))
        if kind == "uniform":
            scores = rng.random(n)
        elif kind == "ties":
            scores = rng.integers(0, 4, n).astype(np.float64)
        elif kind == "sparse":
            scores = np.where(rng.random(n) < 0.995, -np.inf, rng.random(n))
        else:
            scores = np.where(rng.random(n) < 0.2, np.nan, np.round(rng.standard_normal(n), 1))
        mask = rng.random(n) < rng.uniform(0.01, 1.0)
        ok = np.flatnonzero(mask & np.isfinite(scores))
        want = ok[np.lexsort((ok, -scores[ok]))][:k]
        idx, val = top_k(scores, mask, k)
        assert idx.tolist() == want.tolist(), (trial, n, k)
        assert val.tolist() == scores[want].tolist()
