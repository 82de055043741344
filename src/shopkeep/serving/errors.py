"""The one HTTP error envelope: every 4xx/5xx answer is ``{"error": {"code", "message", "details"}}``.

Only this module maps :mod:`shopkeep.errors` codes to HTTP statuses (ARCHITECTURE.md, house rule 7).
FastAPI's own validation errors and Starlette's 404/405 are rewritten into the same envelope, so a
client has one shape to parse whatever went wrong.

>>> from shopkeep.errors import StorageError, ValidationError
>>> status_of(ValidationError("k", 0, "must be >= 1"))
422
>>> status_of(StorageError("database is down"))
503
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shopkeep.errors import ShopkeepError

__all__ = ["STATUS_OF_CODE", "ApiError", "envelope", "error_response", "install_error_handlers", "status_of"]

log = logging.getLogger("shopkeep.serving")

#: Stable error code -> HTTP status.
STATUS_OF_CODE: dict[str, int] = {
    "invalid_input": 422,
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "invalid_config": 500,
    "not_fitted": 503,
    "storage_unavailable": 503,
    "internal": 500,
}

_CODE_OF_STATUS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                   405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                   415: "unsupported_media_type", 422: "invalid_input", 503: "storage_unavailable"}


class ApiError(ShopkeepError):
    """An HTTP-level error raised by the serving layer itself (auth, size limits, bad JSON)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, details)
        self.code = code
        self.headers = dict(headers or {})


def status_of(exc: ShopkeepError) -> int:
    """The HTTP status of a shopkeep error (500 for codes this layer does not know)."""
    return STATUS_OF_CODE.get(exc.code, 500)


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The envelope body."""
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
    """A JSON response carrying the envelope."""
    payload = envelope(code, message, details)
    try:
        body = orjson.dumps(payload, default=str)
    except TypeError:  # e.g. an echoed integer beyond 64 bits: an error answer must never become a 500
        body = json.dumps(payload, default=str).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors[:50]:
        loc = [str(part) for part in err.get("loc", ())]
        out.append({"field": ".".join(loc[1:]) if loc and loc[0] in ("body", "query", "path") else ".".join(loc),
                    "in": loc[0] if loc else "", "reason": str(err.get("msg", "")), "type": str(err.get("type", "")),
                    "value": err.get("input") if isinstance(err.get("input"), str | int | float | bool) else None})
    return out


async def _on_request_validation(request: Request, exc: RequestValidationError) -> Response:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        first = next(err for err in errors if err.get("type") == "json_invalid")
        reason = str(first.get("ctx", {}).get("error", first.get("msg", "invalid JSON")))
        return error_response(400, "bad_request", f"request body is not valid JSON: {reason}",
                              {"field": "body", "reason": reason})
    details = _validation_details(errors)
    first_field = details[0]["field"] if details else "request"
    message = f"{first_field}: {details[0]['reason']}" if details else "invalid request"
    return error_response(422, "invalid_input", message, {"errors": details})


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    code = _CODE_OF_STATUS.get(exc.status_code, "internal" if exc.status_code >= 500 else "bad_request")
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, code, str(exc.detail), {"path": request.url.path}, headers)


def _route(request: Request) -> str:
    """The matched route's template (``/v1/users/{user_id}``), never the raw path: paths carry shopper ids."""
    return str(getattr(request.scope.get("route"), "path", None) or "unmatched route")


async def _on_shopkeep_error(request: Request, exc: ShopkeepError) -> Response:
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, _route(request), exc)
    headers = exc.headers if isinstance(exc, ApiError) else None
    return error_response(status, exc.code, exc.message, exc.details, headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s: unexpected error", request.method, _route(request))
    return error_response(500, "internal", "internal server error", {"type": type(exc).__name__})


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the envelope."""
    app.add_exception_handler(RequestValidationError, _on_request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(ShopkeepError, _on_shopkeep_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)

