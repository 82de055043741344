"""The catalog item schema: strict validation of the wire form and its exact inverse.

>>> item = parse_item({"item_id": "sku-1", "title": "Lip Mask", "category": "Skincare > Masks",
...                    "attributes": {"skin_type": ["dry"], "vegan": True},
...                    "price": {"amount": 2499, "currency": "usd"}})
>>> item.category, item.price.format(), item.attributes["skin_type"]
(('Skincare', 'Masks'), '24.99 USD', ('dry',))
>>> parse_item(item_to_dict(item)) == item
True
>>> parse_item({"item_id": "sku-2", "title": "x", "price": {"amount": -1}}, line=7)
Traceback (most recent call last):
...
shopkeep.errors.ValidationError: line 7: price.amount=-1: must be >= 0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shopkeep.errors import ValidationError
from shopkeep.types import AttributeValue, FulfillmentOption, Item, Money, parse_timestamp

__all__ = ["FIELDS", "MAX_ID_LEN", "MAX_IMAGE_DIM", "item_to_dict", "parse_item"]

MAX_ID_LEN = 256
MAX_TEXT_LEN = 1_000
MAX_DESCRIPTION_LEN = 200_000
MAX_ATTRIBUTE_NAME_LEN = 128
#: Largest image vector accepted (numbers per item).
MAX_IMAGE_DIM = 4096
FULFILLMENT_KINDS = ("ship", "pickup", "delivery", "digital")

#: Every field of the wire form, in output order.
FIELDS = (
    "item_id", "title", "group_id", "description", "brand", "vendor", "category", "attributes",
    "rating_avg", "rating_count", "price", "cost", "map_price", "margin_class", "regulated_class",
    "regulated_regions", "inventory", "fulfillment", "image_vector", "created_at", "active",
)
_MONEY_FIELDS = ("price", "cost", "map_price")


def _text(field: str, raw: Any, *, max_len: int = MAX_ID_LEN, required: bool = False) -> str | None:
    if raw is None:
        if required:
            raise ValidationError(field, None, "is required")
        return None
    if not isinstance(raw, str):
        raise ValidationError(field, raw, f"must be a string, not {type(raw).__name__}")
    if not raw.strip():
        raise ValidationError(field, raw, "must not be blank")
    if len(raw) > max_len:
        raise ValidationError(field, raw, f"must be at most {max_len} characters (got {len(raw)})")
    return raw


def _int(field: str, raw: Any, *, minimum: int = 0) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValidationError(field, raw, f"must be an integer, not {type(raw).__name__}")
    if raw < minimum:
        raise ValidationError(field, raw, f"must be >= {minimum}")
    return raw


def _float(field: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValidationError(field, raw, f"must be a number, not {type(raw).__name__}")
    value = float(raw)
    if not math.isfinite(value):
        raise ValidationError(field, raw, "must be a finite number")
    return value


def _bool(field: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValidationError(field, raw, "must be true or false")
    return raw


def _str_list(field: str, raw: Any, *, split: str | None = None) -> tuple[str, ...]:
    if isinstance(raw, str) and split is not None:
        raw = [part.strip() for part in raw.split(split) if part.strip()]
    if not isinstance(raw, list | tuple):
        raise ValidationError(field, raw, "must be a list of strings")
    for i, part in enumerate(raw):
        _text(f"{field}[{i}]", part, required=True)
    return tuple(raw)


def _attribute(name: str, raw: Any) -> AttributeValue:
    field = f"attributes.{name}"
    if isinstance(raw, bool | str):
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return _float(field, raw)
    if isinstance(raw, list | tuple):
        for i, part in enumerate(raw):
            if not isinstance(part, str):
                raise ValidationError(f"{field}[{i}]", part, "list attributes hold strings only")
        return tuple(raw)
    raise ValidationError(field, raw, "must be a string, number, boolean or list of strings")


def _attributes(raw: Any) -> dict[str, AttributeValue]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError("attributes", raw, "must be an object {name: value}")
    out: dict[str, AttributeValue] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_ATTRIBUTE_NAME_LEN:
            raise ValidationError("attributes.<name>", name, "attribute names are non-empty strings")
        out[name] = _attribute(name, value)
    return out


def _inventory(raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError("inventory", raw, "must be an object {location: units}")
    out: dict[str, int] = {}
    for location, units in raw.items():
        _text("inventory.<location>", location, required=True)
        out[location] = _int(f"inventory.{location}", units)
    return out


def _fulfillment(raw: Any) -> tuple[FulfillmentOption, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise ValidationError("fulfillment", raw, "must be a list of options")
    out = []
    for i, opt in enumerate(raw):
        field = f"fulfillment[{i}]"
        if isinstance(opt, FulfillmentOption):
            opt = {"kind": opt.kind, "location": opt.location, "sla_days": opt.sla_days, "same_day": opt.same_day}
        if not isinstance(opt, Mapping):
            raise ValidationError(field, opt, "must be an object {kind, location, sla_days, same_day}")
        extra = set(opt) - {"kind", "location", "sla_days", "same_day"}
        if extra:
            name = sorted(extra)[0]
            raise ValidationError(f"{field}.{name}", opt[name], "unknown fulfillment field")
        kind = opt.get("kind")
        if kind not in FULFILLMENT_KINDS:
            raise ValidationError(f"{field}.kind", kind, f"must be one of {', '.join(FULFILLMENT_KINDS)}")
        sla = opt.get("sla_days")
        same_day = opt.get("same_day", False)
        out.append(FulfillmentOption(
            kind=kind,
            location=_text(f"{field}.location", opt.get("location")),
            sla_days=None if sla is None else _int(f"{field}.sla_days", sla),
            same_day=_bool(f"{field}.same_day", same_day),
        ))
    return tuple(out)


def _image_vector(raw: Any) -> tuple[float, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list | tuple) or not raw:
        raise ValidationError("image_vector", raw, "must be a non-empty list of numbers")
    if len(raw) > MAX_IMAGE_DIM:
        raise ValidationError("image_vector", f"{len(raw)} numbers", f"must have at most {MAX_IMAGE_DIM} numbers")
    return tuple(_float(f"image_vector[{i}]", v) for i, v in enumerate(raw))


def _money(raw: Mapping[str, Any], default_currency: str) -> dict[str, Money | None]:
    out: dict[str, Money | None] = {}
    first: tuple[str, str] | None = None
    for name in _MONEY_FIELDS:
        value = raw.get(name)
        if value is None:
            out[name] = None
            continue
        money = Money.parse(value, field=name, default_currency=default_currency)
        if money.amount < 0:
            raise ValidationError(f"{name}.amount", money.amount, "must be >= 0")
        if first is None:
            first = (name, money.currency)
        elif money.currency != first[1]:
            raise ValidationError(f"{name}.currency", money.currency,
                                  f"must match the {first[0]} currency {first[1]}")
        out[name] = money
    return out


def _category(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    return _str_list("category", raw, split=">")


def _optional(raw: Mapping[str, Any], name: str, parse: Callable[[str, Any], Any]) -> Any:
    value = raw.get(name)
    return None if value is None else parse(name, value)


def _build(raw: Mapping[str, Any], default_currency: str) -> Item:
    for key in raw:
        if key not in FIELDS:
            raise ValidationError(str(key), raw[key], "unknown item field")
    money = _money(raw, default_currency)
    rating = _optional(raw, "rating_avg", _float)
    if rating is not None and not 0.0 <= rating <= 5.0:
        raise ValidationError("rating_avg", raw["rating_avg"], "must be between 0 and 5")
    created = raw.get("created_at")
    return Item(
        item_id=str(_text("item_id", raw.get("item_id"), required=True)),
        title=str(_text("title", raw.get("title"), max_len=MAX_TEXT_LEN, required=True)),
        group_id=_text("group_id", raw.get("group_id")),
        description=_optional(raw, "description", lambda f, v: _description(v)) or "",
        brand=_text("brand", raw.get("brand")),
        vendor=_text("vendor", raw.get("vendor")),
        category=_category(raw.get("category")),
        attributes=_attributes(raw.get("attributes")),
        rating_avg=rating,
        rating_count=_int("rating_count", 0 if raw.get("rating_count") is None else raw["rating_count"]),
        price=money["price"],
        cost=money["cost"],
        map_price=money["map_price"],
        margin_class=_text("margin_class", raw.get("margin_class")),
        regulated_class=_text("regulated_class", raw.get("regulated_class")),
        regulated_regions=_str_list("regulated_regions", raw.get("regulated_regions") or ()),
        inventory=_inventory(raw.get("inventory")),
        fulfillment=_fulfillment(raw.get("fulfillment")),
        image_vector=_image_vector(raw.get("image_vector")),
        created_at=None if created is None else parse_timestamp(created, field="created_at"),
        active=_bool("active", raw.get("active", True)),
    )


def _description(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValidationError("description", raw, f"must be a string, not {type(raw).__name__}")
    if len(raw) > MAX_DESCRIPTION_LEN:
        raise ValidationError("description", raw, f"must be at most {MAX_DESCRIPTION_LEN} characters")
    return raw


def parse_item(raw: Mapping[str, Any], *, line: int | None = None, default_currency: str = "USD") -> Item:
    """Validate one item in wire form; every error is a ValidationError naming field, value and ``line``.

    Money fields are ``{"amount": <minor units>, "currency": "USD"}`` (currency defaults to
    ``default_currency``); they must be >= 0 and share one currency. ``category`` is a list or an
    ``"a > b > c"`` string. Unknown fields are refused.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError("item", raw, "must be an object", line=line)
    try:
        return _build(raw, default_currency)
    except ValidationError as exc:
        if line is None or exc.line is not None:
            raise
        raise ValidationError(exc.field, exc.value, exc.reason, line=line) from None


