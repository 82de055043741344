"""``POST /v1/search/similar`` (scope search): visually similar items from the catalog's own image vectors.

Items carry an optional ``image_vector`` (any dimension, one per catalog; set through ``PUT /v1/items``
or a catalog file, validated finite and of the catalog's dimension). The body names either an
``item_id`` (its vector is the query, the item itself is never answered) or a ``vector`` of the
catalog's dimension; the answer is the ``k`` most similar items by cosine, under the merchant policy's
hard rules (exclusions, inventory, regulated items, the shopper's avoids) for the shopper given.

The vectors live in the shared :class:`~shopkeep.index.VectorIndex` (exact today), kept in step with
the engine's catalog snapshot: a changed snapshot re-indexes only the items whose vector changed.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from shopkeep.catalog.schema import MAX_IMAGE_DIM, item_to_dict
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.features.context import ContextRequest
from shopkeep.index import ExactIndex, VectorIndex
from shopkeep.pipeline.engine import Engine
from shopkeep.serving.deps import engine_bound, require_scope

__all__ = ["SimilarBody", "SimilarIndex", "similar_router"]

log = logging.getLogger("shopkeep.serving.similar")


class SimilarBody(BaseModel):
    """``POST /v1/search/similar`` body: ``item_id`` or ``vector`` (exactly one)."""

    model_config = ConfigDict(extra="forbid")
    item_id: str | None = Field(default=None, min_length=1, max_length=256)
    vector: list[float] | None = Field(default=None, min_length=1, max_length=MAX_IMAGE_DIM,
                                       description="a query image vector of the catalog's dimension")
    user_id: str | None = Field(default=None, max_length=256)
    anonymous_id: str | None = Field(default=None, max_length=256)
    store: str | None = Field(default=None, max_length=256)
    region: str | None = Field(default=None, max_length=16)
    k: int = Field(default=10, ge=1, le=100)


class SimilarIndex:
    """The image vectors of one engine's catalog in a vector index, re-synced when the snapshot changes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.index_: VectorIndex | None = None
        self.dim_: int | None = None
        self._vectors: dict[str, tuple[float, ...]] = {}
        self._snapshot: CatalogSnapshot | None = None
        self._rows = np.zeros(0, dtype=np.int64)  # snapshot row of each indexed item
        self._lock = threading.Lock()

    def sync(self, snapshot: CatalogSnapshot) -> None:
        """Upsert the vectors that are new or changed in ``snapshot`` and drop the ones gone from it."""
        if snapshot is self._snapshot:
            return
        with self._lock:
            if snapshot is self._snapshot:
                return
            now = {it.item_id: it.image_vector for it in snapshot.items if it.image_vector is not None}
            if self.dim_ is None and now:
                self.dim_ = len(next(iter(now.values())))
            odd = [i for i, v in now.items() if len(v) != self.dim_]
            for item_id in odd:  # stored before dimensions were checked: never indexed
                log.warning("item %s: image_vector has %d numbers, the index %s; not indexed",
                            item_id, len(now.pop(item_id)), self.dim_)
            changed = [i for i, v in now.items() if self._vectors.get(i) != v]
            gone = [i for i in self._vectors if i not in now]
            if self.dim_ is not None and (changed or gone):
                if self.index_ is None:
                    self.index_ = ExactIndex(self.dim_, metric="cosine")
                if gone:
                    self.index_.remove(gone)
                if changed:
                    self.index_.upsert(changed, np.array([now[i] for i in changed], dtype=np.float32))
            self._vectors = now
            self._rows = np.asarray(snapshot.indices(list(now)), dtype=np.int64)
            self._snapshot = snapshot

    def query_vector(self, body: SimilarBody, snapshot: CatalogSnapshot) -> tuple[np.ndarray, str | None]:
        """The query as a ``(1, dim)`` float32 array and the anchor item id (None for a vector query)."""
        if (body.item_id is None) == (body.vector is None):
            raise ValidationError("item_id", body.item_id, "give exactly one of item_id and vector")
        if body.item_id is not None:
            if body.item_id not in snapshot.index:
                raise NotFoundError(f"no item {body.item_id!r}", {"item_id": body.item_id})
            found = self._vectors.get(body.item_id)
            if found is None:
                raise ValidationError("item_id", body.item_id, "has no image_vector: give a vector instead")
            return np.asarray([found], dtype=np.float32), body.item_id
        vector = body.vector or []
        if self.dim_ is None:
            raise ValidationError("vector", f"{len(vector)} numbers", "no catalog item carries an image_vector yet")
        if len(vector) != self.dim_:
            raise ValidationError("vector", f"{len(vector)} numbers",
                                  f"must have {self.dim_} numbers (the catalog's image-vector dimension)")
        bad = next((n for n, v in enumerate(vector) if not math.isfinite(v)), None)
        if bad is not None:
            raise ValidationError(f"vector[{bad}]", vector[bad], "must be a finite number")
        if not any(vector):
            raise ValidationError("vector", "all zeros", "has no direction to compare with")
        return np.asarray([vector], dtype=np.float32), None

    def search(self, body: SimilarBody) -> dict[str, Any]:
        """The answer of one request (see the module docstring)."""
        snapshot, policy = self.engine.read_view()
        self.sync(snapshot)
        query, anchor = self.query_vector(body, snapshot)
        if body.user_id is None and body.anonymous_id is None:
            raise ValidationError("anonymous_id", None, "give user_id or anonymous_id (policy is per shopper)")
        req = ContextRequest(surface="pdp" if anchor else "search", user_id=body.user_id,
                             anonymous_id=body.anonymous_id, item_id=anchor, store=body.store, region=body.region,
                             k=body.k)
        profile = self.engine.profiles.get_many([body.user_id]).get(body.user_id) if body.user_id else None
        context = self.engine.features.context(req, profile)
        mask = policy.eligibility(snapshot, context) & snapshot.active
        index = self.index_
        hits: list[tuple[int, float]] = []
        if index is not None and len(index):
            rows = self._rows
            blocked = len(index) - int(mask[rows[rows >= 0]].sum())
            res = index.search(query, k=min(len(index), body.k + blocked))
            for item_id, score in zip(res.ids[0], res.scores[0].tolist(), strict=True):
                row = snapshot.index.get(item_id, -1)
                if row >= 0 and mask[row] and len(hits) < body.k:
                    hits.append((row, float(score)))
        stock = snapshot.in_stock()
        items = [self._hit(snapshot, row, score, pos, bool(stock[row])) for pos, (row, score) in enumerate(hits)]
        return {"items": items,
                "query": {"item_id": anchor} if anchor else {"vector_dim": self.dim_},
                "dim": self.dim_, "indexed": len(self._vectors), "policy_version": policy.version,
                "trace_id": uuid.uuid4().hex}

    @staticmethod
    def _hit(snapshot: CatalogSnapshot, row: int, score: float, position: int, in_stock: bool) -> dict[str, Any]:
        item = snapshot.items[row]
        return {"item_id": item.item_id, "title": item.title, "brand": item.brand, "category": list(item.category),
                "price": item_to_dict(item).get("price"), "score": round(score, 6), "position": position,
                "in_stock": in_stock,
                "reasons": [f"looks similar: image cosine similarity {score:.2f}"]}


def _similar(request: Request) -> SimilarIndex:
    return engine_bound(request, "similar_index", SimilarIndex)


def similar_router() -> APIRouter:
    """The ``POST /v1/search/similar`` route (scope search)."""
    router = APIRouter()

    @router.post("/v1/search/similar", dependencies=[Depends(require_scope("search"))],
                 summary="Visually similar items by image vector (an item's own, or one given), under policy")
    def post_similar(body: SimilarBody, service: Annotated[SimilarIndex, Depends(_similar)]) -> Response:
        return Response(orjson.dumps(service.search(body)), media_type="application/json")

    return router
