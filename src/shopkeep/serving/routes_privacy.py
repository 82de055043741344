"""Privacy routes (scope ``privacy``): right of access and erasure of one shopper.

* ``GET /v1/users/{user_id}`` — the profile, identity links and every log record that belongs to the
  user or a linked anonymous id (``shopkeep.pipeline.erasure.user_data``).
* ``DELETE /v1/users/{user_id}`` (``?anonymous_id=`` repeatable, for device ids not linked to the user)
  — erases profile, identity links, sessionization state and online state, and rewrites the user's log
  records without their ids (``shopkeep.pipeline.erasure.erase_user`` says exactly how). The answer lists
  what was removed and ``remaining`` (empty when nothing in the store mentions an id any more).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from shopkeep.pipeline.engine import Engine
from shopkeep.pipeline.erasure import erase_user, user_data
from shopkeep.serving.deps import require_scope

__all__ = ["privacy_router"]

_SCOPE = "privacy"
UserPath = Annotated[str, Path(min_length=1, max_length=256)]


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data, default=str), media_type="application/json")


def privacy_router() -> APIRouter:
    """The ``/v1/users/{user_id}`` routes."""
    router = APIRouter()

    @router.get("/v1/users/{user_id}", dependencies=[Depends(require_scope(_SCOPE))],
                summary="Everything the engine stores about a shopper (right of access)")
    def get_user(user_id: UserPath, request: Request) -> Response:
        engine: Engine = request.app.state.engine
        engine.flush()  # served slates still buffered belong to the answer
        return _json(user_data(engine.store, user_id))

    @router.delete("/v1/users/{user_id}", dependencies=[Depends(require_scope(_SCOPE))],
                   summary="Erase a shopper: profile, identity, online state; their log records lose their ids")
    def delete_user(user_id: UserPath, request: Request,
                    anonymous_id: Annotated[list[str] | None, Query(max_length=100)] = None) -> Response:
        engine: Engine = request.app.state.engine
        engine.flush()
        with engine._write_lock:  # no event of this shopper is half-ingested while the log is rewritten
            report = erase_user(engine.store, engine.features, user_id=user_id, anonymous_ids=anonymous_id or ())
        return _json(report.to_dict())

    return router
