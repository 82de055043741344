"""Pure ASGI middleware: request size limit and Prometheus metrics (cheaper than BaseHTTPMiddleware).

Metrics live in a per-app :class:`prometheus_client.CollectorRegistry`, so two apps in one process
(tests) do not mix counts. With several worker processes each worker exposes its own counters; a
scraper sums them per instance.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from shopkeep.serving.errors import envelope

__all__ = ["Metrics", "ServiceMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BUCKETS = (0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's Prometheus series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("shopkeep_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("shopkeep_http_request_seconds", "HTTP request latency (server side)",
                                 ("method", "route"), buckets=_BUCKETS, registry=self.registry)
        self.events = Counter("shopkeep_events", "Events posted to /v1/events, by outcome",
                              ("outcome",), registry=self.registry)
        self.slates = Counter("shopkeep_slates", "Recommendation slates served, by surface",
                              ("surface",), registry=self.registry)
        self.slate_items = Histogram("shopkeep_slate_items", "Items per served slate",
                                     buckets=(0, 1, 5, 10, 20, 50, 100), registry=self.registry)


class _TooLarge(Exception):
    pass


class ServiceMiddleware:
    """Counts and times every request per route; refuses bodies over ``max_body_bytes`` with 413."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]
        refused = [False]  # set once the body passed the limit: whatever the app answers becomes a 413

        async def send_wrapper(message: Message) -> None:
            if refused[0]:
                if message["type"] == "http.response.start" and status[0] != 413:
                    status[0] = 413
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            if self._declared_too_large(scope):
                status[0] = 413
                await self._refuse(send)
            else:
                await self.app(scope, self._limited(receive, refused), send_wrapper)
        except _TooLarge:
            if status[0] != 413:
                status[0] = 413
                await self._refuse(send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status[0])).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - start)

    def _declared_too_large(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value) > self.max_body_bytes
                except ValueError:
                    return False
        return False

    def _limited(self, receive: Receive, refused: list[bool]) -> Receive:
        seen = [0]
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    refused[0] = True
                    raise _TooLarge
            return message

        return wrapped

    async def _refuse(self, send: Send) -> None:
        import orjson

        body = orjson.dumps(envelope("payload_too_large", f"request body exceeds {self.max_body_bytes} bytes",
                                     {"limit_bytes": self.max_body_bytes}))
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
