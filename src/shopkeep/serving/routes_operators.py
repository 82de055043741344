"""``/v1/operators``: operator agents' proposals, waiting for a person (admin scope).

* ``GET /v1/operators/proposals?status=pending`` — proposals with evidence and expected effect.
* ``GET /v1/operators/proposals/{id}`` — one proposal with its audit entries.
* ``POST /v1/operators/proposals/{id}/approve`` ``{"by": "alice", "note": "..."}`` — re-checked, then
  applied through the versioned policy API; answers the proposal with the policy versions.
* ``POST /v1/operators/proposals/{id}/reject`` — closes it, nothing changes.
* ``POST /v1/operators/run`` ``{"now": ISO (optional)}`` — run the watchers once (as ``shopkeep operators run``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query

from shopkeep.errors import ValidationError
from shopkeep.pipeline.engine import Engine
from shopkeep.pipeline.operators import OperatorDesk, run_watchers
from shopkeep.serving.deps import EngineDep, require_scope
from shopkeep.types import parse_timestamp, to_epoch_ms

__all__ = ["operators_router"]

_ADMIN = [Depends(require_scope("admin"))]
_STATUSES = ("pending", "approved", "rejected", "refused")


def _desk(engine: Engine) -> OperatorDesk:
    return OperatorDesk(engine.store, engine.policy_dict, engine.set_policy)


def _decision(body: Any) -> tuple[Any, str | None]:
    if not isinstance(body, dict):
        raise ValidationError("body", body, 'must be an object such as {"by": "alice"}')
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise ValidationError("note", note, "must be a string of at most 2000 characters")
    return body.get("by"), note


def operators_router() -> APIRouter:
    """The router (registered by ``create_app``)."""
    router = APIRouter(tags=["operators"])

    @router.get("/v1/operators/proposals", dependencies=_ADMIN)
    def list_proposals(engine: EngineDep, status: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        if status is not None and status not in _STATUSES:
            raise ValidationError("status", status, f"must be one of {', '.join(_STATUSES)}")
        return {"proposals": [p.to_dict() for p in _desk(engine).list(status=status)]}

    @router.get("/v1/operators/proposals/{proposal_id}", dependencies=_ADMIN)
    def get_proposal(engine: EngineDep, proposal_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
        desk = _desk(engine)
        return {**desk.get(proposal_id).to_dict(), "audit": desk.audit(proposal_id)}

    @router.post("/v1/operators/proposals/{proposal_id}/approve", dependencies=_ADMIN)
    def approve(engine: EngineDep, proposal_id: Annotated[str, Path(max_length=64)],
                body: Annotated[Any, Body()] = None) -> dict[str, Any]:
        by, note = _decision(body)
        return _desk(engine).approve(proposal_id, by=by, note=note).to_dict()

    @router.post("/v1/operators/proposals/{proposal_id}/reject", dependencies=_ADMIN)
    def reject(engine: EngineDep, proposal_id: Annotated[str, Path(max_length=64)],
               body: Annotated[Any, Body()] = None) -> dict[str, Any]:
        by, note = _decision(body)
        return _desk(engine).reject(proposal_id, by=by, note=note).to_dict()

    @router.post("/v1/operators/run", dependencies=_ADMIN)
    def run(engine: EngineDep, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
        now = body.get("now") if isinstance(body, dict) else None
        try:
            now_ms = to_epoch_ms(parse_timestamp(now)) if now is not None else None
        except (TypeError, ValueError):
            raise ValidationError("now", now, "must be an ISO 8601 timestamp with a UTC offset") from None
        filed = run_watchers(_desk(engine), engine.store, engine.online, engine.catalog, now_ms=now_ms)
        return {"filed": [p.to_dict() for p in filed]}

    return router
