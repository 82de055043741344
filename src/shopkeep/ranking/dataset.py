"""Point-in-time next-item requests from an event log, for training and evaluating rankers.

For a window ``[start_ms, end_ms)``: each shopper (user id, else the user linked to the anonymous
id, else the anonymous id) with an item interaction (view, click, add to cart, purchase) before
``start_ms`` and a *new* item interacted with inside the window gives one request. Its context holds
only what was known at ``start_ms``: the last ``max_recent`` distinct items before it and affinities
built from them (+1 per affinity key per item, the features' view weight); its time is that of the
target event (the moment the shopper came back). Labels: the first new item (the target, grade 2),
the other new items of the window (grade 1), and the items purchased in the window. Nothing after
``start_ms`` enters a context, so a ranker trained on a later window than the retrievers never sees
their training data as candidates' features (no stacking leakage).

These labels have no served positions (nothing was served); see :mod:`shopkeep.ranking.features`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context, ContextRequest, Surface
from shopkeep.types import Event

__all__ = ["LabeledRequests", "next_item_requests"]

_KINDS = {"view", "click", "add_to_cart", "purchase"}


@dataclass(frozen=True)
class LabeledRequests:
    """Requests with their labels: ``grades`` item → 2 (target) or 1 (other new item); ``purchases``."""

    contexts: tuple[Context, ...]
    targets: tuple[str, ...]
    grades: tuple[Mapping[str, int], ...]
    purchases: tuple[frozenset[str], ...]

    def __len__(self) -> int:
        return len(self.contexts)


def next_item_requests(events: Iterable[Event], snapshot: CatalogSnapshot, start_ms: int, end_ms: int, *,
                       max_recent: int = 20, surface: Surface = "home") -> LabeledRequests:
    """The window's requests (see the module docstring), sorted by shopper key."""
    if end_ms <= start_ms:
        raise ValidationError("end_ms", end_ms, f"must be after start_ms ({start_ms})")
    evs = sorted(events, key=lambda e: e.timestamp)
    link = {e.anonymous_id: e.user_id for e in evs if e.anonymous_id and e.user_id}
    before: dict[str, list[str]] = {}
    new: dict[str, dict[str, int]] = {}
    first_ms: dict[str, int] = {}
    bought: dict[str, set[str]] = {}
    for e in evs:
        key = e.user_id or link.get(e.anonymous_id or "") or e.anonymous_id
        t = int(e.timestamp.timestamp() * 1000)
        if str(e.type) not in _KINDS or e.item_id is None or key is None or e.item_id not in snapshot.index:
            continue
        hist = before.setdefault(key, [])
        if t < start_ms:
            if e.item_id in hist:
                hist.remove(e.item_id)
            hist.append(e.item_id)
        elif t < end_ms and hist:
            if str(e.type) == "purchase":
                bought.setdefault(key, set()).add(e.item_id)
            if e.item_id not in hist:
                grades = new.setdefault(key, {})
                if not grades:
                    first_ms[key] = t
                grades.setdefault(e.item_id, 2 if not grades else 1)
    contexts, targets, grades_out, purchases = [], [], [], []
    for key in sorted(new):
        recent = tuple(before[key][-max_recent:])
        aff: dict[str, float] = {}
        for item in recent:
            for k in snapshot.affinity_keys(snapshot.index[item]):
                aff[k] = aff.get(k, 0.0) + 1.0
        contexts.append(Context(ContextRequest(surface=surface), now_ms=first_ms[key] - 1, recent_items=recent,
                                affinities=aff))
        targets.append(next(i for i, g in new[key].items() if g == 2))
        grades_out.append(new[key])
        purchases.append(frozenset(bought.get(key, set())))
    return LabeledRequests(tuple(contexts), tuple(targets), tuple(grades_out), tuple(purchases))