def _ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def item_to_dict(item: Item) -> dict[str, Any]:
    """The JSON wire form of ``item`` (fields that are None are left out); ``parse_item`` reverses it."""
    out: dict[str, Any] = {
        "item_id": item.item_id,
        "title": item.title,
        "group_id": item.group_id,
        "description": item.description,
        "brand": item.brand,
        "vendor": item.vendor,
        "category": list(item.category),
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in item.attributes.items()},
        "rating_avg": item.rating_avg,
        "rating_count": item.rating_count,
        "price": item.price.to_dict() if item.price else None,
        "cost": item.cost.to_dict() if item.cost else None,
        "map_price": item.map_price.to_dict() if item.map_price else None,
        "margin_class": item.margin_class,
        "regulated_class": item.regulated_class,
        "regulated_regions": list(item.regulated_regions),
        "inventory": dict(item.inventory),
        "fulfillment": [
            {k: v for k, v in (("kind", f.kind), ("location", f.location), ("sla_days", f.sla_days),
                               ("same_day", f.same_day)) if v is not None}
            for f in item.fulfillment
        ],
        "image_vector": list(item.image_vector) if item.image_vector is not None else None,
        "created_at": _ts(item.created_at) if item.created_at else None,
        "active": item.active,
    }
    return {k: v for k, v in out.items() if v is not None}
