"""Settings of the hot session features (:class:`FeatureConfig`), with every default in one place.

Defaults, and why:

* ``half_life_s = 1800`` — session affinities halve every 30 minutes of *event* time (the
  sessionization gap), so a session's early clicks fade as it moves on;
* ``user_half_life_s = 14 days`` — the long-term (user or anonymous-id) affinities;
* ``weights`` — what one event adds to each affinity key of its item (or of its filter value):
  view 1, click 1.5, dwell 0.5, filter 2, wishlist 2, add_to_cart 3, purchase 4,
  remove_from_cart -2; other types (impressions, searches, hovers...) add nothing;
* ``session_dominance = 0.5`` — when both exist, the long-term affinities are scaled so that their
  total mass is at most half of the session's (see :mod:`shopkeep.features.session`);
* ``max_recent = 50`` recent items, ``max_affinities = 64`` keys per session and 128 per shopper;
* ``ttl_s = 7 days`` for session state, ``user_ttl_s = 90 days`` for long-term state;
* ``max_applied = 128`` — ids (digests) of the latest folded events kept per record, so a batch
  re-sent after a crash is not folded twice (a re-sent event older than a full window counts as
  folded: it would have been cut from the window only by 128 later events of the same record);
* ``repurchase_days`` — replenishable categories (matched at any level of an item's category
  path, case-insensitive, deepest match wins) and their typical repurchase interval in days; a
  purchased item outside them is suppressed with its variant group for ``suppress_purchased_days``.

>>> cfg = FeatureConfig()
>>> cfg.weight("click"), cfg.weight("impression"), cfg.repurchase_interval_days(("Grocery", "Beverages"))
(1.5, 0.0, 7.0)
>>> FeatureConfig(half_life_s=0)
Traceback (most recent call last):
...
shopkeep.errors.ValidationError: half_life_s=0: must be a positive number of seconds
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from shopkeep.errors import ValidationError
from shopkeep.types import EventType

__all__ = ["DEFAULT_REPURCHASE_DAYS", "DEFAULT_WEIGHTS", "FeatureConfig"]

#: Affinity weight per event type; types not listed weigh 0.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "view": 1.0, "click": 1.5, "dwell": 0.5, "filter": 2.0, "wishlist": 2.0, "add_to_cart": 3.0,
    "purchase": 4.0, "remove_from_cart": -2.0,
})

#: Replenishable categories (lower case) → typical days between purchases.
DEFAULT_REPURCHASE_DAYS: Mapping[str, float] = MappingProxyType({
    "grocery": 14.0, "beverages": 7.0, "dairy & alternatives": 7.0, "snacks": 10.0, "breakfast": 14.0,
    "pantry": 21.0, "skincare": 45.0, "hair": 45.0, "bath & body": 45.0, "men's grooming": 45.0,
})

_TYPES = frozenset(t.value for t in EventType)


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValidationError(name, value, "must be a positive number of seconds" if name.endswith("_s")
                              else "must be a positive number")


@dataclass(frozen=True)
class FeatureConfig:
    """How events turn into session and shopper state (defaults documented in the module)."""

    half_life_s: float = 1800.0
    user_half_life_s: float = 14 * 86400.0
    weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    session_dominance: float = 0.5
    max_recent: int = 50
    max_affinities: int = 64
    max_user_affinities: int = 128
    min_weight: float = 1e-4
    ttl_s: int = 7 * 86400
    user_ttl_s: int = 90 * 86400
    max_cart: int = 100
    max_purchases: int = 200
    max_sessions: int = 64
    max_applied: int = 128
    repurchase_days: Mapping[str, float] = field(default_factory=lambda: DEFAULT_REPURCHASE_DAYS)
    suppress_purchased_days: float = 365.0

    def __post_init__(self) -> None:
        for name in ("half_life_s", "user_half_life_s", "session_dominance", "min_weight",
                     "suppress_purchased_days"):
            _positive(name, getattr(self, name))
        for name in ("max_recent", "max_affinities", "max_user_affinities", "ttl_s", "user_ttl_s", "max_cart",
                     "max_purchases", "max_sessions", "max_applied"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(name, value, "must be a positive integer")
        for kind, weight in self.weights.items():
            if kind not in _TYPES:
                raise ValidationError(f"weights.{kind}", weight, f"unknown event type; allowed: {sorted(_TYPES)}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
                raise ValidationError(f"weights.{kind}", weight, "must be a finite number")
        for cat, days in self.repurchase_days.items():
            _positive(f"repurchase_days.{cat}", days)
        object.__setattr__(self, "weights", MappingProxyType({k: float(v) for k, v in self.weights.items()}))
        object.__setattr__(self, "repurchase_days",
                           MappingProxyType({k.strip().lower(): float(v) for k, v in self.repurchase_days.items()}))

    def weight(self, event_type: str) -> float:
        """The affinity weight of one event of ``event_type`` (0 for types without one)."""
        return self.weights.get(str(event_type), 0.0)

    def repurchase_interval_days(self, category_path: Sequence[str]) -> float | None:
        """Days between repurchases for an item of ``category_path``; None when not replenishable."""
        for level in reversed(category_path):
            days = self.repurchase_days.get(level.strip().lower())
            if days is not None:
                return days
        return None
