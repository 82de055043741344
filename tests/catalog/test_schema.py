"""parse_item validation (every error names field, value and line) and the item_to_dict round trip."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeep.catalog.schema import item_to_dict, parse_item
from shopkeep.errors import ValidationError
from shopkeep.types import FulfillmentOption, Item, Money


def _item(**extra: Any) -> dict[str, Any]:
    return {"item_id": "sku-1", "title": "Lip Mask", **extra}


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        ({"title": "x"}, "item_id", None),
        ({"item_id": "a"}, "title", None),
        ({"item_id": 17, "title": "x"}, "item_id", 17),
        ({"item_id": "a" * 257, "title": "x"}, "item_id", "a" * 120 + "..."),
        ({"item_id": "a", "title": "   "}, "title", "   "),
        (_item(price={"amount": -1, "currency": "USD"}), "price.amount", -1),
        (_item(price={"amount": 24.99, "currency": "USD"}), "price.amount", 24.99),
        (_item(price="24.99"), "price", "24.99"),
        (_item(price={"amount": 100, "currency": "USD"}, cost={"amount": 50, "currency": "EUR"}),
         "cost.currency", "EUR"),
        (_item(price={"amount": 100, "currency": "USD"}, map_price={"amount": 90, "currency": "GBP"}),
         "map_price.currency", "GBP"),
        (_item(price={"amount": 1, "currency": "dollars"}), "price.currency", "dollars"),
        (_item(rating_avg=5.5), "rating_avg", 5.5),
        (_item(rating_avg="4"), "rating_avg", "4"),
        (_item(rating_count=-3), "rating_count", -3),
        (_item(rating_count=True), "rating_count", True),
        (_item(image_vector=[0.1, math.nan]), "image_vector[1]", math.nan),
        (_item(image_vector=[0.1, "x"]), "image_vector[1]", "x"),
        (_item(image_vector=[]), "image_vector", []),
        (_item(attributes={"skin_type": ["dry", 3]}), "attributes.skin_type[1]", 3),
        (_item(attributes={"weird": {"nested": 1}}), "attributes.weird", {"nested": 1}),
        (_item(attributes={"ratio": math.inf}), "attributes.ratio", math.inf),
        (_item(attributes=["a"]), "attributes", ["a"]),
        (_item(inventory={"store-1": -2}), "inventory.store-1", -2),
        (_item(inventory={"store-1": 1.5}), "inventory.store-1", 1.5),
        (_item(fulfillment=[{"kind": "teleport"}]), "fulfillment[0].kind", "teleport"),
        (_item(fulfillment=[{"kind": "ship", "sla_days": -1}]), "fulfillment[0].sla_days", -1),
        (_item(fulfillment=[{"kind": "ship", "fast": True}]), "fulfillment[0].fast", True),
        (_item(created_at="2026-01-01T00:00:00"), "created_at", "2026-01-01T00:00:00"),
        (_item(active="yes"), "active", "yes"),
        (_item(category=["Skincare", ""]), "category[1]", ""),
        (_item(regulated_regions="US"), "regulated_regions", "US"),
        (_item(colour="red"), "colour", "red"),
    ],
)
def test_bad_items_name_field_value_and_line(raw: dict[str, Any], field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_item(raw, line=12)
    err = exc.value
    assert err.field == field
    assert err.line == 12 and str(err).startswith("line 12: ")
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(err.value)
    else:
        assert err.value == value


def test_category_string_money_and_attributes_are_typed() -> None:
    item = parse_item(_item(
        category="Skincare > Face > Masks",
        price={"amount": 2499},
        cost={"amount": 900, "currency": "usd"},
        attributes={"skin_type": ["dry", "oily"], "vegan": True, "spf": 50, "volume_ml": 7.5, "shade": "pearl"},
        inventory={"store-1": 3, "web": 0},
        fulfillment=[{"kind": "pickup", "location": "store-1", "same_day": True}, {"kind": "ship", "sla_days": 3}],
        created_at="2026-01-01T01:00:00+01:00",
        regulated_class="alcohol", regulated_regions=["US-UT"],
    ), default_currency="USD")
    assert item.category == ("Skincare", "Face", "Masks")
    assert item.price == Money(2499, "USD") and item.cost == Money(900, "USD")
    assert item.attributes == {"skin_type": ("dry", "oily"), "vegan": True, "spf": 50, "volume_ml": 7.5,
                               "shade": "pearl"}
    assert item.fulfillment[0] == FulfillmentOption("pickup", "store-1", None, True)
    assert item.created_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert item.active is True and item.rating_count == 0


def test_wire_form_matches_the_documented_shape() -> None:
    item = parse_item(_item(brand="Acme", category=["Skincare"], attributes={"vegan": True},
                            price={"amount": 2499, "currency": "USD"}))
    assert item_to_dict(item) == {
        "item_id": "sku-1", "title": "Lip Mask", "description": "", "brand": "Acme", "category": ["Skincare"],
        "attributes": {"vegan": True}, "rating_count": 0, "price": {"amount": 2499, "currency": "USD"},
        "regulated_regions": [], "inventory": {}, "fulfillment": [], "active": True,
    }


_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: bool(s.strip()))
_attr = st.one_of(st.text(max_size=10), st.booleans(), st.integers(-10**12, 10**12),
                  st.floats(allow_nan=False, allow_infinity=False), st.tuples(_ids, _ids))
_money = st.builds(Money, st.integers(0, 10**9), st.just("EUR"))


@st.composite
def items(draw: st.DrawFn) -> Item:
    return Item(
        item_id=draw(_ids),
        title=draw(_ids),
        group_id=draw(st.none() | _ids),
        description=draw(st.text(max_size=30)),
        brand=draw(st.none() | _ids),
        category=tuple(draw(st.lists(_ids.filter(lambda s: ">" not in s), max_size=3))),
        attributes=draw(st.dictionaries(_ids, _attr, max_size=4)),
        rating_avg=draw(st.none() | st.floats(0, 5)),
        rating_count=draw(st.integers(0, 10**6)),
        price=draw(st.none() | _money),
        cost=draw(st.none() | _money),
        map_price=draw(st.none() | _money),
        regulated_class=draw(st.none() | _ids),
        regulated_regions=tuple(draw(st.lists(_ids, max_size=2))),
        inventory=draw(st.dictionaries(_ids, st.integers(0, 10**6), max_size=3)),
        fulfillment=tuple(draw(st.lists(st.builds(
            FulfillmentOption, st.sampled_from(["ship", "pickup"]), st.none() | _ids,
            st.none() | st.integers(0, 30), st.booleans()), max_size=2))),
        image_vector=draw(st.none() | st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=4).map(tuple)),
        created_at=draw(st.none() | st.datetimes(timezones=st.just(UTC))),
        active=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None)
@given(items())
def test_item_to_dict_round_trips(item: Item) -> None:
    import json

    wire = json.loads(json.dumps(item_to_dict(item)))  # through real JSON text, as stored
    assert parse_item(wire) == item
