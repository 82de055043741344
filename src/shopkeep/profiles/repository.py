"""Profiles in a :class:`~shopkeep.storage.base.DocumentStore` (collection ``profiles``).

``anonymous_ids`` of a returned profile come from the :class:`IdentityGraph`; they are not stored in
the profile document, so the two can never disagree.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.profiles.identity import IdentityGraph
from shopkeep.profiles.model import Consent, Profile, parse_preferences, parse_profile, profile_to_dict
from shopkeep.storage.base import Document, DocumentStore
from shopkeep.types import Money, parse_timestamp, to_epoch_ms, utc_now

__all__ = ["COLLECTION", "ProfileRepository"]

COLLECTION = "profiles"


def _check_ids(user_ids: Sequence[str]) -> list[str]:
    if isinstance(user_ids, str):
        raise ValidationError("user_ids", user_ids, "must be a sequence of ids, not a string")
    for i, user in enumerate(user_ids):
        if not isinstance(user, str) or not user:
            raise ValidationError(f"user_ids[{i}]", user, "must be a non-empty string")
    return list(dict.fromkeys(user_ids))


class ProfileRepository:
    """Read and write shopper profiles; identity links go through ``self.identity``."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.identity = IdentityGraph(store)

    def upsert_many(self, profiles: Sequence[Profile]) -> tuple[Profile, ...]:
        """Insert or replace profiles in one atomic write; returns them as stored.

        A missing ``created_at`` keeps the stored one (or is set to now for a new profile). Any
        ``anonymous_ids`` given are linked to the user in the identity graph (at the current time).
        """
        seen: set[str] = set()
        for i, profile in enumerate(profiles):
            if not isinstance(profile, Profile):
                raise ValidationError(f"profiles[{i}]", profile, "must be a Profile")
            parse_profile(profile_to_dict(profile))  # a Profile built by hand is checked like wire input
            if profile.user_id in seen:
                raise ValidationError(f"profiles[{i}].user_id", profile.user_id, "appears twice in one batch")
            seen.add(profile.user_id)
        existing = self.store.get_many(COLLECTION, list(seen)) if seen else {}
        now = utc_now()
        stored: list[Profile] = []
        docs: dict[str, Document] = {}
        for profile in profiles:
            created = profile.created_at
            if created is None:
                old = existing.get(profile.user_id, {}).get("created_at")
                created = parse_timestamp(old, field="created_at") if old else now
            final = dataclasses.replace(profile, created_at=created)
            doc = profile_to_dict(final)
            doc.pop("anonymous_ids", None)
            docs[profile.user_id] = doc
            stored.append(final)
        if docs:
            self.store.put_many(COLLECTION, docs)
        ms = to_epoch_ms(now)
        links = [(a, p.user_id, ms) for p in stored for a in p.anonymous_ids]
        if links:
            self.identity.link_many(links)
        return tuple(self.get_many([p.user_id for p in stored]).values())

    def upsert(self, profile: Profile) -> Profile:
        """Insert or replace one profile (a batch of one)."""
        return self.upsert_many([profile])[0]

    def get_many(self, user_ids: Sequence[str]) -> dict[str, Profile]:
        """The profiles that exist among ``user_ids``, in the order asked."""
        ids = _check_ids(user_ids)
        docs = self.store.get_many(COLLECTION, ids) if ids else {}
        anon = self.identity.anonymous_ids_many([u for u in ids if u in docs]) if docs else {}
        return {u: parse_profile({**docs[u], "anonymous_ids": list(anon[u])}) for u in ids if u in docs}

    def get(self, user_id: str) -> Profile:
        """One profile; raises :class:`NotFoundError` if there is none."""
        found = self.get_many([user_id])
        if user_id not in found:
            raise NotFoundError(f"no profile for user {user_id!r}", {"user_id": user_id})
        return found[user_id]

    def _write(self, profile: Profile) -> Profile:
        doc = profile_to_dict(profile)
        doc.pop("anonymous_ids", None)
        self.store.put_many(COLLECTION, {profile.user_id: copy.deepcopy(doc)})
        return profile

    def set_consent(
        self,
        user_id: str,
        *,
        personalization: bool | None = None,
        marketing: bool | None = None,
        at: datetime | None = None,
    ) -> Profile:
        """Change consent flags (``None`` leaves a flag as is); records when. NotFoundError if no profile."""
        for name, value in (("personalization", personalization), ("marketing", marketing)):
            if value is not None and not isinstance(value, bool):
                raise ValidationError(f"consent.{name}", value, "must be true or false")
        profile = self.get(user_id)
        old = profile.consent
        consent = Consent(
            personalization=old.personalization if personalization is None else personalization,
            marketing=old.marketing if marketing is None else marketing,
            updated_at=at or utc_now(),
        )
        parse_profile({"user_id": user_id, "consent": {"updated_at": consent.updated_at}})
        return self._write(dataclasses.replace(profile, consent=consent))

    def set_preferences(
        self,
        user_id: str,
        preferences: Mapping[str, Sequence[str]] | None = None,
        *,
        avoid: Mapping[str, Sequence[str]] | None = None,
        budget_max: Money | None = None,
        clear_budget: bool = False,
    ) -> Profile:
        """Merge stated preferences: each key given replaces that key; an empty list removes it.

        ``budget_max`` sets the budget, ``clear_budget=True`` removes it. NotFoundError if no profile.
        """
        prefs = parse_preferences(preferences)
        avoids = parse_preferences(avoid, field_name="avoid")
        if budget_max is not None:
            budget_max = Money.parse(budget_max, field="budget_max")
        profile = self.get(user_id)
        merged = {**profile.preferences, **prefs}
        merged_avoid = {**profile.avoid, **avoids}
        for key, values in (preferences or {}).items():
            if not values:
                merged.pop(key, None)
        for key, values in (avoid or {}).items():
            if not values:
                merged_avoid.pop(key, None)
        budget = None if clear_budget else (budget_max or profile.budget_max)
        return self._write(dataclasses.replace(profile, preferences=merged, avoid=merged_avoid, budget_max=budget))
