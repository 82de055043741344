"""Reasons for a concierge product, each quoting the item's own data (never invented)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shopkeep.search import Constraint
from shopkeep.types import AttributeValue, Item, Money

__all__ = ["reasons_for"]


def _fmt(minor: int, currency: str) -> str:
    return Money(minor, currency or "USD").format()


def _constraint_reason(it: Item, attrs: Mapping[str, AttributeValue], c: Constraint, currency: str,
                       store: str | None, price: int | None) -> str | None:
    if c.kind == "attribute":
        for key in c.key.split("|"):
            value = attrs.get(key)
            if value is None:
                continue
            source = "" if key in it.attributes else " (derived from its ingredient list)"
            if isinstance(value, bool):
                return f"{key.replace('_', '-')}: {'yes' if value else 'no'}{source}"
            shown = ", ".join(str(v) for v in value) if isinstance(value, tuple | list) else str(value)
            return f"{key.replace('_', ' ')}: {shown}"
        return None
    if c.kind == "numeric":
        value = attrs.get(c.key)
        return f"{c.key.replace('_', ' ')}: {value}" if value is not None else None
    if c.kind == "price" and price is not None and isinstance(c.value, int) and c.op in ("<=", "<"):
        return f"{_fmt(price, currency)}, within {_fmt(c.value, currency)}"
    if c.kind == "category":
        return f"category: {' > '.join(it.category)}"
    if c.kind == "brand":
        return f"brand: {it.brand}"
    if c.kind == "availability":
        return _availability(it, store if c.key != "store" else str(c.value), c.key == "pickup")
    return None


def _availability(it: Item, store: str | None, pickup: bool) -> str:
    if pickup:
        spots = [f"{o.location} ({it.inventory.get(o.location or '', 0)} in stock)" for o in it.fulfillment
                 if o.kind == "pickup" and o.same_day and (store is None or o.location == store)
                 and (o.location is None or it.inventory.get(o.location, 0) > 0)]
        return "same-day pickup at " + ", ".join(spots[:3]) if spots else "same-day pickup"
    if store is not None:
        return f"{it.inventory.get(store, 0)} in stock at {store}"
    units = sum(it.inventory.values())
    return f"{units} in stock" if it.inventory else "in stock"


def reasons_for(it: Item, attrs: Mapping[str, AttributeValue], slots: Sequence[Constraint], currency: str,
                store: str | None, price: int | None, *, fit_note: str | None = None) -> tuple[str, ...]:
    """Why ``it`` answers the stated ``slots``: one reason per constraint, then price, rating, stock, and
    the shopper's ``fit_note`` (from the returns-aware fit model) when there is one."""
    out: list[str] = []
    for c in slots:
        why = _constraint_reason(it, attrs, c, currency, store, price)
        if why and why not in out:
            out.append(why)
    if price is not None and not any(r.startswith(_fmt(price, currency)) for r in out):
        out.append(f"price {_fmt(price, currency)}")
    if it.rating_avg is not None and it.rating_count:
        out.append(f"rated {it.rating_avg:.1f}/5 by {it.rating_count} reviewers")
    if not any(c.kind == "availability" for c in slots):
        out.append(_availability(it, store, False))
    if fit_note:
        out.append(f"fit: {fit_note}")
    return tuple(out)
