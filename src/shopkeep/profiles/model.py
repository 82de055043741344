"""Shopper profiles: consent, loyalty, region, age verification and stated (zero-party) preferences.

>>> p = parse_profile({"user_id": "u1", "preferences": {"skin_type": ["sensitive"]},
...                    "budget_max": {"amount": 5000, "currency": "USD"}})
>>> p.preferences["skin_type"], p.budget_max.format(), p.consent.personalization, p.consent.marketing
(('sensitive',), '50.00 USD', True, False)
>>> parse_profile(profile_to_dict(p)) == p
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shopkeep.errors import ValidationError
from shopkeep.types import Money, parse_timestamp

__all__ = ["Consent", "Profile", "parse_preferences", "parse_profile", "profile_to_dict"]

MAX_ID_LEN = 256
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
_FIELDS = frozenset({
    "user_id", "anonymous_ids", "consent", "loyalty_member", "loyalty_tier", "region", "age_verified",
    "preferences", "avoid", "budget_max", "created_at",
})


@dataclass(frozen=True, slots=True)
class Consent:
    """What the shopper allows. Personalization is on unless withdrawn; marketing is opt-in."""

    personalization: bool = True
    marketing: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A signed-in shopper.

    ``preferences`` and ``avoid`` are zero-party data: attribute name → the values the shopper
    stated they want (``skin_type=("sensitive",)``) or want to avoid (``ingredients=("fragrance",)``).
    Keys are snake_case attribute names; values are lower-case strings. ``budget_max`` is the most
    the shopper said they want to spend on one item. ``region`` is an ISO 3166 code (``US`` or
    ``US-CA``). ``anonymous_ids`` is read from the identity graph, never stored with the profile.
    """

    user_id: str
    anonymous_ids: tuple[str, ...] = ()
    consent: Consent = field(default_factory=Consent)
    loyalty_member: bool = False
    loyalty_tier: str | None = None
    region: str | None = None
    age_verified: bool = False
    preferences: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    avoid: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    budget_max: Money | None = None
    created_at: datetime | None = None


def _bool(field_name: str, raw: Any, default: bool) -> bool:
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise ValidationError(field_name, raw, "must be true or false")
    return raw


def _opt_str(field_name: str, raw: Any, *, max_len: int = MAX_ID_LEN) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 0 < len(raw) <= max_len:
        raise ValidationError(field_name, raw, f"must be a non-empty string of at most {max_len} characters")
    return raw


def parse_preferences(raw: Any, *, field_name: str = "preferences") -> dict[str, tuple[str, ...]]:
    """Validate ``{attribute: [values]}`` (a single string counts as one value); values are lower-cased."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError(field_name, raw, "must be an object {attribute: [values]}")
    out: dict[str, tuple[str, ...]] = {}
    for key, values in raw.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValidationError(f"{field_name}.<key>", key, "must be a snake_case attribute name")
        seq = (values,) if isinstance(values, str) else values
        if not isinstance(seq, list | tuple) or not all(isinstance(v, str) and v.strip() for v in seq):
            raise ValidationError(f"{field_name}.{key}", values, "must be a list of non-empty strings")
        cleaned = tuple(dict.fromkeys(v.strip().lower() for v in seq))
        if cleaned:
            out[key] = cleaned
    return out


def _consent(raw: Any) -> Consent:
    if raw is None:
        return Consent()
    if isinstance(raw, Consent):
        return raw
    if not isinstance(raw, Mapping):
        raise ValidationError("consent", raw, "must be an object {personalization, marketing}")
    extra = set(raw) - {"personalization", "marketing", "updated_at"}
    if extra:
        raise ValidationError(f"consent.{sorted(extra)[0]}", raw[sorted(extra)[0]], "unknown consent field")
    updated = raw.get("updated_at")
    return Consent(
        personalization=_bool("consent.personalization", raw.get("personalization"), True),
        marketing=_bool("consent.marketing", raw.get("marketing"), False),
        updated_at=None if updated is None else parse_timestamp(updated, field="consent.updated_at"),
    )


def parse_profile(raw: Mapping[str, Any]) -> Profile:
    """Validate the wire form of a profile; every error names the field and the value."""
    if not isinstance(raw, Mapping):
        raise ValidationError("profile", raw, "must be an object")
    for key in raw:
        if key not in _FIELDS:
            raise ValidationError(str(key), raw[key], "unknown profile field")
    user_id = _opt_str("user_id", raw.get("user_id"))
    if user_id is None:
        raise ValidationError("user_id", None, "is required")
    anon = raw.get("anonymous_ids") or ()
    if not isinstance(anon, list | tuple):
        raise ValidationError("anonymous_ids", anon, "must be a list of ids")
    region = _opt_str("region", raw.get("region"), max_len=6)
    if region is not None and not _REGION.match(region.upper()):
        raise ValidationError("region", region, "must be an ISO 3166 code such as US or US-CA")
    budget = raw.get("budget_max")
    created = raw.get("created_at")
    return Profile(
        user_id=user_id,
        anonymous_ids=tuple(sorted({str(_opt_str(f"anonymous_ids[{i}]", a)) for i, a in enumerate(anon)})),
        consent=_consent(raw.get("consent")),
        loyalty_member=_bool("loyalty_member", raw.get("loyalty_member"), False),
        loyalty_tier=_opt_str("loyalty_tier", raw.get("loyalty_tier"), max_len=64),
        region=region.upper() if region else None,
        age_verified=_bool("age_verified", raw.get("age_verified"), False),
        preferences=parse_preferences(raw.get("preferences")),
        avoid=parse_preferences(raw.get("avoid"), field_name="avoid"),
        budget_max=None if budget is None else Money.parse(budget, field="budget_max"),
        created_at=None if created is None else parse_timestamp(created, field="created_at"),
    )


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The wire (and storage) form of a profile; ``parse_profile`` reverses it exactly."""
    consent: dict[str, Any] = {"personalization": profile.consent.personalization,
                               "marketing": profile.consent.marketing}
    if profile.consent.updated_at is not None:
        consent["updated_at"] = _ts(profile.consent.updated_at)
    out: dict[str, Any] = {
        "user_id": profile.user_id,
        "anonymous_ids": list(profile.anonymous_ids),
        "consent": consent,
        "loyalty_member": profile.loyalty_member,
        "loyalty_tier": profile.loyalty_tier,
        "region": profile.region,
        "age_verified": profile.age_verified,
        "preferences": {k: list(v) for k, v in profile.preferences.items()},
        "avoid": {k: list(v) for k, v in profile.avoid.items()},
        "budget_max": profile.budget_max.to_dict() if profile.budget_max else None,
        "created_at": _ts(profile.created_at),
    }
    return {k: v for k, v in out.items() if v is not None}
