"""The event bus: a durable, at-least-once queue of accepted events between processes.

API workers publish each batch of newly stored events (after the durable append); ``shopkeep
worker`` consumes them, applies them idempotently and only then acks. A consumer that dies holding
messages leaves them *pending*; another consumer takes them over with :meth:`EventBus.claim_stale`
once they have been idle long enough. Backends by URI (:func:`open_bus`):

* ``memory://NAME`` — in-process (one queue per name per process; the default, for one process);
* ``redis://host:port/db?stream=S&group=G`` (or ``redis-stream://...``) — Redis Streams with a consumer group (XADD,
  XREADGROUP, XACK; XAUTOCLAIM reclaims a dead consumer's pending entries);
* ``nats://host:port?stream=S&subject=X&durable=D`` — NATS JetStream, a durable pull consumer with
  explicit acks (:mod:`shopkeep.events.bus_nats`); the server itself redelivers what a dead consumer
  did not ack after ``ack_wait_s``.

A message's payload is bytes: for shopkeep's own bus, the JSON ``{"event": {...}, "session_id": ...}``
of one stored event. Other systems' streams carry whatever they write (one JSON event per entry).

>>> bus = open_bus("memory://doc")
>>> bus.publish([b"a", b"b"])
['1', '2']
>>> [m.payload for m in bus.consume("w1", k=10, block_ms=0)]
[b'a', b'b']
>>> bus.pending(), bus.ack(["1"]), bus.pending()
(2, 1, 1)
>>> [m.message_id for m in bus.claim_stale("w2", min_idle_ms=0)]
['2']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shopkeep.errors import ConfigError, StorageError, ValidationError

if TYPE_CHECKING:
    import redis

__all__ = ["BusMessage", "EventBus", "MemoryBus", "RedisStreamBus", "open_bus", "parse_bus_uri"]

#: Stream field holding the payload of an entry (shopkeep's bus; a foreign stream may name another).
PAYLOAD_FIELD = "event"


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One delivered message: ``message_id`` is the transport's id (stream entry id, JetStream
    sequence); ``deliveries`` counts how often it was handed out (1 on first delivery)."""

    message_id: str
    payload: bytes
    deliveries: int = 1


@runtime_checkable
class EventBus(Protocol):
    """Publish batches; consume with explicit ack (at-least-once). ``uri`` has no password."""

    uri: str

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        """Append messages durably; returns their ids in order."""

    def consume(self, consumer: str, *, k: int = 100, block_ms: int = 1000) -> list[BusMessage]:
        """Up to ``k`` messages never delivered before, waiting up to ``block_ms`` for the first;
        they stay pending (owned by ``consumer``) until acked."""

    def claim_stale(self, consumer: str, *, min_idle_ms: int, k: int = 100) -> list[BusMessage]:
        """Take over up to ``k`` pending messages idle for at least ``min_idle_ms`` (a dead consumer's)."""

    def ack(self, message_ids: Sequence[str]) -> int:
        """Mark messages done; returns how many were pending."""

    def pending(self) -> int:
        """Messages delivered but not acked yet (all consumers)."""

    def close(self) -> None:
        """Release connections; messages stay (except for ``memory://``, which lives with the process)."""


