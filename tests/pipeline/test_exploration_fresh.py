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
