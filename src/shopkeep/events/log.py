"""The event log and the served-slate log on top of a :class:`~shopkeep.storage.base.Store`.

Events go to log ``events``: key = event_id, ts_ms = event time, partition = the session run label
(or the client's session_id), payload = the canonical JSON of the event *as sent* (so a replayed
event is a duplicate whatever session it would be put in now, and a changed payload is a conflict).
Sessionized events carry no session_id in their payload; reads fill it with the session id computed
from the current runs (see :mod:`shopkeep.events.sessions`).

Served slates go to log ``slates``: key = partition = trace_id, so a slate is read back by trace id,
and impressions/clicks are joined to the slate that produced them with :func:`join_impressions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shopkeep.errors import ValidationError
from shopkeep.events.schema import (
    canonical_json,
    event_from_clean,
    event_time_ms,
    event_to_dict,
    format_timestamp,
)
from shopkeep.events.sessions import COLLECTION, SessionState, chains
from shopkeep.storage.base import AppendResult, LogRecord, Store
from shopkeep.types import Event, EventType, parse_timestamp

__all__ = [
    "EVENTS_LOG",
    "SLATES_LOG",
    "ImpressionJoin",
    "SlateRecord",
    "append_slates",
    "event_payload",
    "event_record",
    "events_of_session",
    "events_of_user",
    "join_impressions",
    "read_partition",
    "read_slates",
]

EVENTS_LOG = "events"
SLATES_LOG = "slates"
_PAGE = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def event_payload(event: Event) -> str:
    """The canonical payload of an event: compact JSON of :func:`event_to_dict` with sorted keys."""
    return canonical_json(event_to_dict(event))


def event_record(event: Event, partition: str) -> LogRecord:
    """The log record of an event stored under ``partition``."""
    return LogRecord(event.event_id, event_time_ms(event), event_payload(event), partition)


def read_partition(store: Store, log: str, partition: str) -> list[LogRecord]:
    """Every record of one partition of ``log``, in append order."""
    out: list[LogRecord] = []
    after = 0
    while True:
        page = store.read(log, after_seq=after, k=_PAGE, partition=partition)
        out.extend(page)
        if len(page) < _PAGE:
            return out
        after = page[-1].seq


def _decode(record: LogRecord, session_id: str | None) -> Event:
    clean = orjson.loads(record.payload)
    if session_id is not None and "session_id" not in clean:
        clean["session_id"] = session_id
    return event_from_clean(clean)


def _label_sessions(ident: str, state: SessionState, gap_ms: int) -> dict[str, str]:
    return {label: s.session_id for s in chains(ident, state.runs, gap_ms) for label in s.labels}


def _collect(store: Store, partitions: Iterable[str], labels: Mapping[str, str]) -> list[tuple[int, str, Event]]:
    seen: dict[str, tuple[int, str, Event]] = {}
    for part in dict.fromkeys(partitions):
        for rec in read_partition(store, EVENTS_LOG, part):
            if rec.key not in seen:
                seen[rec.key] = (rec.ts_ms, rec.key, _decode(rec, labels.get(part)))
    return sorted(seen.values(), key=lambda t: (t[0], t[1]))


def events_of_session(store: Store, session_id: str, *, timeout_s: int = 1800) -> list[Event]:
    """Events of one session in event-time order (ties by event_id); late events sit at their time.

    ``session_id`` is a computed session id (``<anonymous_id>:<ms>``) or a client-given one.
    """
    ident, _, _ = session_id.rpartition(":")
    keys = [f"a:{ident}", f"u:{ident}"] if ident else []
    docs = store.get_many(COLLECTION, keys) if keys else {}
    labels: dict[str, str] = {}
    for key in keys:
        state = SessionState.from_doc(docs.get(key))
        for s in chains(ident, state.runs, timeout_s * 1000):
            if s.session_id == session_id:
                labels.update(dict.fromkeys(s.labels, session_id))
    parts = [*labels, session_id]
    return [ev for _, _, ev in _collect(store, parts, labels)]


def events_of_user(
    store: Store, user_id: str, anonymous_ids: Iterable[str] = (), *, timeout_s: int = 1800
) -> list[Event]:
    """Events of a user in event-time order: those carrying ``user_id`` and those of ``anonymous_ids``
    (the anonymous ids linked to the user, resolved by the caller through the identity graph)."""
    anons = set(anonymous_ids)
    keys = [f"u:{user_id}", *(f"a:{a}" for a in sorted(anons))]
    docs = store.get_many(COLLECTION, keys)
    labels: dict[str, str] = {}
    parts: list[str] = []
    for key in keys:
        state = SessionState.from_doc(docs.get(key))
        labels.update(_label_sessions(key[2:], state, timeout_s * 1000))
        parts.extend(r[0] for r in state.runs)
        parts.extend(state.parts)
    return [
        ev for _, _, ev in _collect(store, parts, labels)
        if ev.user_id == user_id or (ev.anonymous_id is not None and ev.anonymous_id in anons)
    ]


@dataclass(frozen=True, slots=True)
class SlateRecord:
    """A served slate: what was shown, where, to whom, why (sources) and with what propensities.

    ``positions[i]`` is the 0-based position of ``items[i]``; ``propensities[i]`` the probability the
    policy had of putting it there; ``features`` whatever the ranker logged (JSON-serializable).
    """

    trace_id: str
    surface: str
    user_id: str | None
    anonymous_id: str | None
    session_id: str | None
    items: tuple[str, ...]
    positions: tuple[int, ...]
    sources: tuple[str, ...]
    propensities: tuple[float, ...]
    features: Mapping[str, Any]
    ts: datetime

    def __post_init__(self) -> None:
        for name in ("trace_id", "surface"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValidationError(name, getattr(self, name), "must be a non-empty string")
        n = len(self.items)
        for name in ("positions", "sources", "propensities"):
            if len(getattr(self, name)) != n:
                raise ValidationError(name, getattr(self, name), f"must have one entry per item ({n})")
        for p in self.propensities:
            if not 0.0 <= p <= 1.0:
                raise ValidationError("propensities", p, "must be probabilities in [0, 1]")
        if not isinstance(self.ts, datetime) or self.ts.tzinfo is None:
            raise ValidationError("ts", self.ts, "must be a timezone-aware datetime")
        if self.anonymous_id is None and self.user_id is None:
            raise ValidationError("anonymous_id", None, "is required when user_id is absent")

    def to_dict(self) -> dict[str, Any]:
        """The wire/log form."""
        return {
            "trace_id": self.trace_id, "surface": self.surface, "user_id": self.user_id,
            "anonymous_id": self.anonymous_id, "session_id": self.session_id, "items": list(self.items),
            "positions": list(self.positions), "sources": list(self.sources),
            "propensities": list(self.propensities), "features": dict(self.features),
            "ts": format_timestamp(self.ts),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SlateRecord:
        """Inverse of :meth:`to_dict`."""
        ts = parse_timestamp(raw["ts"], field="ts")
        return cls(
            raw["trace_id"], raw["surface"], raw.get("user_id"), raw.get("anonymous_id"), raw.get("session_id"),
            tuple(raw["items"]), tuple(raw["positions"]), tuple(raw["sources"]),
            tuple(float(p) for p in raw["propensities"]), dict(raw.get("features") or {}), ts,
        )


def append_slates(store: Store, slates: Sequence[SlateRecord]) -> AppendResult:
    """Append served slates to log ``slates`` (idempotent by trace_id; a different slate is a conflict)."""
    records = [
        LogRecord(s.trace_id, (s.ts - _EPOCH) // _MS, canonical_json(s.to_dict()), s.trace_id) for s in slates
    ]
    return store.append(SLATES_LOG, records)


def read_slates(store: Store, trace_ids: Iterable[str]) -> dict[str, SlateRecord]:
    """The stored slates of the given trace ids (unknown ids are absent)."""
    out: dict[str, SlateRecord] = {}
    for trace_id in dict.fromkeys(trace_ids):
        page = store.read(SLATES_LOG, k=1, partition=trace_id)
        if page:
            out[trace_id] = SlateRecord.from_dict(orjson.loads(page[0].payload))
    return out


@dataclass(frozen=True, slots=True)
class ImpressionJoin:
    """An impression/click event joined to the slate that served it.

    ``slate`` is None when no slate with the event's trace_id was logged; ``slot`` is the index of the
    event's item in the slate (None when the item was not in it), ``propensity`` its logged propensity.
    """

    event: Event
    slate: SlateRecord | None
    slot: int | None
    propensity: float | None


_JOINABLE = frozenset({EventType.IMPRESSION, EventType.CLICK, EventType.VIEW, EventType.ADD_TO_CART,
                       EventType.PURCHASE})


def join_impressions(store: Store, events: Iterable[Event]) -> list[ImpressionJoin]:
    """Join events that carry a trace_id (impressions, clicks, views, carts, purchases) to their slates."""
    chosen = [ev for ev in events if ev.trace_id is not None and ev.type in _JOINABLE]
    slates = read_slates(store, (ev.trace_id for ev in chosen if ev.trace_id is not None))
    out = []
    for ev in chosen:
        slate = slates.get(ev.trace_id or "")
        slot = None
        if slate is not None and ev.item_id in slate.items:
            slot = slate.items.index(ev.item_id)
            if ev.position is not None and ev.position in slate.positions:
                at = slate.positions.index(ev.position)
                slot = at if slate.items[at] == ev.item_id else slot
        out.append(ImpressionJoin(ev, slate, slot, slate.propensities[slot] if slate and slot is not None else None))
    return out
