"""FastAPI dependencies shared by every router: the API-key scope check and the app's engine."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, Protocol, TypeVar

from fastapi import Depends, Query, Request

from shopkeep.errors import ValidationError
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.engine import Engine
from shopkeep.serving.auth import ApiKeys, RateLimiter, key_from_headers
from shopkeep.serving.errors import ApiError

__all__ = ["EngineDep", "RecommendationQuery", "app_engine", "engine_bound", "parse_cart", "recommendation_request",
           "require_scope"]


def require_scope(scope: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that raises ApiError 401 without a known API key, 403 when the key lacks ``scope`` and
    429 (with Retry-After) when the key's rate limit is spent (``serving.rate_limit_per_s``).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, and that hop cost
    more CPU than the check itself on every request (the check is a dict lookup, plus one short Redis
    call when rate limits are shared)."""

    async def check(request: Request) -> None:
        keys: ApiKeys = request.app.state.api_keys
        if not keys.enabled:
            return
        entry = keys.lookup(key_from_headers(request.headers))
        if entry is None:
            raise ApiError("unauthorized", "missing or unknown API key (send Authorization: Bearer KEY)",
                           {"scope": scope}, {"WWW-Authenticate": "Bearer"})
        if scope not in entry.scopes:
            raise ApiError("forbidden", f"this API key lacks the {scope!r} scope", {"scope": scope})
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        wait = limiter.take(entry.key_id) if limiter is not None else 0.0
        if wait > 0:
            raise ApiError("rate_limited", f"rate limit of this API key reached; retry in {wait:.2f} s",
                           {"key_id": entry.key_id, "retry_after_s": round(wait, 3)},
                           {"Retry-After": str(max(1, math.ceil(wait)))})
        request.state.key_id = entry.key_id  # safe to log: names the key without revealing it

    return check


async def app_engine(request: Request) -> Engine:
    """The Engine the app was created with (``async``: no thread-pool hop, see :func:`require_scope`)."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(app_engine)]


class _EngineBound(Protocol):
    @property
    def engine(self) -> Engine: ...


_B = TypeVar("_B", bound=_EngineBound)


def engine_bound(request: Request, attribute: str, build: Callable[[Engine], _B]) -> _B:
    """The object the app keeps as ``state.<attribute>``: built by ``build(engine)`` on first use and built
    again once the app's engine was swapped (its ``engine`` is no longer the app's)."""
    state = request.app.state
    found: _B | None = getattr(state, attribute, None)
    if found is None or found.engine is not state.engine:
        found = build(state.engine)
        setattr(state, attribute, found)
    return found


def _visit() -> Any:
    """A visit-context query parameter (device, referrer, campaign, channel): a short token, host or path."""
    return Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.:/@+-]*$",
                 description="visit context for shoppers with no history (letters, digits, _ . : / @ + -)")


def parse_cart(cart: str | None) -> tuple[str, ...]:
    """The ``cart`` query parameter's comma-separated item ids (ValidationError above 200)."""
    if not cart:
        return ()
    ids = tuple(part.strip() for part in cart.split(",") if part.strip())
    if len(ids) > 200:
        raise ValidationError("cart", len(ids), "at most 200 item ids")
    return ids


async def recommendation_request(
    surface: Literal["home", "pdp", "cart"] = "home",
    user_id: Annotated[str | None, Query(max_length=256)] = None,
    anonymous_id: Annotated[str | None, Query(max_length=256)] = None,
    session_id: Annotated[str | None, Query(max_length=256)] = None,
    item_id: Annotated[str | None, Query(max_length=256)] = None,
    cart: Annotated[str | None, Query(max_length=20_000, description="comma-separated item ids")] = None,
    store: Annotated[str | None, Query(max_length=256)] = None,
    region: Annotated[str | None, Query(max_length=16)] = None,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    explain: bool = False,
    device: Annotated[str | None, _visit()] = None,
    referrer: Annotated[str | None, _visit()] = None,
    campaign: Annotated[str | None, _visit()] = None,
    channel: Annotated[str | None, _visit()] = None,
) -> ContextRequest:
    """The query parameters every slate route shares (``/v1/recommendations``, its transparency twin), as a
    :class:`ContextRequest`; ``surface=pdp`` needs ``item_id``."""
    if surface == "pdp" and not item_id:
        raise ValidationError("item_id", None, "is required for surface=pdp")
    return ContextRequest(surface=surface, user_id=user_id, anonymous_id=anonymous_id, session_id=session_id,
                          item_id=item_id, cart_item_ids=parse_cart(cart), store=store, region=region, k=k,
                          explain=explain, device=device, referrer=referrer, campaign=campaign, channel=channel)


RecommendationQuery = Annotated[ContextRequest, Depends(recommendation_request)]
