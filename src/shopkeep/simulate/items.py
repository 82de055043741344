"""Turn catalog columns into titles, descriptions and :class:`~shopkeep.types.Item` objects; wire dicts.

>>> from shopkeep.types import Money
>>> item_to_wire(Item("sku-1", "Lipstick", price=Money(2200, "USD")))["price"]
{'amount': 2200, 'currency': 'USD'}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from shopkeep.simulate import taxonomy as tx
from shopkeep.simulate.catalog import COLOR_NAMES, FITS, MATERIALS, REGULATED_CLASSES, CatalogArrays
from shopkeep.types import AttributeValue, Event, FulfillmentOption, Item, Money

__all__ = ["build_items", "compose_text", "event_to_wire", "iso_utc", "item_id", "item_to_wire"]


def item_id(i: int) -> str:
    """The string id of item row ``i``."""
    return f"sku-{i:07d}"


def iso_utc(ts: datetime) -> str:
    """ISO 8601 with millisecond precision and a trailing ``Z``."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mask(bits: int, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for k, name in enumerate(names) if bits >= 0 and bits >> k & 1)


def _cword(color: int, cword: int) -> str:
    words = tx.COLORS[COLOR_NAMES[color]]
    return words[cword % len(words)]


def _title(cat: CatalogArrays, i: int, a: dict[str, list[int]]) -> str:
    spec = tx.TYPES[int(cat.type_idx[i])]
    brand = cat.brands[int(cat.brand[i])].name
    style = spec.styles[a["style"][i]]
    if spec.department == "apparel":
        return (f"{brand} {_cword(a['color'][i], a['cword'][i])} {MATERIALS[a['material'][i]]} {style} "
                f"{spec.noun} - Size {tx.APPAREL_SIZES[a['size'][i]]}")
    if spec.department == "footwear":
        wp = "Waterproof " if a["waterproof"][i] == 1 else ""
        wide = ", Wide Fit" if a["fit"][i] == 3 else ""
        return (f"{brand} {style} {wp}{spec.noun}{wide}, {_cword(a['color'][i], a['cword'][i])} "
                f"{MATERIALS[a['material'][i]]} - Size {a['size'][i]}")
    head = f"{brand} "
    if spec.department == "grocery":
        head += ("Organic " if a["organic"][i] == 1 else "") + ("Gluten-Free " if a["gluten_free"][i] == 1 else "")
    elif spec.category == "Skincare" and a["ff"][i] == 1:
        head += "Fragrance-Free "
    text = f"{head}{style} {spec.noun}"
    if a["spf"][i] > 0:
        text += f" SPF {a['spf'][i]}"
    if a["shade"][i] >= 0:
        word = tx.SHADE_WORDS[(int(cat.group[i]) * 3 + a["vpos"][i]) % len(tx.SHADE_WORDS)]
        text += f" - {word} ({tx.SHADES[spec.key][a['shade'][i]].title()})"
    if a["size_ml"][i] > 0:
        text += f", {a['size_ml'][i]} ml"
    return text


def _description(cat: CatalogArrays, i: int, a: dict[str, list[int]]) -> str:
    spec = tx.TYPES[int(cat.type_idx[i])]
    brand = cat.brands[int(cat.brand[i])]
    parts = [f"A {spec.styles[a['style'][i]].lower()} {spec.noun.lower()} from {brand.name}."]
    skin = _mask(a["skin"][i], tx.SKIN_TYPES)
    if a["ff"][i] == 1:
        parts.append("Fragrance-free" + (f", suitable for {', '.join(skin)} skin." if skin else "."))
    elif skin:
        parts.append(f"Suitable for {', '.join(skin)} skin.")
    if a["ingredient"][i] >= 0:
        parts.append(f"Formulated with {tx.KEY_INGREDIENTS[a['ingredient'][i]]}.")
    if a["spf"][i] > 0:
        parts.append(f"Broad-spectrum SPF {a['spf'][i]} protection.")
    flags = [w for w, k in (("vegan", "vegan"), ("cruelty-free", "cf"), ("organic", "organic"),
                            ("gluten-free", "gluten_free")) if a[k][i] == 1]
    if flags:
        parts.append(f"{', '.join(flags).capitalize()}.")
    if a["material"][i] >= 0:
        fit = FITS[a["fit"][i]] if a["fit"][i] >= 0 else "regular"
        parts.append(f"Made of {MATERIALS[a['material'][i]].lower()} in a {fit} fit"
                     + (", fully waterproof." if a["waterproof"][i] == 1 else "."))
    diet = _mask(a["diet"][i], tx.DIETARY)
    if diet:
        parts.append(f"Dietary: {', '.join(d.replace('_', ' ') for d in diet)}.")
    return " ".join(parts)


def compose_text(cat: CatalogArrays) -> None:
    """Fill ``cat.titles`` and ``cat.descriptions`` (brand + attributes + product type)."""
    a = {k: v.tolist() for k, v in cat.attrs.items()}
    cat.titles = [_title(cat, i, a) for i in range(cat.n)]
    cat.descriptions = [_description(cat, i, a) for i in range(cat.n)]


