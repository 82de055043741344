"""Strict event parsing: every rule with bad inputs, errors naming field, value and line; round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeep.errors import ValidationError
from shopkeep.events.schema import (
    canonical_json,
    clean_event,
    clean_line,
    event_to_dict,
    parse_event,
    parse_events_jsonl,
)
from shopkeep.types import EventType, Money, ReturnReason

BASE = {"event_id": "e-1", "timestamp": "2026-11-25T12:00:00Z", "anonymous_id": "a-1"}
NOW_MS = int(datetime(2026, 11, 26, tzinfo=UTC).timestamp() * 1000)

VALID: dict[str, dict[str, Any]] = {
    "impression": {"item_id": "i", "trace_id": "t", "position": 0},
    "view": {"item_id": "i"}, "click": {"item_id": "i"}, "hover": {"item_id": "i"},
    "dwell": {"item_id": "i", "dwell_ms": 0},
    "filter": {"attribute": "fragrance_free", "value": "true"},
    "search": {"query": "red lipstick"},
    "add_to_cart": {"item_id": "i"}, "remove_from_cart": {"item_id": "i"}, "wishlist": {"item_id": "i"},
    "checkout_started": {},
    "purchase": {"item_id": "i", "order_id": "o", "quantity": 1, "price": {"amount": 2499, "currency": "usd"}},
    "return": {"item_id": "i", "reason": "too_small", "note": "runs small"},
    "offer_shown": {"offer_id": "o1"}, "offer_accepted": {"offer_id": "o1"},
    "message_opened": {"channel": "email"},
    "login": {"user_id": "u-1"},
}


def ev(kind: str, **extra: Any) -> dict[str, Any]:
    return {**BASE, "type": kind, **VALID[kind], **extra}


def bad(raw: Any, *, line: int | None = None) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_event(raw, line=line, now_ms=NOW_MS)
    return info.value


def test_every_type_in_the_table() -> None:
    assert set(VALID) == {t.value for t in EventType}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_events_parse_and_round_trip(kind: str) -> None:
    event = parse_event(ev(kind, context={"device": "mobile", "store": "store-12"}), now_ms=NOW_MS)
    assert event.type is EventType(kind)
    assert event.timestamp == datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_event(event_to_dict(event), now_ms=NOW_MS) == event


def test_the_brief_example() -> None:
    raw = {"event_id": "e-125", "type": "filter", "timestamp": "2026-11-25T12:00:00Z", "anonymous_id": "a-31",
           "session_id": "s-9", "user_id": "u-7", "attribute": "fragrance_free", "value": "true",
           "context": {"device": "mobile", "channel": "web", "store": "store-12", "campaign": "spring"}}
    event = parse_event(raw, now_ms=NOW_MS)
    assert (event.session_id, event.user_id, event.context.campaign) == ("s-9", "u-7", "spring")
    assert event_to_dict(event) == raw


def test_values_are_normalized() -> None:
    event = parse_event(ev("purchase", timestamp="2026-11-25T14:00:00.250+02:00"), now_ms=NOW_MS)
    assert event.price == Money(2499, "USD")
    assert event.timestamp == datetime(2026, 11, 25, 12, 0, 0, 250000, tzinfo=UTC)
    assert event_to_dict(event)["timestamp"] == "2026-11-25T12:00:00.250000Z"
    assert parse_event(ev("return"), now_ms=NOW_MS).reason is ReturnReason.TOO_SMALL


def test_null_values_count_as_absent() -> None:
    event = parse_event(ev("view", user_id=None, context={"device": None}), now_ms=NOW_MS)
    assert event.user_id is None and event.context.device is None
    assert "user_id" not in event_to_dict(event) and "context" not in event_to_dict(event)


def test_equivalent_spellings_have_one_canonical_payload() -> None:
    a = clean_event(ev("view"), now_ms=NOW_MS)[0]
    b = clean_event(dict(reversed(list(ev("view", timestamp="2026-11-25T13:00:00+01:00").items()))),
                    now_ms=NOW_MS)[0]
    assert canonical_json(a) == canonical_json(b)


@pytest.mark.parametrize("name", ["event_id", "type", "timestamp"])
def test_required_fields(name: str) -> None:
    raw = ev("view")
    del raw[name]
    err = bad(raw, line=4)
    assert (err.field, err.value, err.line) == (name, None, 4)
    assert str(err).startswith(f"line 4: {name}=None")


def test_one_of_anonymous_or_user_id() -> None:
    raw = ev("view")
    del raw["anonymous_id"]
    assert bad(raw).field == "anonymous_id"
    assert parse_event({**raw, "user_id": "u-1"}, now_ms=NOW_MS).user_id == "u-1"


@pytest.mark.parametrize(("kind", "missing"), [
    ("view", "item_id"), ("click", "item_id"), ("hover", "item_id"), ("dwell", "item_id"), ("dwell", "dwell_ms"),
    ("add_to_cart", "item_id"), ("remove_from_cart", "item_id"), ("wishlist", "item_id"),
    ("purchase", "item_id"), ("purchase", "order_id"), ("purchase", "quantity"), ("return", "item_id"),
    ("return", "reason"), ("impression", "trace_id"), ("impression", "position"), ("impression", "item_id"),
    ("filter", "attribute"), ("filter", "value"), ("search", "query"), ("login", "user_id"),
])
def test_per_type_required_fields(kind: str, missing: str) -> None:
    raw = ev(kind)
    del raw[missing]
    err = bad(raw)
    assert err.field == missing and kind in err.reason


def test_login_needs_the_anonymous_id_too() -> None:
    raw = ev("login")
    del raw["anonymous_id"]
    assert bad(raw).field == "anonymous_id"


def test_unknown_type_lists_the_allowed_ones() -> None:
    err = bad(ev("view", type="teleport"))
    assert err.field == "type" and err.value == "teleport"
    assert "add_to_cart" in err.reason and "login" in err.reason


def test_unknown_fields_are_named() -> None:
    err = bad(ev("view", colour="red"))
    assert (err.field, err.value) == ("colour", "red")
    err = bad(ev("view", context={"device": "mobile", "planet": "mars"}))
    assert (err.field, err.value) == ("context.planet", "mars")
    err = bad(ev("purchase", price={"amount": 1, "currency": "USD", "tax": 2}))
    assert err.field == "price.tax"


@pytest.mark.parametrize(("field", "value"), [
    ("quantity", 0), ("quantity", -2), ("quantity", True), ("quantity", 1.0), ("quantity", "1"),
    ("position", -1), ("position", False), ("dwell_ms", -5), ("dwell_ms", 2.5),
    ("item_id", ""), ("item_id", 7), ("item_id", "x" * 257), ("order_id", None),
    ("price", 24.99), ("price", {"amount": 24.99, "currency": "USD"}), ("price", {"amount": 1, "currency": "DOLLAR"}),
    ("reason", "meh"), ("reason", 1), ("context", "mobile"), ("context", {"device": 3}),
    ("event_id", ["e"]), ("timestamp", 1764072000), ("timestamp", "yesterday"), ("query", ""),
])
def test_wrong_types_and_ranges_name_field_and_value(field: str, value: Any) -> None:
    kind = {"position": "impression", "dwell_ms": "dwell", "reason": "return", "query": "search"}.get(field, "purchase")
    err = bad(ev(kind, **{field: value}), line=12)
    assert err.field.split(".")[0] == field
    assert err.line == 12
    if field != "price" and not isinstance(value, dict):
        assert err.value == value or (isinstance(value, str) and len(value) > 120)


def test_naive_timestamps_are_refused() -> None:
    err = bad(ev("view", timestamp="2026-11-25T12:00:00"))
    assert err.field == "timestamp" and "offset" in err.reason


def test_future_timestamps_are_refused() -> None:
    ahead = datetime.fromtimestamp(NOW_MS / 1000, UTC) + timedelta(days=2)
    err = bad(ev("view", timestamp=ahead.strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert err.field == "timestamp" and "future" in err.reason
    soon = datetime.fromtimestamp(NOW_MS / 1000, UTC) + timedelta(hours=23)
    assert parse_event(ev("view", timestamp=soon.strftime("%Y-%m-%dT%H:%M:%SZ")), now_ms=NOW_MS)


def test_other_offsets_are_converted_to_utc() -> None:
    event = parse_event(ev("view", timestamp="2026-11-25T07:00:00-05:00"), now_ms=NOW_MS)
    assert event.timestamp == datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC or event.timestamp.utcoffset() == UTC.utcoffset(None)


def test_not_an_object() -> None:
    assert bad(["e-1"]).field == "event"


def test_jsonl_errors_per_line() -> None:
    good = json.dumps(ev("view")).encode()
    blob = b"\n".join([
        good,
        b"{not json",
        b"",
        b"\xff\xfe bad bytes",
        b"[1, 2]",
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(ev("view", event_id="e-2", quantity=-1)).encode(),
        b"x" * 2000,
        json.dumps(ev("view", event_id="e-3")).encode(),
    ])
    events, errors = parse_events_jsonl(blob, max_line_bytes=1500, now_ms=NOW_MS)
    assert [e.event_id for e in events] == ["e-1", "e-3"]
    by_line = {e.line: e for e in errors}
    assert sorted(by_line) == [2, 4, 5, 6, 7, 8]
    assert "not valid JSON" in by_line[2].reason
    assert "UTF-8" in by_line[4].reason and by_line[4].value.startswith(b"\xff")
    assert "JSON object" in by_line[5].reason
    assert "longer than 1500 bytes" in by_line[6].reason or "nested too deeply" in by_line[6].reason
    assert by_line[7].field == "quantity" and by_line[7].value == -1
    assert "longer than 1500 bytes" in by_line[8].reason
    assert len(str(by_line[8])) < 300  # the huge value is not echoed back


def test_deep_nesting_within_the_size_limit_is_reported() -> None:
    with pytest.raises(ValidationError) as info:
        clean_line(b"[" * 200_000 + b"]" * 200_000, 3, max_line_bytes=10**6)
    assert info.value.line == 3 and "nested too deeply" in info.value.reason


def test_deep_nesting_inside_a_field() -> None:
    raw = ev("view", context={"device": {"a": {"b": {"c": 1}}}})
    assert bad(raw).field == "context.device"


def test_jsonl_from_text_lines() -> None:
    events, errors = parse_events_jsonl([json.dumps(ev("view")), "  ", '{"type": "view"}'], now_ms=NOW_MS)
    assert len(events) == 1 and [e.line for e in errors] == [3]


ids = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_categories=("Cs",)), min_size=1,
              max_size=20)


@given(
    kind=st.sampled_from(sorted(VALID)), event_id=ids, anon=ids,
    ts=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2026, 11, 1), timezones=st.just(UTC)),
    device=st.none() | ids,
)
def test_round_trip_property(kind: str, event_id: str, anon: str, ts: datetime, device: str | None) -> None:
    raw = ev(kind, event_id=event_id, anonymous_id=anon, timestamp=ts.isoformat(), context={"device": device})
    event = parse_event(raw, now_ms=NOW_MS)
    assert parse_event(event_to_dict(event), now_ms=NOW_MS) == event
    assert canonical_json(event_to_dict(event)) == canonical_json(clean_event(raw, now_ms=NOW_MS)[0])


def test_values_json_cannot_carry_are_refused() -> None:
    err = bad(ev("purchase", quantity=2**70))
    assert err.field == "quantity"
    err = bad(ev("purchase", price={"amount": 2**60, "currency": "USD"}))
    assert err.field == "price.amount"
    clean, _ = clean_event(ev("view", item_id="bad\ud800"), now_ms=NOW_MS)  # a lone surrogate
    with pytest.raises(ValidationError) as info:
        canonical_json(clean)
    assert info.value.field == "event" and info.value.value == "e-1"
    _, errors = parse_events_jsonl(b'{"event_id": "e\\ud800"}\n', now_ms=NOW_MS)
    assert errors[0].line == 1 and "JSON" in errors[0].reason
