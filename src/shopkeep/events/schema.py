"""The event wire format: strict parsing into :class:`~shopkeep.types.Event` and the canonical dict form.

Parsing is on the ingest hot path, so it is a table-driven walk over the raw keys (one checker per
field, one required-field tuple per type) with no per-event regular expressions.

>>> raw = {"event_id": "e-1", "type": "view", "timestamp": "2026-11-25T12:00:00Z",
...        "anonymous_id": "a-1", "item_id": "sku-9", "context": {"device": "mobile"}}
>>> ev = parse_event(raw)
>>> ev.type, ev.context.device
(<EventType.VIEW: 'view'>, 'mobile')
>>> event_to_dict(ev) == raw and parse_event(event_to_dict(ev)) == ev
True
>>> parse_event({**raw, "item_id": ""}, line=7)
Traceback (most recent call last):
...
shopkeep.errors.ValidationError: line 7: item_id='': must be a non-empty string of at most 256 characters
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shopkeep.errors import ValidationError
from shopkeep.types import Event, EventContext, EventType, Money, ReturnReason

__all__ = [
    "MAX_ID_LEN",
    "MAX_TEXT_LEN",
    "canonical_json",
    "clean_event",
    "clean_line",
    "event_from_clean",
    "event_time_ms",
    "event_to_dict",
    "format_timestamp",
    "iter_jsonl",
    "now_epoch_ms",
    "parse_event",
    "parse_events_jsonl",
    "parse_line",
]

MAX_ID_LEN = 256
MAX_TEXT_LEN = 4096
_INT_LIMIT = 2**53  # integers every JSON reader represents exactly
FUTURE_SLACK_MS = 86_400_000  # a clock may be a little ahead; a day ahead is a bug
DEFAULT_MAX_LINE_BYTES = 1_000_000

_TYPES: dict[str, EventType] = {t.value: t for t in EventType}
_REASONS: dict[str, ReturnReason] = {r.value: r for r in ReturnReason}
_ALLOWED_TYPES = ", ".join(_TYPES)
_ALLOWED_REASONS = ", ".join(_REASONS)
_CONTEXT_FIELDS = frozenset(EventContext.__slots__)  # type: ignore[attr-defined]

_ITEM = ("item_id",)
_REQUIRED: dict[EventType, tuple[str, ...]] = {t: () for t in EventType}
_REQUIRED.update({
    EventType.VIEW: _ITEM, EventType.CLICK: _ITEM, EventType.HOVER: _ITEM,
    EventType.ADD_TO_CART: _ITEM, EventType.REMOVE_FROM_CART: _ITEM, EventType.WISHLIST: _ITEM,
    EventType.DWELL: ("item_id", "dwell_ms"),
    EventType.IMPRESSION: ("item_id", "trace_id", "position"),
    EventType.FILTER: ("attribute", "value"),
    EventType.SEARCH: ("query",),
    EventType.PURCHASE: ("item_id", "order_id", "quantity"),
    EventType.RETURN: ("item_id", "reason"),
    EventType.LOGIN: ("user_id", "anonymous_id"),
    EventType.OFFER_SHOWN: ("offer_id",),
    EventType.OFFER_ACCEPTED: ("offer_id",),
})


def _id(name: str, value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_ID_LEN:
        raise ValidationError(name, value, f"must be a non-empty string of at most {MAX_ID_LEN} characters")
    return value


def _text(name: str, value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_TEXT_LEN:
        raise ValidationError(name, value, f"must be a non-empty string of at most {MAX_TEXT_LEN} characters")
    return value


def _int_min(low: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if type(value) is not int or not low <= value < _INT_LIMIT:  # type() refuses bool (an int subclass)
            raise ValidationError(name, value, f"must be an integer >= {low} (and < 2**53)")
        return value

    return check


def _type(name: str, value: Any) -> str:
    if type(value) is not str or value not in _TYPES:
        raise ValidationError(name, value, f"is not an event type; allowed: {_ALLOWED_TYPES}")
    return value


def _reason(name: str, value: Any) -> str:
    if type(value) is not str or value not in _REASONS:
        raise ValidationError(name, value, f"is not a return reason; allowed: {_ALLOWED_REASONS}")
    return value


def _to_datetime(name: str, value: Any) -> datetime:
    if type(value) is str:
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(name, value, "is not an ISO 8601 timestamp") from None
    elif isinstance(value, datetime):
        ts = value
    else:
        raise ValidationError(name, value, "must be an ISO 8601 string such as 2026-11-25T12:00:00Z")
    tz = ts.tzinfo
    if tz is not UTC:
        if tz is None or ts.utcoffset() is None:
            raise ValidationError(name, value, "must carry a UTC offset (e.g. a trailing Z)")
        ts = ts.astimezone(UTC)
    return ts


def _timestamp(name: str, value: Any) -> str:
    ts = _to_datetime(name, value)
    # The common wire shape "YYYY-MM-DDTHH:MM:SSZ" is already canonical once it parsed.
    if type(value) is str and len(value) == 20 and value[19] == "Z" and value[10] == "T":
        return value
    return format_timestamp(ts)


def _context(name: str, value: Any) -> dict[str, str]:
    if type(value) is not dict:
        raise ValidationError(name, value, "must be an object")
    fields = _CONTEXT_FIELDS
    for key, part in value.items():
        if key in fields and type(part) is str and 0 < len(part) <= MAX_ID_LEN:
            continue
        if key not in fields:
            raise ValidationError(f"{name}.{key}", part, f"is not a context field; allowed: {_CONTEXT_TEXT}")
        if part is not None:
            _id(f"{name}.{key}", part)
    if None in value.values():
        return {key: part for key, part in value.items() if part is not None}
    return value


def _price(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"amount", "currency"})
        if extra:
            raise ValidationError(f"{name}.{extra[0]}", value[extra[0]], "is not a price field (amount, currency)")
    money = Money.parse(value, field=name)
    if abs(money.amount) >= _INT_LIMIT:
        raise ValidationError(f"{name}.amount", money.amount, "is out of range (|amount| < 2**53)")
    return money.to_dict()


_CHECKERS: dict[str, Callable[[str, Any], Any]] = {
    "event_id": _id, "type": _type, "timestamp": _timestamp, "anonymous_id": _id, "user_id": _id,
    "session_id": _id, "item_id": _id, "context": _context, "trace_id": _id, "position": _int_min(0),
    "dwell_ms": _int_min(0), "attribute": _text, "value": _text, "query": _text, "order_id": _id,
    "quantity": _int_min(1), "price": _price, "reason": _reason, "note": _text, "offer_id": _id, "channel": _id,
}
_FIELDS_TEXT = ", ".join(_CHECKERS)
_ID_FIELDS = frozenset(k for k, check in _CHECKERS.items() if check is _id)
_CONTEXT_TEXT = ", ".join(EventContext.__slots__)  # type: ignore[attr-defined]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SORTED = orjson.OPT_SORT_KEYS


def now_epoch_ms() -> int:
    """The current time in epoch milliseconds."""
    return (datetime.now(UTC) - _EPOCH) // _MS


def clean_event(
    raw: Mapping[str, Any], *, line: int | None = None, now_ms: int | None = None, owned: bool = False
) -> tuple[dict[str, Any], int]:
    """Validate one wire-format event; return its canonical wire dict and its event time in epoch ms.

    This is the ingest fast path: it builds no :class:`Event`. ``owned=True`` lets it normalize a
    plain dict in place instead of copying it. Errors name the field, value (and line).
    """
    if type(raw) is not dict:
        if not isinstance(raw, Mapping):
            raise ValidationError("event", type(raw).__name__, "must be a JSON object", line=line)
        raw, owned = dict(raw), True
    try:
        return _clean(raw if owned else dict(raw), now_ms)
    except ValidationError as exc:
        if line is None:
            raise
        raise ValidationError(exc.field, exc.value, exc.reason, line=line) from None


def _clean(clean: dict[str, Any], now_ms: int | None) -> tuple[dict[str, Any], int]:
    checkers = _CHECKERS
    ids = _ID_FIELDS
    nones = None
    for key, value in clean.items():
        if key in ids and type(value) is str and 0 < len(value) <= MAX_ID_LEN:
            continue  # the common case, checked inline
        check = checkers.get(key)
        if check is None:
            raise ValidationError(str(key), value, f"is not an event field; allowed: {_FIELDS_TEXT}")
        if value is None:
            nones = [*(nones or ()), key]
            continue
        new = check(key, value)
        if new is not value:
            clean[key] = new
    if nones:
        for key in nones:
            del clean[key]
    if "event_id" not in clean or "type" not in clean or "timestamp" not in clean:
        for name in ("event_id", "type", "timestamp"):
            if name not in clean:
                raise ValidationError(name, None, "is required")
    if "anonymous_id" not in clean and "user_id" not in clean:
        raise ValidationError("anonymous_id", None, "is required when user_id is absent (one of them must be set)")
    kind = clean["type"]
    for name in _REQUIRED[kind]:
        if name not in clean:
            raise ValidationError(name, None, f"is required for {kind} events")
    if "context" in clean and not clean["context"]:
        del clean["context"]
    ts_ms = (datetime.fromisoformat(clean["timestamp"]) - _EPOCH) // _MS
    if ts_ms > (now_epoch_ms() if now_ms is None else now_ms) + FUTURE_SLACK_MS:
        raise ValidationError("timestamp", clean["timestamp"], "is more than a day in the future")
    return clean, ts_ms


def event_from_clean(clean: Mapping[str, Any]) -> Event:
    """The :class:`Event` of a canonical wire dict (as returned by :func:`clean_event`)."""
    kwargs = dict(clean)
    kwargs["type"] = _TYPES[clean["type"]]
    kwargs["timestamp"] = datetime.fromisoformat(clean["timestamp"])
    if "context" in clean:
        kwargs["context"] = EventContext(**clean["context"])
    if "price" in clean:
        kwargs["price"] = Money(clean["price"]["amount"], clean["price"]["currency"])
    if "reason" in clean:
        kwargs["reason"] = _REASONS[clean["reason"]]
    return Event(**kwargs)


def parse_event(raw: Mapping[str, Any], *, line: int | None = None, now_ms: int | None = None) -> Event:
    """Validate one wire-format event and return it; :class:`ValidationError` names field, value (and line).

    ``now_ms`` (epoch ms, default: the clock) bounds the timestamp: more than a day ahead is refused.
    """
    return event_from_clean(clean_event(raw, line=line, now_ms=now_ms)[0])


def canonical_json(clean: Mapping[str, Any]) -> str:
    """Compact JSON with sorted keys: equal events give equal text (the log's idempotency payload)."""
    try:
        return orjson.dumps(clean, option=_SORTED).decode()
    except TypeError as exc:  # lone surrogates, integers beyond 64 bits, non-JSON values
        raise ValidationError("event", clean.get("event_id"), f"is not JSON-serializable: {exc}") from None


def event_time_ms(event: Event) -> int:
    """The event time in epoch milliseconds (floored, exact)."""
    return (event.timestamp - _EPOCH) // _MS


def format_timestamp(ts: datetime) -> str:
    """Canonical text of an aware timestamp: UTC, ``Z`` suffix, microseconds only when non-zero.

    >>> format_timestamp(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    '2026-11-25T12:00:00Z'
    """
    text = ts.astimezone(UTC).isoformat() if ts.tzinfo is not UTC else ts.isoformat()
    return text[:-6] + "Z"


_PLAIN = ("anonymous_id", "user_id", "session_id", "item_id", "trace_id", "position", "dwell_ms",
          "attribute", "value", "query", "order_id", "quantity", "note", "offer_id", "channel")
_CONTEXT_ORDER = tuple(EventContext.__slots__)  # type: ignore[attr-defined]


def event_to_dict(event: Event) -> dict[str, Any]:
    """The canonical wire form: absent values omitted, timestamp in UTC with ``Z``, enums as strings."""
    out: dict[str, Any] = {
        "event_id": event.event_id, "type": event.type.value, "timestamp": format_timestamp(event.timestamp),
    }
    for name in _PLAIN:
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    if event.price is not None:
        out["price"] = event.price.to_dict()
    if event.reason is not None:
        out["reason"] = event.reason.value
    ctx = event.context
    context = {name: part for name in _CONTEXT_ORDER if (part := getattr(ctx, name)) is not None}
    if context:
        out["context"] = context
    return out


def clean_line(
    raw_line: bytes | str, line: int, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, now_ms: int | None = None
) -> tuple[dict[str, Any], int] | None:
    """Validate one JSONL line into ``(canonical dict, event ms)``; ``None`` for a blank line.

    Errors carry ``line``: too long, not UTF-8, not JSON, nested too deeply, not an object, or any
    schema error of :func:`clean_event`.
    """
    if len(raw_line) > max_line_bytes:
        raise ValidationError("line", f"<{len(raw_line)} bytes>", f"is longer than {max_line_bytes} bytes", line=line)
    try:
        raw = orjson.loads(raw_line)
    except orjson.JSONDecodeError as exc:
        if not raw_line.strip():
            return None
        raise _json_error(raw_line, line, exc) from None
    if type(raw) is not dict:
        raise ValidationError("line", _text_of(raw_line), "must be a JSON object", line=line)
    return clean_event(raw, line=line, now_ms=now_ms, owned=True)


def _text_of(raw_line: bytes | str) -> str:
    return raw_line if isinstance(raw_line, str) else raw_line.decode("utf-8", "replace")


def _json_error(raw_line: bytes | str, line: int, exc: orjson.JSONDecodeError) -> ValidationError:
    """The error for a line orjson refused: not UTF-8, not JSON, nested too deeply (or a blank line: None)."""
    if isinstance(raw_line, bytes):
        try:
            raw_line.decode("utf-8")
        except UnicodeDecodeError as bad:
            return ValidationError("line", raw_line[max(0, bad.start - 20): bad.start + 20],
                                   f"is not valid UTF-8 (byte {bad.start})", line=line)
    text = _text_of(raw_line)
    if "depth" in exc.msg or "recursion" in exc.msg:
        return ValidationError("line", text, "is nested too deeply", line=line)
    return ValidationError("line", text, f"is not valid JSON: {exc.msg} at column {exc.colno}", line=line)


def parse_line(
    raw_line: bytes | str, line: int, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, now_ms: int | None = None
) -> Event | None:
    """Parse one JSONL line into an :class:`Event` (``None`` for a blank line); errors carry ``line``."""
    found = clean_line(raw_line, line, max_line_bytes=max_line_bytes, now_ms=now_ms)
    return None if found is None else event_from_clean(found[0])


def iter_jsonl(source: bytes | Iterable[bytes | str]) -> Iterable[bytes | str]:
    """The lines of ``source``: a bytes blob split on newlines, or any iterable of lines as given."""
    if isinstance(source, bytes | bytearray):
        return bytes(source).split(b"\n")
    return source


def parse_events_jsonl(
    source: bytes | Iterable[bytes | str],
    *,
    start_line: int = 1,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    now_ms: int | None = None,
) -> tuple[list[Event], list[ValidationError]]:
    """Parse JSONL (bytes, or an iterable of lines); return the good events and one error per bad line.

    Blank lines are skipped. Line numbers start at ``start_line``.

    >>> events, errors = parse_events_jsonl(b'{"event_id": "e1"}\\n{oops}\\n')
    >>> for e in errors: print(e)
    line 1: type=None: is required
    line 2: line='{oops}': is not valid JSON: unexpected character, expected a string key at column 2
    """
    if now_ms is None:
        now_ms = now_epoch_ms()
    events: list[Event] = []
    errors: list[ValidationError] = []
    for number, raw_line in enumerate(iter_jsonl(source), start_line):
        try:
            found = clean_line(raw_line, number, max_line_bytes=max_line_bytes, now_ms=now_ms)
        except ValidationError as exc:
            errors.append(exc)
            continue
        if found is not None:
            events.append(event_from_clean(found[0]))
    return events, errors
