"""Profiles: validation, upsert/get, consent and preference updates, identity-backed anonymous ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.profiles import Consent, Profile, ProfileRepository, parse_profile, profile_to_dict
from shopkeep.storage import Store
from shopkeep.types import Money


@pytest.mark.parametrize(
    ("raw", "field"),
    [({}, "user_id"), ({"user_id": 3}, "user_id"), ({"user_id": "u", "region": "Narnia"}, "region"),
     ({"user_id": "u", "consent": {"marketing": "yes"}}, "consent.marketing"),
     ({"user_id": "u", "preferences": {"Skin Type": ["dry"]}}, "preferences.<key>"),
     ({"user_id": "u", "preferences": {"skin_type": [1]}}, "preferences.skin_type"),
     ({"user_id": "u", "budget_max": {"amount": 10.5, "currency": "USD"}}, "budget_max.amount"),
     ({"user_id": "u", "created_at": "2026-01-01T00:00:00"}, "created_at"),
     ({"user_id": "u", "nickname": "x"}, "nickname")],
)
def test_bad_profiles_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_profile(raw)
    assert exc.value.field == field


def test_profile_round_trip() -> None:
    p = Profile("u1", ("a1",), Consent(False, True, datetime(2026, 1, 1, tzinfo=UTC)), True, "gold", "US-CA",
                True, {"skin_type": ("sensitive",)}, {"ingredients": ("fragrance",)}, Money(5000, "USD"),
                datetime(2025, 5, 1, tzinfo=UTC))
    assert parse_profile(profile_to_dict(p)) == p


def test_repository_upsert_get_consent_preferences(store: Store) -> None:
    repo = ProfileRepository(store)
    stored = repo.upsert(Profile("u1", anonymous_ids=("dev-1",), region="us", loyalty_member=True))
    assert stored.anonymous_ids == ("dev-1",) and stored.region == "US" and stored.created_at is not None
    assert repo.identity.user_of(["dev-1"]) == {"dev-1": "u1"}
    again = repo.upsert(Profile("u1", loyalty_tier="gold"))
    assert again.created_at == stored.created_at and again.anonymous_ids == ("dev-1",)
    repo.identity.link_many([("dev-2", "u1", 1)])
    assert repo.get("u1").anonymous_ids == ("dev-1", "dev-2")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    consent = repo.set_consent("u1", marketing=True, at=at).consent
    assert consent == Consent(personalization=True, marketing=True, updated_at=at)
    assert repo.set_consent("u1", personalization=False).consent.marketing is True
    prefs = repo.set_preferences("u1", {"skin_type": ["Sensitive", "dry"]}, budget_max=Money(4000, "USD"))
    assert prefs.preferences == {"skin_type": ("sensitive", "dry")} and prefs.budget_max == Money(4000, "USD")
    prefs = repo.set_preferences("u1", {"skin_type": [], "finish": "matte"}, avoid={"ingredients": ["alcohol"]})
    assert prefs.preferences == {"finish": ("matte",)} and prefs.avoid == {"ingredients": ("alcohol",)}
    assert repo.set_preferences("u1", clear_budget=True).budget_max is None
    assert repo.get("u1") == repo.get_many(["u1", "ghost"])["u1"]
    with pytest.raises(NotFoundError):
        repo.get("ghost")
    with pytest.raises(NotFoundError):
        repo.set_consent("ghost", marketing=True)
    with pytest.raises(ValidationError):
        repo.set_consent("u1", marketing="yes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as exc:
        repo.upsert_many([Profile("u2"), Profile("u2")])
    assert exc.value.field == "profiles[1].user_id" and repo.get_many(["u2"]) == {}