def _attributes(i: int, dept: str, a: dict[str, list[int]]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, col in (("fragrance_free", "ff"), ("vegan", "vegan"), ("cruelty_free", "cf"),
                     ("waterproof", "waterproof"), ("organic", "organic"), ("gluten_free", "gluten_free")):
        if a[col][i] >= 0:
            out[key] = a[col][i] == 1
    if a["skin"][i] >= 0:
        out["skin_type"] = _mask(a["skin"][i], tx.SKIN_TYPES)
    if a["spf"][i] > 0:
        out["spf"] = a["spf"][i]
    if a["size_ml"][i] > 0:
        out["size_ml"] = a["size_ml"][i]
    if a["color"][i] >= 0:
        out["color"] = COLOR_NAMES[a["color"][i]]
    if a["size"][i] >= 0:
        out["size"] = tx.APPAREL_SIZES[a["size"][i]] if dept == "apparel" else str(a["size"][i])
    if a["fit"][i] >= 0:
        out["fit"] = FITS[a["fit"][i]]
    if a["material"][i] >= 0:
        out["material"] = MATERIALS[a["material"][i]].lower()
    if a["diet"][i] >= 0:
        out["dietary"] = _mask(a["diet"][i], tx.DIETARY)
    if a["ingredient"][i] >= 0:
        out["key_ingredient"] = tx.KEY_INGREDIENTS[a["ingredient"][i]]
    return out


def _shade_family(cat: CatalogArrays, i: int, a: dict[str, list[int]]) -> str | None:
    return tx.SHADES[tx.TYPES[int(cat.type_idx[i])].key][a["shade"][i]] if a["shade"][i] >= 0 else None


def _fulfillment(stock: list[int]) -> tuple[FulfillmentOption, ...]:
    opts: list[FulfillmentOption] = []
    if stock[0] > 0:
        opts.append(FulfillmentOption("ship", tx.LOCATIONS[0], sla_days=2))
    elif any(stock[1:]):
        opts.append(FulfillmentOption("ship", tx.LOCATIONS[1 + int(np.argmax(stock[1:]))], sla_days=5))
    opts += [FulfillmentOption("pickup", loc, sla_days=0, same_day=True)
             for loc, q in zip(tx.LOCATIONS[1:], stock[1:], strict=True) if q > 0]
    return tuple(opts)


def build_items(cat: CatalogArrays) -> list[Item]:
    """Materialize every row of ``cat`` as an :class:`Item` (USD prices)."""
    if not cat.titles:
        compose_text(cat)
    a = {k: v.tolist() for k, v in cat.attrs.items()}
    price, cost, mp = cat.price.tolist(), cat.cost.tolist(), cat.map_price.tolist()
    inv, created = cat.inventory.tolist(), cat.created_s.tolist()
    r_avg, r_cnt = cat.rating_avg.tolist(), cat.rating_count.tolist()
    items = []
    for i in range(cat.n):
        spec = tx.TYPES[int(cat.type_idx[i])]
        attrs = _attributes(i, spec.department, a)
        shade = _shade_family(cat, i, a)
        if shade is not None:
            attrs["shade_family"] = shade
        margin = 1.0 - cost[i] / price[i]
        reg = REGULATED_CLASSES[a["regulated"][i]]
        items.append(Item(
            item_id=item_id(i), title=cat.titles[i], group_id=f"grp-{int(cat.group[i]):06d}",
            description=cat.descriptions[i], brand=cat.brands[int(cat.brand[i])].name,
            category=(tx.DEPARTMENT_LABELS[spec.department], spec.category, spec.noun), attributes=attrs,
            rating_avg=None if r_cnt[i] == 0 else r_avg[i], rating_count=r_cnt[i],
            price=Money(price[i], "USD"), cost=Money(cost[i], "USD"),
            map_price=Money(mp[i], "USD") if mp[i] > 0 else None,
            margin_class="high" if margin > 0.55 else ("low" if margin < 0.4 else "mid"),
            regulated_class=reg, regulated_regions=tx.REGULATED[reg] if reg else (),
            inventory=dict(zip(tx.LOCATIONS, inv[i], strict=True)), fulfillment=_fulfillment(inv[i]),
            created_at=datetime.fromtimestamp(created[i], UTC),
        ))
    return items


def _plain(value: Any) -> Any:
    if isinstance(value, Money):
        return value.to_dict()
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, FulfillmentOption):
        return {"kind": value.kind, "location": value.location, "sla_days": value.sla_days,
                "same_day": value.same_day}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def item_to_wire(item: Item) -> dict[str, Any]:
    """The JSON-ready dict of an item: field names as :class:`Item`, Money as ``{amount, currency}``."""
    out: dict[str, Any] = {}
    for name in Item.__dataclass_fields__:
        value = getattr(item, name)
        if value is None:
            continue
        out[name] = _plain(dict(value) if name in ("attributes", "inventory") else value)
    return out


def event_to_wire(e: Event) -> dict[str, Any]:
    """The JSON-ready dict of an event: field names as :class:`Event`, ``None`` fields left out.

    >>> from shopkeep.types import EventType
    >>> event_to_wire(Event("e1", EventType.VIEW, datetime(2026, 10, 1, tzinfo=UTC), item_id="sku-1"))
    {'event_id': 'e1', 'type': 'view', 'timestamp': '2026-10-01T00:00:00.000Z', 'item_id': 'sku-1'}
    """
    out: dict[str, Any] = {"event_id": e.event_id, "type": e.type.value, "timestamp": iso_utc(e.timestamp)}
    for name in Event.__dataclass_fields__:
        if name in out:
            continue
        value = getattr(e, name)
        if value is None:
            continue
        if name == "context":
            ctx = {k: getattr(value, k) for k in value.__dataclass_fields__ if getattr(value, k) is not None}
            if ctx:
                out["context"] = ctx
        elif name == "reason":
            out[name] = value.value
        else:
            out[name] = _plain(value)
    return out
