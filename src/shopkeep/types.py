"""Core value types shared by every layer: ids, Money, UTC timestamps, Item and Event.

Conventions (shared/ARCHITECTURE.md): ids are strings at the edges; money is integer minor units plus
an ISO 4217 currency code, never a float; timestamps are timezone-aware UTC.

>>> Money(2499, "USD") + Money(1, "USD")
Money(amount=2500, currency='USD')
>>> Money.parse({"amount": 2499, "currency": "usd"}).format()
'24.99 USD'
>>> parse_timestamp("2026-11-25T12:00:00Z").isoformat()
'2026-11-25T12:00:00+00:00'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias, TypeVar, overload

from shopkeep.errors import ConflictError, ValidationError

__all__ = [
    "AttributeValue",
    "Event",
    "EventContext",
    "EventType",
    "FulfillmentOption",
    "IndexedSequence",
    "Item",
    "Money",
    "ReturnReason",
    "parse_timestamp",
    "to_epoch_ms",
    "utc_now",
]

ItemId: TypeAlias = str
UserId: TypeAlias = str
SessionId: TypeAlias = str
EventId: TypeAlias = str

#: A typed attribute value: string, number, boolean, or a list of strings.
AttributeValue: TypeAlias = str | int | float | bool | tuple[str, ...]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Minor-unit exponents that differ from 2 (ISO 4217); everything else is cents.
_EXPONENT = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "JOD": 3, "TND": 3}


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount of money in integer minor units (cents) of an ISO 4217 currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValidationError("amount", self.amount, "must be an integer number of minor units")
        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise ValidationError("currency", self.currency, "must be a 3-letter ISO 4217 code")

    @classmethod
    def parse(cls, raw: Any, *, field: str = "price", default_currency: str | None = None) -> Money:
        """Build Money from ``{"amount": int, "currency": "USD"}`` (currency case-insensitive).

        Raises :class:`ValidationError` naming ``field`` for anything else (floats included: a
        price of 24.99 is ambiguous, 2499 is not).
        """
        if isinstance(raw, Money):
            return raw
        if not isinstance(raw, Mapping):
            raise ValidationError(field, raw, 'must be an object {"amount": <minor units>, "currency": "USD"}')
        amount = raw.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValidationError(f"{field}.amount", amount, "must be an integer number of minor units")
        currency = raw.get("currency", default_currency)
        if not isinstance(currency, str) or not _CURRENCY.match(currency.upper()):
            raise ValidationError(f"{field}.currency", currency, "must be a 3-letter ISO 4217 code")
        return cls(amount, currency.upper())

    @classmethod
    def from_major(cls, value: float | str, currency: str) -> Money:
        """Convert a decimal amount in major units ("24.99") to Money, rounding half away from zero."""
        exp = _EXPONENT.get(currency.upper(), 2)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValidationError("price", value, "is not a number") from None
        if not math.isfinite(number):
            raise ValidationError("price", value, "must be finite")
        scaled = abs(number) * 10**exp
        units = math.floor(scaled + 0.5 + 1e-9)
        return cls(units if number >= 0 else -units, currency.upper())

    def to_dict(self) -> dict[str, Any]:
        """Wire form: ``{"amount": <int>, "currency": "USD"}``."""
        return {"amount": self.amount, "currency": self.currency}

    def to_major(self) -> float:
        """The amount in major units as a float, for estimation code only (never for storage)."""
        return float(self.amount) / float(10 ** _EXPONENT.get(self.currency, 2))

    def format(self) -> str:
        """Human form, e.g. ``'24.99 USD'``."""
        exp = _EXPONENT.get(self.currency, 2)
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**exp)
        return f"{sign}{whole}.{frac:0{exp}d} {self.currency}" if exp else f"{sign}{whole} {self.currency}"

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ConflictError(
                f"cannot combine {self.currency} with {other.currency}",
                {"currencies": [self.currency, other.currency]},
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise ValidationError("factor", factor, "Money multiplies only by integers")
        return Money(self.amount * factor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def parse_timestamp(raw: Any, *, field: str = "timestamp") -> datetime:
    """Parse an ISO 8601 timestamp with an explicit offset (``Z`` allowed) into aware UTC.

    Naive timestamps are refused: guessing a zone silently corrupts event order.
    """
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(field, raw, "is not an ISO 8601 timestamp") from None
    else:
        raise ValidationError(field, raw, "must be an ISO 8601 string such as 2026-11-25T12:00:00Z")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, raw, "must carry a UTC offset (e.g. a trailing Z)")
    return value.astimezone(UTC)


def to_epoch_ms(ts: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime."""
    return int(ts.timestamp() * 1000)


