"""NATS JetStream as an :class:`~shopkeep.events.bus.EventBus`: a durable pull consumer, explicit acks.

``nats://host:port?stream=S&subject=X&durable=D&ack_wait_s=30``. The stream is created (file
storage, subject ``X``) if no stream holds the subject yet; every consumer process binds the same
durable consumer, so JetStream spreads messages over them and *itself* redelivers any message not
acked within ``ack_wait_s`` (to whichever consumer pulls next): :meth:`NatsJetStreamBus.claim_stale`
has nothing to do and returns ``[]``. A message's id is its stream sequence number.

nats-py is asyncio-only; this class runs one event loop in a daemon thread and offers the same
blocking calls as the other buses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from shopkeep.errors import StorageError, ValidationError
from shopkeep.events.bus import BusMessage, _check_k, _check_payloads, _redact

__all__ = ["NatsJetStreamBus"]

T = TypeVar("T")


class NatsJetStreamBus:
    """An :class:`~shopkeep.events.bus.EventBus` on a JetStream stream (see the module docstring)."""

    #: JetStream redelivers unacked messages itself after ``ack_wait_s``.
    server_redelivers = True

    def __init__(self, url: str, *, stream: str = "SHOPKEEP_EVENTS", subject: str = "shopkeep.events",
                 durable: str = "shopkeep-workers", ack_wait_s: int = 30, timeout_s: float = 10.0) -> None:
        for name, value in (("stream", stream), ("subject", subject), ("durable", durable)):
            if not isinstance(value, str) or not value or len(value) > 200 or " " in value:
                raise ValidationError(name, value, "must be a non-empty string without spaces (<= 200 characters)")
        self.uri = f"{_redact(url)}?stream={stream}&subject={subject}&durable={durable}"
        self.stream, self.subject, self.durable, self.ack_wait_s = stream, subject, durable, ack_wait_s
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="shopkeep-nats", daemon=True)
        self._thread.start()
        self._inflight: dict[str, Any] = {}  # message id -> nats Msg (acked through it)
        self._lock = threading.Lock()
        try:
            self._nc, self._js, self._sub = self._run(self._connect(url))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Awaitable[T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the bus's loop and wait; NATS errors become StorageError."""
        import nats.errors

        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout=timeout_s if timeout_s is not None else self.timeout_s + 5.0)
        except (TimeoutError, nats.errors.Error, OSError, FutureTimeout) as exc:
            future.cancel()
            raise StorageError(f"nats bus {self.uri}: {type(exc).__name__}: {exc}", {"uri": self.uri}) from exc

    async def _connect(self, url: str) -> tuple[Any, Any, Any]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        nc = await nats.connect(url, connect_timeout=self.timeout_s, max_reconnect_attempts=3)
        js = nc.jetstream(timeout=self.timeout_s)
        try:
            await js.find_stream_name_by_subject(self.subject)
        except NotFoundError:
            await js.add_stream(name=self.stream, subjects=[self.subject])
        config = ConsumerConfig(durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=float(self.ack_wait_s),
                                max_ack_pending=-1)
        sub = await js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream, config=config)
        return nc, js, sub

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        """Publish each payload and wait for JetStream's acks; returns the stream sequences."""
        _check_payloads(payloads)

        async def go() -> list[str]:
            acks = await asyncio.gather(*(self._js.publish(self.subject, bytes(p)) for p in payloads))
            return [str(a.seq) for a in acks]

        return self._run(go()) if payloads else []

    def consume(self, consumer: str, *, k: int = 100, block_ms: int = 1000) -> list[BusMessage]:
        """Fetch up to ``k`` messages (new or due for redelivery), waiting up to ``block_ms``."""
        _check_k(k)

        async def go() -> list[Any]:
            try:
                msgs: list[Any] = await self._sub.fetch(k, timeout=max(block_ms, 50) / 1000.0)
                return msgs
            except TimeoutError:  # nats.errors.TimeoutError derives from it
                return []

        msgs = self._run(go(), timeout_s=max(block_ms, 50) / 1000.0 + self.timeout_s)
        out = []
        with self._lock:
            for m in msgs:
                meta = m.metadata
                mid = str(meta.sequence.stream)
                self._inflight[mid] = m
                out.append(BusMessage(mid, bytes(m.data), int(meta.num_delivered)))
        return out

    def claim_stale(self, consumer: str, *, min_idle_ms: int, k: int = 100) -> list[BusMessage]:
        """Nothing: JetStream redelivers unacked messages through :meth:`consume` after ``ack_wait_s``."""
        _check_k(k)
        return []

    def ack(self, message_ids: Sequence[str]) -> int:
        """Ack messages this bus delivered (waiting for the server's confirmation); returns how many."""
        with self._lock:
            msgs = [self._inflight.pop(mid) for mid in message_ids if mid in self._inflight]

        async def go() -> int:
            for m in msgs:
                await m.ack_sync(timeout=self.timeout_s)
            return len(msgs)

        return self._run(go()) if msgs else 0

    def pending(self) -> int:
        """Messages delivered and not acked, by the consumer's server-side count (all processes)."""
        async def go() -> int:
            info = await self._js.consumer_info(self.stream, self.durable)
            return int(info.num_ack_pending)

        return self._run(go())

    def close(self) -> None:
        """Drain the connection (unacked messages stay pending on the server) and stop the loop."""
        try:
            self._run(self._nc.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._loop.close()
