"""``apply_policy`` over a ranked list held as arrays (the Engine's path) gives exactly the result of
the same list as objects: same slate, reasons, display prices, trace and pacing increments."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.policy import apply_policy, parse_policy
from shopkeep.policy.apply import _as_arrays
from shopkeep.ranking import RankedArrays, ScoredItem
from shopkeep.retrieval import FusedArrays, FusedCandidate

from .strategies import Scenario, check_invariants, scenarios


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_arrays_path_equals_object_path(s: Scenario) -> None:
    snapshot = CatalogSnapshot.from_items(s.items)
    policy = parse_policy(s.policy, known_items=snapshot.index)
    seen: set[str] = set()
    ranked = []  # the arrays path holds unique catalog items (fused lists always are)
    for r in s.ranked:
        if r.item_id in snapshot.index and r.item_id not in seen:
            seen.add(r.item_id)
            ranked.append(r)
    fused = FusedArrays.from_candidates([FusedCandidate(r.item_id, r.score, r.sources) for r in ranked], snapshot)
    m = len(fused)
    arrays = RankedArrays(fused, np.arange(m, dtype=np.int64), fused.scores.copy(), np.zeros(m), np.zeros(m),
                          np.zeros(m), np.zeros(m))
    objects = [ScoredItem(r.item_id, r.score, dict(r.sources)) for r in ranked]
    assert [x.item_id for x in arrays] == [x.item_id for x in objects]
    assert _as_arrays(arrays, snapshot) is arrays  # the array path is the one taken
    by_objects = apply_policy(s.context, objects, snapshot, policy, k=s.k)
    by_arrays = apply_policy(s.context, arrays, snapshot, policy, k=s.k)
    assert by_arrays == by_objects
    check_invariants(s, snapshot, policy, by_arrays)