class EventType(StrEnum):
    """Every shopper event type the engine accepts."""

    IMPRESSION = "impression"
    VIEW = "view"
    CLICK = "click"
    HOVER = "hover"
    DWELL = "dwell"
    FILTER = "filter"
    SEARCH = "search"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    WISHLIST = "wishlist"
    CHECKOUT_STARTED = "checkout_started"
    PURCHASE = "purchase"
    RETURN = "return"
    OFFER_SHOWN = "offer_shown"
    OFFER_ACCEPTED = "offer_accepted"
    MESSAGE_OPENED = "message_opened"
    LOGIN = "login"


class ReturnReason(StrEnum):
    """The fixed list of return reasons."""

    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"
    NOT_AS_DESCRIBED = "not_as_described"
    DAMAGED = "damaged"
    CHANGED_MIND = "changed_mind"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class EventContext:
    """Where an event happened. Every field is optional."""

    device: str | None = None
    channel: str | None = None
    referrer: str | None = None
    campaign: str | None = None
    geo: str | None = None
    store: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One shopper event, validated. ``session_id`` is filled by sessionization when absent."""

    event_id: str
    type: EventType
    timestamp: datetime
    anonymous_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    item_id: str | None = None
    context: EventContext = field(default_factory=EventContext)
    trace_id: str | None = None
    position: int | None = None
    dwell_ms: int | None = None
    attribute: str | None = None
    value: str | None = None
    query: str | None = None
    order_id: str | None = None
    quantity: int | None = None
    price: Money | None = None
    reason: ReturnReason | None = None
    note: str | None = None
    offer_id: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class FulfillmentOption:
    """How an item can reach the shopper: ``ship`` (with SLA days) or ``pickup`` at a store."""

    kind: str
    location: str | None = None
    sla_days: int | None = None
    same_day: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    """A sellable catalog item (one SKU). ``group_id`` ties variants (shades, sizes) of one product."""

    item_id: str
    title: str
    group_id: str | None = None
    description: str = ""
    brand: str | None = None
    vendor: str | None = None
    category: tuple[str, ...] = ()
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    rating_avg: float | None = None
    rating_count: int = 0
    price: Money | None = None
    cost: Money | None = None
    map_price: Money | None = None
    margin_class: str | None = None
    regulated_class: str | None = None
    regulated_regions: tuple[str, ...] = ()
    inventory: Mapping[str, int] = field(default_factory=dict)
    fulfillment: tuple[FulfillmentOption, ...] = ()
    image_vector: tuple[float, ...] | None = None
    created_at: datetime | None = None
    active: bool = True

    @property
    def currency(self) -> str | None:
        """The currency of the item's price, if priced."""
        return self.price.currency if self.price else None


_T = TypeVar("_T")


class IndexedSequence(Sequence[_T]):
    """A read-only sequence whose elements are built on access by :meth:`_at` (arrays behind, objects out).

    Subclasses define ``__len__`` and ``_at(j)`` for ``0 <= j < len(self)``; this class adds negative
    indices, slices (a list) and iteration.
    """

    def _at(self, j: int) -> _T:
        """Element ``j`` (``0 <= j < len(self)``)."""
        raise NotImplementedError

    @overload
    def __getitem__(self, j: int) -> _T: ...
    @overload
    def __getitem__(self, j: slice) -> list[_T]: ...
    def __getitem__(self, j: int | slice) -> _T | list[_T]:
        if isinstance(j, slice):
            return [self._at(n) for n in range(*j.indices(len(self)))]
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(j)
        return self._at(j)

    def __iter__(self) -> Iterator[_T]:
        return (self._at(j) for j in range(len(self)))
