"""Catalog hygiene and answer-engine routes (read from the engine's store, so never stale):

* ``GET /v1/catalog/audit`` (admin) — :func:`~shopkeep.catalog.audit.audit_catalog` over the catalog.
* ``GET /v1/catalog/proposals`` (admin) — extracted attribute proposals (``min_confidence``, ``k``).
* ``POST /v1/catalog/proposals/approve`` (admin) — ``{"ids": [...]}``; writes those proposals live.
* ``GET /v1/products/{id}/jsonld`` (read) — one item as schema.org Product JSON-LD.
* ``GET /v1/feed/products.jsonl`` (read) — every active item, one JSON-LD object per line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from shopkeep.catalog.audit import audit_catalog
from shopkeep.catalog.extract import apply_proposals, propose
from shopkeep.catalog.jsonld import in_stock_flags, product_feed, product_jsonld
from shopkeep.errors import NotFoundError
from shopkeep.serving.deps import EngineDep, require_scope

__all__ = ["catalog_router"]


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _base_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/products/"


def catalog_router() -> APIRouter:
    """The router; ``create_app`` mounts it."""
    router = APIRouter(tags=["catalog"])
    admin = [Depends(require_scope("admin"))]
    read = [Depends(require_scope("read"))]

    @router.get("/v1/catalog/audit", dependencies=admin, summary="Audit the catalog (read-only)")
    def get_audit(engine: EngineDep, severity: Annotated[str | None, Query(pattern="^(error|warning|info)$")] = None,
                  k: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> Response:
        report = audit_catalog(engine.catalog.iter_items()).to_dict()
        found = [f for f in report["findings"] if severity is None or f["severity"] == severity]
        return _json({**report, "findings": found[:k], "truncated": len(found) > k})

    @router.get("/v1/catalog/proposals", dependencies=admin, summary="Extracted attributes awaiting approval")
    def get_proposals(engine: EngineDep, min_confidence: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
                      k: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> Response:
        found = propose(engine.catalog.iter_items(), min_confidence=min_confidence)
        return _json({"count": len(found), "proposals": [p.to_dict() for p in found[:k]]})

    @router.post("/v1/catalog/proposals/approve", dependencies=admin,
                 summary="Write approved proposals (each must still be current; else nothing is written)")
    def approve(engine: EngineDep, ids: Annotated[list[str], Body(embed=True, min_length=1, max_length=10_000)]
                ) -> Response:
        result = apply_proposals(engine.catalog, ids, upsert=engine.upsert_items)
        return _json({"applied": [p.to_dict() for p in result.applied], "item_ids": list(result.item_ids)})

    @router.get("/v1/products/{item_id}/jsonld", dependencies=read, summary="schema.org Product JSON-LD")
    def get_jsonld(item_id: Annotated[str, Path(max_length=256)], engine: EngineDep, request: Request) -> Response:
        item = engine.catalog.get(item_id)
        if not item.active:
            raise NotFoundError(f"item {item_id!r} is not active", {"item_id": item_id})
        in_stock = in_stock_flags([item])[0]
        return Response(orjson.dumps(product_jsonld(item, in_stock=in_stock, base_url=_base_url(request))),
                        media_type="application/ld+json")

    @router.get("/v1/feed/products.jsonl", dependencies=read, summary="Product feed for answer engines (JSON lines)")
    def get_feed(engine: EngineDep, request: Request) -> StreamingResponse:
        base = _base_url(request)

        def lines() -> Iterator[bytes]:
            for doc in product_feed(engine.catalog.iter_items(), base_url=base):
                yield orjson.dumps(doc) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return router
