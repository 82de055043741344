"""The new-item lookup of the slate explorer: a binary search over the cached age order, equal to the scan."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from shopkeep.config import ExploreConfig
from shopkeep.pipeline.exploration import SlateExplorer

DAY_MS = 86_400_000


def test_fresh_items_match_the_plain_age_condition_newest_first() -> None:
    rng = np.random.default_rng(3)
    created = rng.integers(0, 60 * DAY_MS, size=2_000).astype(np.int64)
    created[rng.random(2_000) < 0.2] = -1  # unknown creation time: never new
    snapshot = SimpleNamespace(created_ms=created)
    explorer = SlateExplorer(ExploreConfig(new_item_days=14.0))
    for now in (0, 10 * DAY_MS, 30 * DAY_MS + 123, 61 * DAY_MS, 90 * DAY_MS):
        got = explorer._fresh(snapshot, now)  # type: ignore[arg-type]
        expected = np.flatnonzero((created >= 0) & (now - created < 14 * DAY_MS))
        assert sorted(got.tolist()) == expected.tolist()
        assert np.all(np.diff(created[got]) <= 0)  # newest first
    boundary = int(created[created >= 0].max())
    assert boundary not in created[explorer._fresh(snapshot, boundary + 14 * DAY_MS)]  # exactly 14 days: not new


def test_fresh_items_with_a_fractional_window_match_the_plain_condition() -> None:
    rng = np.random.default_rng(4)
    created = rng.integers(0, 10 * DAY_MS, size=3_000).astype(np.int64)
    created[:5] = 4 * DAY_MS  # exactly on the boundary for now = 6.5 days
    snapshot = SimpleNamespace(created_ms=created)
    explorer = SlateExplorer(ExploreConfig(new_item_days=2.5))
    for now in (int(6.5 * DAY_MS), 7 * DAY_MS + 1, 9 * DAY_MS - 1):
        got = explorer._fresh(snapshot, now)  # type: ignore[arg-type]
        expected = np.flatnonzero(now - created < 2.5 * DAY_MS)
        assert sorted(got.tolist()) == expected.tolist()


def test_new_items_are_ranked_fresh_items_first_then_the_newest_others() -> None:
    """The explorer's new-item pick equals the plain rule: fresh eligible ranked items in ranked order,
    then fresh eligible items newest first, none taken, no repeats, at most ``max_new_items``."""
    from shopkeep.features.context import Context, ContextRequest
    from shopkeep.ranking import ScoredItem

    rng = np.random.default_rng(5)
    n = 500
    created = rng.integers(0, 40 * DAY_MS, size=n).astype(np.int64)
    ids = [f"i{j:03d}" for j in range(n)]
    snapshot = SimpleNamespace(created_ms=created, item_ids=ids, n=n, index={i: j for j, i in enumerate(ids)},
                               indices=lambda want: np.array([int(w[1:]) for w in want], dtype=np.int64))
    now = 40 * DAY_MS
    for trial in range(30):
        explorer = SlateExplorer(ExploreConfig(new_item_days=14.0, max_new_items=int(rng.integers(1, 6))))
        mask = rng.random(n) < 0.7
        ranked = [ScoredItem(ids[j], 1.0) for j in rng.permutation(n)[:60]]
        taken = {ids[j] for j in rng.integers(0, n, size=20)}
        ctx = Context(ContextRequest(surface="home"), now_ms=now)
        got = explorer._new_items(ctx, snapshot, mask, ranked, taken)  # type: ignore[arg-type]
        fresh = [j for j in np.argsort(-created, kind="stable").tolist() if now - created[j] < 14 * DAY_MS and mask[j]]
        in_ranked = [s.item_id for s in ranked if int(s.item_id[1:]) in set(fresh) and s.item_id not in taken]
        rest = [ids[j] for j in fresh if ids[j] not in taken]
        assert got == list(dict.fromkeys(in_ranked + rest))[: explorer.config.max_new_items], trial
