"""FastAPI dependencies shared by every router: the API-key scope check and the app's engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from shopkeep.pipeline.engine import Engine
from shopkeep.serving.auth import ApiKeys, key_from_headers
from shopkeep.serving.errors import ApiError

__all__ = ["EngineDep", "app_engine", "require_scope"]


def require_scope(scope: str) -> Callable[[Request], None]:
    """A dependency that raises ApiError 401 without a known API key, 403 when the key lacks ``scope``."""

    def check(request: Request) -> None:
        keys: ApiKeys = request.app.state.api_keys
        verdict = keys.allows(key_from_headers(request.headers), scope)
        if verdict is None:
            raise ApiError("unauthorized", "missing or unknown API key (send Authorization: Bearer KEY)",
                           {"scope": scope}, {"WWW-Authenticate": "Bearer"})
        if not verdict:
            raise ApiError("forbidden", f"this API key lacks the {scope!r} scope", {"scope": scope})

    return check


def app_engine(request: Request) -> Engine:
    """The Engine the app was created with."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(app_engine)]
