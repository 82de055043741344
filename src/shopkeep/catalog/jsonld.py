"""Answer-engine readiness: each item as schema.org ``Product`` JSON-LD, a product feed, and a check
that every claim in a feed (price, currency, availability, name, brand) matches the catalog.

Prices are strings in major units (``"24.99"``) from the integer minor units, never via floats.
Availability is ``InStock`` when :meth:`CatalogSnapshot.in_stock` says so for any location (an item
without inventory records is untracked and counts as in stock), else ``OutOfStock``.

>>> from shopkeep.types import Item, Money
>>> it = Item("sku-1", "Lip Mask", brand="Lumen", price=Money(2499, "USD"), inventory={"warehouse": 0},
...           rating_avg=4.5, rating_count=12)
>>> doc = product_jsonld(it, in_stock=False, base_url="https://shop.example/products/")
>>> doc["offers"]["price"], doc["offers"]["availability"], doc["url"]
('24.99', 'https://schema.org/OutOfStock', 'https://shop.example/products/sku-1')
>>> check_feed([doc], [it])
[]
>>> [m.field for m in check_feed([doc], [Item("sku-1", "Lip Mask", brand="Lumen", price=Money(1999, "USD"))])]
['offers.price', 'offers.availability']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from shopkeep.catalog.snapshot import CatalogSnapshot, active_items
from shopkeep.errors import ValidationError
from shopkeep.types import Item, Money

__all__ = [
    "IN_STOCK", "OUT_OF_STOCK", "Mismatch", "check_feed", "in_stock_flags", "price_string", "product_feed",
    "product_jsonld",
]

IN_STOCK = "https://schema.org/InStock"
OUT_OF_STOCK = "https://schema.org/OutOfStock"
_CHUNK = 1000
_MAX_PROPERTY_LEN = 200


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A feed claim that the catalog does not back."""

    item_id: str | None
    field: str
    feed_value: Any
    catalog_value: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"item_id": self.item_id, "field": self.field, "feed_value": self.feed_value,
                "catalog_value": self.catalog_value, "message": self.message}


def price_string(money: Money) -> str:
    """The amount in major units as an exact decimal string.

    >>> price_string(Money(2499, "USD")), price_string(Money(5, "USD")), price_string(Money(1200, "JPY"))
    ('24.99', '0.05', '1200')
    """
    return money.format().split(" ", 1)[0]


def product_jsonld(item: Item, *, in_stock: bool, base_url: str = "") -> dict[str, Any]:
    """One item as a schema.org ``Product`` (offers only when priced, aggregateRating when rated)."""
    if not isinstance(item, Item):
        raise ValidationError("item", item, "must be an Item")
    url = f"{base_url}{quote(item.item_id, safe='')}" if base_url else None
    doc: dict[str, Any] = {"@context": "https://schema.org", "@type": "Product", "sku": item.item_id,
                           "name": item.title}
    if url:
        doc["url"] = url
    if item.description:
        doc["description"] = item.description[:5000]
    if item.brand:
        doc["brand"] = {"@type": "Brand", "name": item.brand}
    if item.category:
        doc["category"] = " > ".join(item.category)
    if item.group_id:
        doc["inProductGroupWithID"] = item.group_id
    props = [{"@type": "PropertyValue", "name": k, "value": list(v) if isinstance(v, tuple) else v}
             for k, v in sorted(item.attributes.items()) if not (isinstance(v, str) and len(v) > _MAX_PROPERTY_LEN)]
    if props:
        doc["additionalProperty"] = props
    if item.price is not None:
        offer: dict[str, Any] = {"@type": "Offer", "price": price_string(item.price),
                                 "priceCurrency": item.price.currency,
                                 "availability": IN_STOCK if in_stock else OUT_OF_STOCK}
        if url:
            offer["url"] = url
        doc["offers"] = offer
    if item.rating_avg is not None:
        rating: dict[str, Any] = {"@type": "AggregateRating", "ratingValue": item.rating_avg,
                                  "bestRating": 5, "worstRating": 0}
        if item.rating_count > 0:
            rating["ratingCount"] = item.rating_count
        doc["aggregateRating"] = rating
    return doc


def product_feed(items: Iterable[Item], *, base_url: str = "") -> Iterator[dict[str, Any]]:
    """JSON-LD for every active item, streamed in chunks (availability from each item's own stock)."""
    chunk: list[Item] = []
    for it in active_items(items):
        chunk.append(it)
        if len(chunk) >= _CHUNK:
            yield from _chunk_docs(chunk, base_url)
            chunk = []
    if chunk:
        yield from _chunk_docs(chunk, base_url)


def in_stock_flags(items: Sequence[Item]) -> list[bool]:
    """Whether each item is available anywhere, by :meth:`CatalogSnapshot.in_stock` (any currency mix)."""
    bare = [replace(it, price=None, cost=None, map_price=None) for it in items]  # a snapshot holds one currency
    return [bool(x) for x in CatalogSnapshot.from_items(bare).in_stock().tolist()]


def _chunk_docs(items: Sequence[Item], base_url: str) -> Iterator[dict[str, Any]]:
    for it, ok in zip(items, in_stock_flags(items), strict=True):
        yield product_jsonld(it, in_stock=ok, base_url=base_url)


def _claims(doc: Mapping[str, Any]) -> dict[str, Any]:
    offers = doc.get("offers")
    offers = offers if isinstance(offers, Mapping) else {}
    brand = doc.get("brand")
    return {"name": doc.get("name"), "brand": brand.get("name") if isinstance(brand, Mapping) else brand,
            "offers.price": offers.get("price"), "offers.priceCurrency": offers.get("priceCurrency"),
            "offers.availability": offers.get("availability")}


def check_feed(feed: Iterable[Any], catalog: Iterable[Item]) -> list[Mismatch]:
    """Every claim of ``feed`` (JSON-LD Products) that ``catalog`` does not back: changed name, brand,
    price, currency or availability, unknown or inactive SKUs, repeated SKUs, malformed entries, and
    active catalog items the feed leaves out."""
    items = {it.item_id: it for it in catalog}
    truth = {doc["sku"]: _claims(doc) for doc in product_feed(items.values())}
    out: list[Mismatch] = []
    seen: set[str] = set()
    for n, doc in enumerate(feed):
        sku = doc.get("sku") if isinstance(doc, Mapping) else None
        if not isinstance(sku, str) or doc.get("@type") != "Product":
            out.append(Mismatch(None, f"feed[{n}]", doc if not isinstance(doc, Mapping) else doc.get("sku"), None,
                                "not a schema.org Product with a string sku"))
            continue
        if sku in seen:
            out.append(Mismatch(sku, "sku", sku, None, "the feed lists this SKU more than once"))
            continue
        seen.add(sku)
        if sku not in truth:
            why = "is inactive in the catalog" if sku in items else "is not in the catalog"
            out.append(Mismatch(sku, "sku", sku, None, f"the feed offers {sku!r}, which {why}"))
            continue
        for key, claimed in _claims(doc).items():
            actual = truth[sku][key]
            if claimed != actual:
                out.append(Mismatch(sku, key, claimed, actual, f"feed says {claimed!r}, catalog says {actual!r}"))
    out.extend(Mismatch(sku, "sku", None, sku, "an active catalog item is missing from the feed")
               for sku in truth if sku not in seen)
    return out