def parse_bus_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``(scheme, uri without query, query parameters)``; ConfigError for a URI without a scheme.

    >>> parse_bus_uri("redis://127.0.0.1:6379/0?stream=s&group=g")
    ('redis', 'redis://127.0.0.1:6379/0', {'stream': 's', 'group': 'g'})
    """
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError(f"bus URI {uri!r} has no scheme (expected memory://, redis:// or nats://)",
                          {"key": "bus.uri", "value": uri})
    parts = urlsplit(uri)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return parts.scheme.lower(), urlunsplit(parts._replace(query="")), params


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _int_param(params: dict[str, str], name: str, default: int, low: int) -> int:
    raw = params.pop(name, None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise ConfigError(f"bus URI parameter {name}={raw!r}: expected an integer >= {low}",
                          {"key": f"bus.uri.{name}", "value": raw})
    return value


def _no_more(params: dict[str, str], scheme: str) -> None:
    if params:
        raise ConfigError(f"unknown {scheme} bus URI parameter(s): {', '.join(sorted(params))}",
                          {"key": "bus.uri", "value": sorted(params)})


def open_bus(uri: str) -> EventBus:
    """The :class:`EventBus` for ``uri`` (see the module docstring); ConfigError for anything else."""
    scheme, base, params = parse_bus_uri(uri)
    if scheme == "memory":
        name = urlsplit(uri).netloc or "default"
        _no_more(params, scheme)
        with _MEMORY_LOCK:
            found = _MEMORY_BUSES.get(name)
            if found is None:
                found = _MEMORY_BUSES[name] = MemoryBus(f"memory://{name}")
            return found
    if scheme in ("redis", "rediss", "unix", "redis-stream"):
        if scheme == "redis-stream":  # the worker's --source spelling of a Redis stream
            base = "redis" + base[len("redis-stream"):]
        stream = params.pop("stream", "shopkeep:events")
        group = params.pop("group", "shopkeep-workers")
        field = params.pop("field", PAYLOAD_FIELD)
        maxlen = _int_param(params, "maxlen", 1_000_000, 0)
        _no_more(params, scheme)
        return RedisStreamBus(base, stream=stream, group=group, field=field, maxlen=maxlen or None)
    if scheme == "nats":
        from shopkeep.events.bus_nats import NatsJetStreamBus

        stream = params.pop("stream", "SHOPKEEP_EVENTS")
        subject = params.pop("subject", "shopkeep.events")
        durable = params.pop("durable", "shopkeep-workers")
        ack_wait = _int_param(params, "ack_wait_s", 30, 1)
        _no_more(params, scheme)
        return NatsJetStreamBus(base, stream=stream, subject=subject, durable=durable, ack_wait_s=ack_wait)
    raise ConfigError(f"unsupported bus URI {_redact(uri)!r}: expected memory://NAME, redis://host:port/db"
                      "?stream=S&group=G or nats://host:port?stream=S&subject=X&durable=D",
                      {"key": "bus.uri", "value": _redact(uri)})


class MemoryBus:
    """An in-process :class:`EventBus` with one consumer group (threads of one process share it)."""

    def __init__(self, uri: str = "memory://default") -> None:
        self.uri = uri
        self._entries: list[bytes] = []
        self._next = 0  # index of the first entry never delivered
        # message id -> (owner, delivered at (monotonic ms), deliveries)
        self._pending: dict[str, tuple[str, float, int]] = {}
        self._cond = threading.Condition()

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        """Append messages; ids are 1-based positions."""
        _check_payloads(payloads)
        with self._cond:
            start = len(self._entries)
            self._entries.extend(bytes(p) for p in payloads)
            self._cond.notify_all()
            return [str(start + i + 1) for i in range(len(payloads))]

    def consume(self, consumer: str, *, k: int = 100, block_ms: int = 1000) -> list[BusMessage]:
        """Up to ``k`` new messages, waiting up to ``block_ms`` for the first."""
        _check_k(k)
        deadline = time.monotonic() + max(block_ms, 0) / 1000.0
        with self._cond:
            while self._next >= len(self._entries):
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            now = time.monotonic() * 1000.0
            out = []
            for i in range(self._next, min(self._next + k, len(self._entries))):
                self._pending[str(i + 1)] = (consumer, now, 1)
                out.append(BusMessage(str(i + 1), self._entries[i], 1))
            self._next += len(out)
            return out

    def claim_stale(self, consumer: str, *, min_idle_ms: int, k: int = 100) -> list[BusMessage]:
        """Take over pending messages idle for at least ``min_idle_ms``, oldest first."""
        _check_k(k)
        now = time.monotonic() * 1000.0
        with self._cond:
            stale = [(int(mid), mid, n) for mid, (_, at, n) in self._pending.items() if now - at >= min_idle_ms]
            out = []
            for _, mid, n in sorted(stale)[:k]:
                self._pending[mid] = (consumer, now, n + 1)
                out.append(BusMessage(mid, self._entries[int(mid) - 1], n + 1))
            return out

    def ack(self, message_ids: Sequence[str]) -> int:
        """Forget pending messages; returns how many were pending."""
        with self._cond:
            return sum(self._pending.pop(mid, None) is not None for mid in message_ids)

    def pending(self) -> int:
        """Delivered, not acked."""
        with self._cond:
            return len(self._pending)

    def close(self) -> None:
        """Nothing to release (the queue lives as long as the process)."""


_MEMORY_BUSES: dict[str, MemoryBus] = {}
_MEMORY_LOCK = threading.Lock()


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError("k", k, "must be an integer >= 1")


def _check_payloads(payloads: Sequence[bytes]) -> None:
    for i, p in enumerate(payloads):
        if not isinstance(p, bytes | bytearray) or not p:
            raise ValidationError(f"payloads[{i}]", type(p).__name__, "must be non-empty bytes")


class RedisStreamBus:
    """An :class:`EventBus` on one Redis stream and consumer group (see the module docstring).

    The group is created at the stream's start (id 0) if missing, so messages written before the
    first consumer started are delivered too. ``maxlen`` trims the stream approximately (``~``) on
    each publish: a consumer that falls further behind than that loses the oldest entries, so size it
    generously (None: never trim).
    """

    def __init__(self, url: str, *, stream: str = "shopkeep:events", group: str = "shopkeep-workers",
                 field: str = PAYLOAD_FIELD, maxlen: int | None = 1_000_000, timeout_s: float = 10.0) -> None:
        import redis

        for name, value in (("stream", stream), ("group", group), ("field", field)):
            if not isinstance(value, str) or not value or len(value) > 256:
                raise ValidationError(name, value, "must be a non-empty string of at most 256 characters")
        self.uri = f"{_redact(url)}?{urlencode({'stream': stream, 'group': group})}"
        self.stream, self.group, self.field, self.maxlen = stream, group, field, maxlen
        self._client: redis.Redis = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                                         socket_connect_timeout=timeout_s)
        with self._guard():
            try:
                self._client.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    @contextmanager
    def _guard(self) -> Iterator[None]:
        import redis

        try:
            yield
        except redis.RedisError as exc:
            raise StorageError(f"redis bus {self.uri}: {exc}", {"uri": self.uri}) from exc

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        """XADD each payload (one pipeline round trip); returns the entry ids."""
        _check_payloads(payloads)
        if not payloads:
            return []
        with self._guard():
            pipe = self._client.pipeline(transaction=False)
            for p in payloads:
                pipe.xadd(self.stream, {self.field: bytes(p)}, maxlen=self.maxlen, approximate=True)
            return [_text(i) for i in pipe.execute()]

    def consume(self, consumer: str, *, k: int = 100, block_ms: int = 1000) -> list[BusMessage]:
        """XREADGROUP ``>``: entries never delivered to the group."""
        _check_k(k)
        with self._guard():
            found: Any = self._client.xreadgroup(self.group, consumer, {self.stream: ">"}, count=k,
                                            block=max(block_ms, 0) or None)
        entries = found[0][1] if found else []
        return [BusMessage(_text(mid), self._payload(fields), 1) for mid, fields in entries if fields is not None]

    def claim_stale(self, consumer: str, *, min_idle_ms: int, k: int = 100) -> list[BusMessage]:
        """XAUTOCLAIM pending entries idle >= ``min_idle_ms``; entries trimmed away while pending are acked."""
        _check_k(k)
        with self._guard():
            found = self._client.xautoclaim(self.stream, self.group, consumer, min_idle_time=max(min_idle_ms, 0),
                                            start_id="0-0", count=k)
            entries, deleted = found[1], (found[2] if len(found) > 2 else [])
            if deleted:
                self._client.xack(self.stream, self.group, *deleted)
            live = [(mid, fields) for mid, fields in entries if fields is not None]
            counts = self._deliveries([mid for mid, _ in live])
        return [BusMessage(_text(mid), self._payload(fields), counts.get(_text(mid), 2)) for mid, fields in live]

    def _deliveries(self, ids: list[Any]) -> dict[str, int]:
        """Delivery counts of pending entries (XPENDING over their id range)."""
        if not ids:
            return {}
        wanted = {_text(i) for i in ids}
        rows = self._client.xpending_range(self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids) * 4)
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows if _text(r["message_id"]) in wanted}

    def ack(self, message_ids: Sequence[str]) -> int:
        """XACK; returns how many were pending."""
        if not message_ids:
            return 0
        with self._guard():
            return int(self._client.xack(self.stream, self.group, *message_ids))

    def pending(self) -> int:
        """XPENDING's count for the group."""
        with self._guard():
            return int(self._client.xpending(self.stream, self.group)["pending"])

    def _payload(self, fields: dict[Any, Any]) -> bytes:
        """The payload field's bytes; an entry without it (a foreign writer's) becomes its fields as JSON."""
        for key, value in fields.items():
            if _text(key) == self.field:
                return value if isinstance(value, bytes) else str(value).encode()
        import orjson

        return orjson.dumps({_text(k): _text(v) for k, v in fields.items()})

    def close(self) -> None:
        """Close the connection pool; the stream stays."""
        with self._guard():
            self._client.close()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
