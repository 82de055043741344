"""Background workers on the event bus: publish accepted events, consume them at least once.

Write side: :func:`attach_publisher` makes an :class:`~shopkeep.pipeline.engine.Engine` publish every
event of an ingest that is in the store afterwards (newly stored *and* duplicates: a client that
retries after a crash between the durable append and the publish gets its events published then;
consumers apply by event_id, so a second copy changes nothing).

Read side: a :class:`BusWorker` loops ``claim stale → consume → apply → ack``. It acks a message only
after its apply returned, so a worker killed mid-batch leaves the batch pending and the next worker
takes it over (``claim_stale`` after ``claim_idle_ms``). Two appliers:

* :class:`AggregateApplier` — shopkeep's own bus: folds events into the
  :class:`~shopkeep.events.bus_aggregates.SharedAggregates` (popularity, trend, co-visitation);
* :class:`IngestApplier` — another system's stream: stores its events through the engine's write
  path (validation, event_id dedupe, hot features, and publishing when the engine publishes).

A poison message (not JSON, an invalid event, a conflicting event_id, or one delivered more than
``max_deliveries`` times) is recorded with its error in the store's ``bus_poison`` collection and
acked: it never blocks the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from shopkeep.errors import ShopkeepError, StorageError, ValidationError
from shopkeep.events.bus import BusMessage, EventBus
from shopkeep.events.bus_aggregates import AggEvent, SharedAggregates
from shopkeep.events.schema import event_time_ms, event_to_dict, parse_event
from shopkeep.pipeline.engine import Engine
from shopkeep.pipeline.ingest import IngestReport
from shopkeep.retrieval.sources import EVENT_WEIGHTS
from shopkeep.storage.base import DocumentStore

__all__ = [
    "POISON_COLLECTION",
    "AggregateApplier",
    "Applier",
    "BusWorker",
    "IngestApplier",
    "StepReport",
    "attach_publisher",
    "bus_payloads",
]

log = logging.getLogger("shopkeep.worker")

#: Store collection of messages that could not be applied (key ``<source>|<message id>``).
POISON_COLLECTION = "bus_poison"
_PAYLOAD_SHOWN = 4096


def bus_payloads(raw_events: Sequence[Mapping[str, Any]], report: IngestReport) -> list[bytes]:
    """The bus messages of an ingest: each event the report holds a session for (stored or duplicate),
    as ``{"event": wire form, "session_id": ...}``; each event_id once."""
    out: list[bytes] = []
    seen: set[str] = set()
    for raw in raw_events:
        event_id = raw.get("event_id") if isinstance(raw, Mapping) else None
        if not isinstance(event_id, str) or event_id in seen or event_id not in report.sessions:
            continue
        seen.add(event_id)
        wire = event_to_dict(parse_event(raw))
        out.append(orjson.dumps({"event": wire, "session_id": report.sessions[event_id]}))
    return out


def attach_publisher(engine: Engine, bus: EventBus) -> None:
    """Make ``engine.ingest`` publish to ``bus`` after each durable append (see the module docstring).

    A failed publish is logged, not raised: the events are stored and the client was told so; their
    aggregates catch up when the client re-sends them (duplicates are published again).
    """
    inner = engine.ingest

    def ingest(raw_events: Sequence[Mapping[str, Any]]) -> IngestReport:
        report = inner(raw_events)
        payloads = bus_payloads(raw_events, report) if report.sessions else []
        if payloads:
            try:
                bus.publish(payloads)
            except ShopkeepError as exc:
                log.error("could not publish %d events to %s: %s", len(payloads), bus.uri, exc)
        return report

    setattr(engine, "ingest", ingest)  # noqa: B010 - an instance attribute shadows the method


@dataclass(frozen=True, slots=True)
class Poison:
    """A message that cannot be applied, and why."""

    message: BusMessage
    error: str


class Applier(Protocol):
    """Applies a batch of messages idempotently; returns the poison among them (everything else applied).
    Raises :class:`~shopkeep.errors.StorageError` when nothing could be applied (retry later)."""

    def __call__(self, messages: Sequence[BusMessage]) -> list[Poison]:
        """Apply ``messages``."""


def _decode(message: BusMessage) -> Any:
    try:
        return orjson.loads(message.payload)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("payload", message.payload[:80].decode("utf-8", "replace"),
                              f"is not JSON ({exc})") from None


class AggregateApplier:
    """Folds shopkeep's bus messages into ``aggregates`` (exactly once per event_id)."""

    def __init__(self, aggregates: SharedAggregates, event_weights: Mapping[str, float] | None = None) -> None:
        self.aggregates = aggregates
        self.event_weights = dict(EVENT_WEIGHTS if event_weights is None else event_weights)

    def __call__(self, messages: Sequence[BusMessage]) -> list[Poison]:
        """Decode and apply; a message that is not ``{"event": valid event, "session_id": str|null}`` is poison."""
        batch: list[AggEvent] = []
        poison: list[Poison] = []
        for m in messages:
            try:
                batch.append(self._event(_decode(m)))
            except ValidationError as exc:
                poison.append(Poison(m, exc.message))
        self.aggregates.apply(batch)
        return poison

    def _event(self, doc: Any) -> AggEvent:
        if not isinstance(doc, dict) or not isinstance(doc.get("event"), dict):
            raise ValidationError("event", type(doc).__name__, "a bus message must be an object with an 'event' object")
        session = doc.get("session_id")
        if session is not None and not isinstance(session, str):
            raise ValidationError("session_id", session, "must be a string or null")
        event = parse_event(doc["event"])
        session = session or event.session_id
        return AggEvent(event.event_id, event.item_id, session, self.event_weights.get(str(event.type), 0.0),
                        event_time_ms(event))


