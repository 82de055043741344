"""``POST /v1/search`` (scope search): hybrid product search under the engine's catalog and policy.

Body ``{"query", "filters", "user_id" | "anonymous_id", "session_id", "store", "region", "k", "explain"}``;
answer ``{"items": [...], "parsed": {...}, "relaxed": [...], "matched", "trace_id"}`` (+ ``explain``).
``parsed`` shows how the query was understood (constraints with the words they came from, free text,
sort, typo corrections); ``relaxed`` lists the constraints dropped because nothing matched them all.

The search index is built on the first search for the engine's current catalog snapshot and
updated incrementally when the snapshot changes (``PUT /v1/items``). The dense encoder is
``$SHOPKEEP_SEARCH_ENCODER`` (``all-MiniLM-L6-v2`` when the ml extra is installed, else ``hashing``);
``$SHOPKEEP_SEARCH_QUERY_ENCODER`` may name another one for queries only (latency benchmarks).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import ContextRequest
from shopkeep.models.content import MINILM
from shopkeep.pipeline.engine import Engine
from shopkeep.search import SearchConfig, Searcher, SearchRequest, SearchResponse
from shopkeep.serving.deps import engine_bound, require_scope

__all__ = ["SearchBody", "SearchService", "default_encoder", "response_to_dict", "router"]


def default_encoder() -> str:
    """``$SHOPKEEP_SEARCH_ENCODER``, else MiniLM when sentence-transformers is importable, else hashing."""
    chosen = os.environ.get("SHOPKEEP_SEARCH_ENCODER")
    if chosen:
        return chosen
    return MINILM if importlib.util.find_spec("sentence_transformers") is not None else "hashing"


class SearchService:
    """One :class:`Searcher` per engine, kept in step with the engine's catalog snapshot."""

    def __init__(self, engine: Engine, config: SearchConfig | None = None) -> None:
        self.engine = engine
        self.config = config or SearchConfig(encoder=default_encoder(),
                                              query_encoder=os.environ.get("SHOPKEEP_SEARCH_QUERY_ENCODER") or None)
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()

    def searcher(self, snapshot: CatalogSnapshot) -> Searcher:
        """The searcher for ``snapshot`` (built or updated under a lock)."""
        current = self._searcher
        if current is not None and current.snapshot_ is snapshot:
            return current
        with self._lock:
            current = self._searcher
            if current is None:
                current = Searcher(self.config).fit(snapshot)
            elif current.snapshot_ is not snapshot:
                current = current.with_snapshot(snapshot)
            self._searcher = current
        return current

    def search(self, body: SearchBody) -> tuple[SearchResponse, CatalogSnapshot]:
        """Answer one search body with the engine's context, snapshot and policy."""
        if body.user_id is None and body.anonymous_id is None and body.session_id is None:
            raise ValidationError("anonymous_id", None, "give user_id, anonymous_id or session_id")
        snapshot, policy = self.engine.read_view()
        searcher = self.searcher(snapshot)
        req = ContextRequest(surface="search", user_id=body.user_id, anonymous_id=body.anonymous_id or body.session_id,
                             session_id=body.session_id, store=body.store, region=body.region, k=body.k,
                             explain=body.explain)
        profile = self.engine.profiles.get_many([body.user_id]).get(body.user_id) if body.user_id else None
        context = self.engine.features.context(req, profile)
        request = SearchRequest(body.query, k=body.k, filters=body.filters, store=body.store, explain=body.explain)
        return searcher.search(request, context, policy), snapshot


class SearchBody(BaseModel):
    """``POST /v1/search`` body."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=500)
    filters: dict[str, Any] = Field(default_factory=dict, description="category, brand, price_min, price_max "
                                    "(minor units), attributes {key: value}, store, pickup, in_stock")
    user_id: str | None = Field(default=None, max_length=256)
    anonymous_id: str | None = Field(default=None, max_length=256)
    session_id: str | None = Field(default=None, max_length=256)
    store: str | None = Field(default=None, max_length=256)
    region: str | None = Field(default=None, max_length=16)
    k: int = Field(default=10, ge=1, le=100)
    explain: bool = False


def response_to_dict(res: SearchResponse, snapshot: CatalogSnapshot, trace_id: str) -> dict[str, Any]:
    """The wire answer of a search."""
    items = []
    for h in res.items:
        it = snapshot.items[snapshot.index[h.item_id]]
        price = {"amount": h.price_minor, "currency": snapshot.currency} if h.price_minor is not None else None
        items.append({"item_id": h.item_id, "title": it.title, "brand": it.brand, "category": list(it.category),
                      "price": price, "score": h.score, "position": h.position, "reasons": list(h.reasons),
                      "sources": {k: {"score": s, "rank": r} for k, (s, r) in sorted(h.sources.items())}})
    out: dict[str, Any] = {"items": items, "parsed": res.parsed.to_dict(),
                           "relaxed": [{"kind": c.kind, "label": c.label(), "text": c.text} for c in res.relaxed],
                           "matched": res.matched, "trace_id": trace_id}
    if res.explain is not None:
        out["explain"] = res.explain
    return out


_require_read = require_scope("read")
_require_search = require_scope("search")


def _service(request: Request) -> SearchService:
    return engine_bound(request, "search_service", SearchService)


router = APIRouter()


@router.post("/v1/search", dependencies=[Depends(_require_search)],
             summary="Hybrid product search: constraints from the query text, keyword + semantic, under policy")
def post_search(body: SearchBody, service: Annotated[SearchService, Depends(_service)]) -> Response:
    res, snapshot = service.search(body)
    return Response(orjson.dumps(response_to_dict(res, snapshot, uuid.uuid4().hex)), media_type="application/json")
