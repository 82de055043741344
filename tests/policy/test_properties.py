"""Property tests: whatever the catalog, context and policy, no hard rule is ever broken."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.policy import apply_policy, eligibility_mask, parse_policy

from .strategies import Scenario, check_invariants, scenarios, violates_hard

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios())
def test_apply_policy_invariants(s: Scenario) -> None:
    snapshot = CatalogSnapshot.from_items(s.items)
    policy = parse_policy(s.policy, known_items=snapshot.index)
    result = apply_policy(s.context, s.ranked, snapshot, policy, k=s.k)
    check_invariants(s, snapshot, policy, result)
    again = apply_policy(s.context, s.ranked, snapshot, policy, k=s.k)
    assert again == result  # deterministic


@SETTINGS
@given(scenarios())
def test_eligibility_mask_matches_plain_oracle(s: Scenario) -> None:
    snapshot = CatalogSnapshot.from_items(s.items)
    policy = parse_policy(s.policy)
    mask = eligibility_mask(snapshot, s.context, policy)
    by_id = {it.item_id: it for it in s.items}
    expected = [violates_hard(it, s.context, policy, by_id) is None for it in s.items]
    assert mask.tolist() == expected