class IngestApplier:
    """Stores another system's events (one JSON event per message) through ``engine.ingest``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, messages: Sequence[BusMessage]) -> list[Poison]:
        """Ingest the batch; messages that are not JSON objects, invalid events or conflicts are poison."""
        raws: list[dict[str, Any]] = []
        owners: list[BusMessage] = []
        poison: list[Poison] = []
        for m in messages:
            try:
                doc = _decode(m)
                if not isinstance(doc, dict):
                    raise ValidationError("payload", type(doc).__name__, "must be a JSON object (one event)")
            except ValidationError as exc:
                poison.append(Poison(m, exc.message))
                continue
            raws.append(doc)
            owners.append(m)
        if raws:
            report = self.engine.ingest(raws)
            for err in report.errors:
                poison.append(Poison(owners[(err.line or 1) - 1], err.message))
            for conflict in report.conflict_errors:
                poison.append(Poison(owners[int(conflict.details.get("line", 1)) - 1], conflict.message))
        return poison


@dataclass(frozen=True, slots=True)
class StepReport:
    """One worker step: messages received (``claimed`` of them taken over from another consumer),
    applied, recorded as poison, acked."""

    received: int = 0
    claimed: int = 0
    applied: int = 0
    poison: int = 0
    acked: int = 0


@dataclass
class _Totals:
    received: int = 0
    applied: int = 0
    poison: int = 0
    steps: int = 0
    errors: int = 0
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)


class BusWorker:
    """Consumes ``bus`` as ``consumer`` and applies with ``applier`` (see the module docstring).

    ``source`` names the bus in poison records; ``poison_store`` keeps them (None: logged only).
    """

    def __init__(self, bus: EventBus, applier: Applier | Callable[[Sequence[BusMessage]], list[Poison]], *,
                 consumer: str, source: str | None = None, poison_store: DocumentStore | None = None,
                 k: int = 500, block_ms: int = 1000, claim_idle_ms: int = 30_000, claim_every_s: float = 5.0,
                 max_deliveries: int = 10) -> None:
        self.bus = bus
        self.applier = applier
        self.consumer = consumer
        self.source = source or bus.uri
        self.poison_store = poison_store
        self.k, self.block_ms = k, block_ms
        self.claim_idle_ms, self.claim_every_s = claim_idle_ms, claim_every_s
        self.max_deliveries = max_deliveries
        self.totals = _Totals()
        self._claimed_at = float("-inf")

    def step(self) -> StepReport:
        """Claim stale messages (every ``claim_every_s``) or consume new ones; apply; ack."""
        messages: list[BusMessage] = []
        claimed = 0
        if time.monotonic() - self._claimed_at >= self.claim_every_s:
            self._claimed_at = time.monotonic()
            messages = self.bus.claim_stale(self.consumer, min_idle_ms=self.claim_idle_ms, k=self.k)
            claimed = len(messages)
        if not messages:
            messages = self.bus.consume(self.consumer, k=self.k, block_ms=self.block_ms)
        if not messages:
            return StepReport()
        worn = [Poison(m, f"delivered {m.deliveries} times without an ack (max_deliveries={self.max_deliveries})")
                for m in messages if m.deliveries > self.max_deliveries]
        fresh = [m for m in messages if m.deliveries <= self.max_deliveries]
        poison = worn + (self.applier(fresh) if fresh else [])
        self._record(poison)
        acked = self.bus.ack([m.message_id for m in messages])
        t = self.totals
        t.received += len(messages)
        t.poison += len(poison)
        t.applied += len(messages) - len(poison)
        t.steps += 1
        return StepReport(len(messages), claimed, len(messages) - len(poison), len(poison), acked)

    def _record(self, poison: Sequence[Poison]) -> None:
        if not poison:
            return
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        docs = {f"{self.source}|{p.message.message_id}"[:500]: {
            "source": self.source, "message_id": p.message.message_id, "error": p.error, "at": at,
            "deliveries": p.message.deliveries,
            "payload": p.message.payload[:_PAYLOAD_SHOWN].decode("utf-8", "replace")} for p in poison}
        for p in poison:
            log.warning("poison message %s from %s: %s", p.message.message_id, self.source, p.error)
        if self.poison_store is not None:
            self.poison_store.put_many(POISON_COLLECTION, docs)

    def run(self, stop: threading.Event | None = None, *, max_messages: int | None = None,
            idle_exit_s: float | None = None, backoff_s: float = 1.0) -> _Totals:
        """Step until ``stop`` is set, ``max_messages`` were received, or nothing came for ``idle_exit_s``.

        A StorageError (store, bus or aggregates down) is logged and retried after ``backoff_s``: the
        batch stays pending and is claimed again once idle.
        """
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        while not stop.is_set():
            if max_messages is not None and self.totals.received >= max_messages:
                break
            try:
                report = self.step()
            except StorageError as exc:
                self.totals.errors += 1
                self.totals.last_error = exc.message
                log.error("worker %s: %s (retrying in %.1f s)", self.consumer, exc.message, backoff_s)
                stop.wait(backoff_s)
                continue
            if report.received:
                idle_since = time.monotonic()
            elif idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                break
        return self.totals
