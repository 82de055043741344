"""Signed webhooks: ``POST /v1/webhooks/events`` for systems that push events instead of calling the API.

No API key: the sender proves it holds the shared secret (``webhooks.secret``) by signing. It sends

* ``X-Shopkeep-Timestamp: <unix seconds>`` — must be within ``webhooks.tolerance_s`` (300) of now;
* ``X-Shopkeep-Signature: sha256=<hex>`` — HMAC-SHA256 with the secret over ``b"<timestamp>." + raw body``.

The timestamp is part of the signed text, so it cannot be moved forward to replay an old request
past the window; a replay *within* the window stores nothing new (ingestion is idempotent by
event_id). The signature is checked with a constant-time compare before the body is parsed; a
missing, malformed or wrong signature, or a stale timestamp, answers 401 in the error envelope and
stores nothing (so does every request while no secret is configured). The body is
``{"events": [...]}`` as for ``POST /v1/events``, and so is the answer.

>>> sign(b"s3cret", 1700000000, b'{"events": []}')
'sha256=6ec52815ecf249bd6050040a2b2bf4f6d9500da22060fb900b596a9b7f36b36d'
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from shopkeep.errors import ValidationError
from shopkeep.pipeline.engine import Engine
from shopkeep.serving.errors import ApiError

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "verify", "webhooks_router"]

SIGNATURE_HEADER = "X-Shopkeep-Signature"
TIMESTAMP_HEADER = "X-Shopkeep-Timestamp"
_MAX_EVENTS = 5000


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Shopkeep-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, signature: str | None, timestamp: str | None, body: bytes, *, tolerance_s: int,
           now_s: float | None = None) -> None:
    """Raise :class:`ApiError` 401 unless ``signature`` signs ``body`` at a ``timestamp`` within the window."""
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        raise ApiError("unauthorized", f"{TIMESTAMP_HEADER} must be the unix time in seconds",
                       {"header": TIMESTAMP_HEADER})
    now = time.time() if now_s is None else now_s
    if abs(now - int(timestamp)) > tolerance_s:
        raise ApiError("unauthorized", f"{TIMESTAMP_HEADER} is more than {tolerance_s} s from now (replay window)",
                       {"header": TIMESTAMP_HEADER, "tolerance_s": tolerance_s})
    if not signature or not signature.startswith("sha256="):
        raise ApiError("unauthorized", f"{SIGNATURE_HEADER} must be sha256=<hex HMAC of '<timestamp>.<body>'>",
                       {"header": SIGNATURE_HEADER})
    expected = sign(secret, int(timestamp), body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("ascii", "replace")):
        raise ApiError("unauthorized", "the webhook signature does not match", {"header": SIGNATURE_HEADER})


def _events(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("body", body[:80].decode("utf-8", "replace"), f"is not JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"events"} or not isinstance(doc["events"], list):
        raise ValidationError("body", type(doc).__name__, 'must be {"events": [...]}')
    events = doc["events"]
    if len(events) > _MAX_EVENTS:
        raise ValidationError("events", len(events), f"at most {_MAX_EVENTS} events per request")
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise ValidationError(f"events[{i}]", type(e).__name__, "must be an object")
    return events


def webhooks_router() -> APIRouter:
    """The ``POST /v1/webhooks/events`` route."""
    router = APIRouter()

    @router.post("/v1/webhooks/events", summary="Ingest events pushed by a system holding the webhook secret "
                 "(HMAC-SHA256 signature, no API key)", responses={401: {"description": "bad signature"}})
    async def post_webhook_events(request: Request) -> Response:
        from shopkeep.serving.app import report_to_dict  # app imports this module

        engine: Engine = request.app.state.engine
        settings = engine.config.webhooks
        if not settings.secret:
            raise ApiError("unauthorized", "webhooks are off (no webhooks.secret configured): no signature is valid",
                           {"key": "webhooks.secret"})
        body = await request.body()
        verify(settings.secret.encode(), request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER),
               body, tolerance_s=settings.tolerance_s)
        report = await run_in_threadpool(engine.ingest, _events(body))
        metrics = request.app.state.metrics
        for outcome in ("accepted", "duplicates", "conflicts", "rejected"):
            if getattr(report, outcome):
                metrics.events.labels(outcome).inc(getattr(report, outcome))
        return Response(orjson.dumps(report_to_dict(report)), media_type="application/json")

    return router
