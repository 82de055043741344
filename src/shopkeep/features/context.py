"""The request :class:`Context`: everything the read path knows about who is asking, where and when.

``features`` builds it (``value(context)`` side of each feature); retrieval, ranking and policy only
read it. Keys of :attr:`Context.affinities` are namespaced strings:

* ``"cat:<category>"`` — any level of an item's category path, e.g. ``"cat:skincare"``;
* ``"brand:<brand>"``;
* ``"attr:<key>=<value>"`` — one typed attribute value in its string form, e.g.
  ``"attr:fragrance_free=true"``, ``"attr:skin_type=sensitive"``;
* ``"item:<item_id>"`` and ``"group:<group_id>"``.

Values are decayed weights (event-time half-life) — larger means a stronger recent interest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

__all__ = ["Context", "ContextRequest", "Scored", "ScoredItem", "Surface", "affinity_key"]

#: The recommendation surfaces.
Surface = Literal["home", "pdp", "cart", "search"]


def affinity_key(kind: str, name: str, value: object | None = None) -> str:
    """The namespaced affinity key, e.g. ``affinity_key("attr", "vegan", True) == "attr:vegan=true"``.

    >>> affinity_key("cat", "Skincare"), affinity_key("attr", "skin_type", "Dry")
    ('cat:skincare', 'attr:skin_type=dry')
    """
    if value is None:
        return f"{kind}:{str(name).strip().lower()}"
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"{kind}:{str(name).strip().lower()}={text.strip().lower()}"


@dataclass(frozen=True, slots=True)
class ContextRequest:
    """What a request says about itself (query parameters of ``GET /v1/recommendations``)."""

    surface: Surface = "home"
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    item_id: str | None = None
    cart_item_ids: tuple[str, ...] = ()
    store: str | None = None
    region: str | None = None
    k: int = 10
    explain: bool = False
    now: datetime | None = None
    #: The visit's context (cold-start priors for shoppers with no history): device, referrer, campaign,
    #: channel -- lower-case strings or None.
    device: str | None = None
    referrer: str | None = None
    campaign: str | None = None
    channel: str | None = None

    def visit(self) -> dict[str, str]:
        """The visit context fields that are set, lower-cased.

        >>> ContextRequest(device="Mobile", campaign="spring").visit()
        {'device': 'mobile', 'campaign': 'spring'}
        """
        return {f: v.strip().lower() for f in ("device", "referrer", "campaign", "channel")
                if (v := getattr(self, f)) is not None and v.strip()}


@dataclass(frozen=True, slots=True)
class Context:
    """The resolved context of one request (read-only for every stage after ``features``).

    ``recent_items``: the session's (or, without a session, the shopper's) item interactions, oldest
    first, already in model order; ``purchased``: item_id → epoch ms of the last purchase;
    ``personalize``: False when the shopper withdrew consent to personalization (then only
    non-personal sources may run); ``preferences``: stated zero-party preferences (key → values) and
    ``avoid``: stated exclusions (key → values).
    """

    request: ContextRequest
    now_ms: int
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    region: str | None = None
    store: str | None = None
    age_verified: bool = False
    personalize: bool = True
    recent_items: tuple[str, ...] = ()
    cart_items: tuple[str, ...] = ()
    purchased: Mapping[str, int] = field(default_factory=dict)
    affinities: Mapping[str, float] = field(default_factory=dict)
    preferences: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    avoid: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    budget_max_minor: int | None = None
    loyalty_tier: str | None = None

    @property
    def surface(self) -> Surface:
        """The surface asked for."""
        return self.request.surface


class Scored(Protocol):
    """What ranking reads from a fused candidate and policy from a ranked item (duck-typed: retrieval's
    ``FusedCandidate`` and :class:`ScoredItem` satisfy it, and neither reader may import the other's layer)."""

    @property
    def item_id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def sources(self) -> Mapping[str, tuple[float, int]]: ...


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """One ranked item handed from ranking to policy: its final score and, per source that found it,
    (score, rank) as in fusion. Lives here (layer 5) because ranking and policy may not import each other."""

    item_id: str
    score: float
    sources: Mapping[str, tuple[float, int]] = field(default_factory=dict)
