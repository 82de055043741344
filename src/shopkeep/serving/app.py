"""The HTTP API: ``create_app(config, engine=None)`` builds a FastAPI app over one :class:`Engine`.

Routes (``/v1``, snake_case JSON, one error envelope ``{"error": {"code", "message", "details"}}``):

* ``POST /v1/events`` (scope ingest) — ``{"events": [...]}``; answers the counts accepted /
  duplicates / conflicts / rejected and per-event errors; idempotent by event_id.
* ``GET /v1/recommendations`` (scope read) — ``{"items": [...], "trace_id"}`` (+ ``explain``); the
  optional visit context ``device``, ``referrer``, ``campaign``, ``channel`` steers the cold start.
* ``GET /v1/items/{id}`` (read), ``PUT /v1/items/{id}`` (admin) — a PUT item is recommendable at once.
* ``GET /v1/policies`` (read), ``PUT /v1/policies`` (admin) — validated, versioned merchant policy.
* ``GET /healthz``, ``GET /metrics`` (Prometheus text, scope read), ``GET /openapi.json``.
"""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Path, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from shopkeep import __version__
from shopkeep.config import Config
from shopkeep.errors import ValidationError
from shopkeep.pipeline.engine import Engine, Slate
from shopkeep.pipeline.ingest import IngestReport
from shopkeep.serving.auth import ApiKeys, install_access_control
from shopkeep.serving.deps import EngineDep, RecommendationQuery, require_scope
from shopkeep.serving.errors import install_error_handlers
from shopkeep.serving.middleware import Metrics, ServiceMiddleware
from shopkeep.serving.routes_agents import agents_router
from shopkeep.serving.routes_catalog import catalog_router
from shopkeep.serving.routes_concierge import router as concierge_router
from shopkeep.serving.routes_experiments import experiments_router
from shopkeep.serving.routes_offers import offers_router
from shopkeep.serving.routes_onboarding import onboarding_router
from shopkeep.serving.routes_operators import operators_router
from shopkeep.serving.routes_privacy import privacy_router
from shopkeep.serving.routes_search import router as search_router
from shopkeep.serving.routes_similar import similar_router
from shopkeep.serving.routes_transparency import transparency_router
from shopkeep.serving.routes_web import web_router
from shopkeep.serving.routes_webhooks import webhooks_router

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "freeze_heap", "report_to_dict", "slate_to_dict"]

log = logging.getLogger("shopkeep.serving")

#: Largest request body accepted (413 above it).
DEFAULT_MAX_BODY_BYTES = 1_000_000
_MAX_EVENTS = 5000


class EventsBody(BaseModel):
    """``POST /v1/events`` body: the events in their wire form (validated one by one)."""

    model_config = ConfigDict(extra="forbid")
    events: list[dict[str, Any]] = Field(max_length=_MAX_EVENTS, description="wire-format events")


class ErrorBody(BaseModel):
    """The error envelope's inner object."""

    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    """Every 4xx/5xx answer."""

    error: ErrorBody


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def report_to_dict(report: IngestReport) -> dict[str, Any]:
    """The ``POST /v1/events`` answer of an ingest report (per-event errors name index, field, reason)."""
    errors = [{"index": (e.line or 1) - 1, "code": e.code, "field": e.field, "reason": e.reason,
               "message": e.message} for e in report.errors]
    errors += [{"index": int(e.details.get("line", 1)) - 1, "code": e.code, "field": "event_id",
                "reason": str(e.details.get("reason", "")), "message": e.message} for e in report.conflict_errors]
    return {"accepted": report.accepted, "duplicates": report.duplicates, "conflicts": report.conflicts,
            "rejected": report.rejected, "errors": sorted(errors, key=lambda e: e["index"])}


def slate_to_dict(slate: Slate) -> dict[str, Any]:
    """The ``GET /v1/recommendations`` answer."""
    out: dict[str, Any] = {
        "items": [{"item_id": it.item_id, "score": it.score,
                   "price": it.price.to_dict() if it.price is not None else None, "position": it.position,
                   "sources": list(it.sources), "propensity": it.propensity, "reasons": list(it.reasons),
                   **({"fit": it.fit} if it.fit is not None else {})}
                  for it in slate.items],
        "trace_id": slate.trace_id,
    }
    if slate.explain is not None:
        out["explain"] = slate.explain
    return out


def _register_routes(app: FastAPI) -> None:
    @app.post("/v1/events", dependencies=[Depends(require_scope("ingest"))], responses=_ERRORS,
              summary="Ingest shopper events (idempotent by event_id)")
    def post_events(body: EventsBody, engine: EngineDep, request: Request) -> Response:
        # a plain def (thread pool): a batch waits on SQLite and Redis for most of its wall time, and other
        # requests run meanwhile; the hop costs little next to a batch of up to hundreds of events
        report = engine.ingest(body.events)
        metrics: Metrics = request.app.state.metrics
        for outcome in ("accepted", "duplicates", "conflicts", "rejected"):
            if getattr(report, outcome):
                metrics.events.labels(outcome).inc(getattr(report, outcome))
        return _json(report_to_dict(report))

    @app.get("/v1/recommendations", dependencies=[Depends(require_scope("read"))], responses=_ERRORS,
             summary="A ranked, policy-checked slate for a shopper on a surface")
    async def get_recommendations(engine: EngineDep, request: Request, req: RecommendationQuery) -> Response:
        # async, as are its dependencies: on the event loop, not in the thread pool. A slate is CPU-bound (the
        # GIL serializes threads anyway) with one short Redis read, and the hops cost more CPU than they saved
        slate = engine.recommend(req)
        metrics: Metrics = request.app.state.metrics
        metrics.slates.labels(req.surface).inc()
        metrics.slate_items.observe(len(slate.items))
        return _json(slate_to_dict(slate))

    @app.get("/v1/items/{item_id}", dependencies=[Depends(require_scope("read"))], responses=_ERRORS,
             summary="One catalog item in its wire form")
    def get_item(item_id: Annotated[str, Path(max_length=256)], engine: EngineDep) -> Response:
        return _json(engine.get_item(item_id))

    @app.put("/v1/items/{item_id}", dependencies=[Depends(require_scope("admin"))], responses=_ERRORS,
             summary="Create or replace an item; it is recommendable at once")
    def put_item(item_id: Annotated[str, Path(max_length=256)], body: dict[str, Any], engine: EngineDep) -> Response:
        given = body.get("item_id", item_id)
        if given != item_id:
            raise ValidationError("item_id", given, f"differs from the id in the path ({item_id!r})")
        return _json(engine.put_item({**body, "item_id": item_id}))

    @app.get("/v1/policies", dependencies=[Depends(require_scope("read"))], responses=_ERRORS,
             summary="The merchant policy in force (versioned)")
    def get_policies(engine: EngineDep) -> Response:
        return _json(engine.policy_dict())

    @app.put("/v1/policies", dependencies=[Depends(require_scope("admin"))], responses=_ERRORS,
             summary="Replace the merchant policy (validated; clear errors name the rule and field)")
    def put_policies(body: dict[str, Any], engine: EngineDep) -> Response:
        return _json(engine.set_policy(body))

    @app.get("/healthz", summary="Liveness and readiness")
    def healthz(engine: EngineDep) -> Response:
        health = engine.health()
        return _json(health, 200 if health.get("status") == "ok" else 503)

    @app.get("/metrics", dependencies=[Depends(require_scope("read"))], summary="Prometheus metrics")
    def metrics(request: Request) -> Response:
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def freeze_heap() -> None:
    """Collect once, then move every object alive now (the engine's catalog snapshot: a few objects per
    item) out of the cyclic collector's generations (``gc.freeze``), so the full collections a busy
    worker triggers no longer walk the whole catalog on the request path. Objects made later (a newer
    snapshot after an artifact swap) are collected as usual."""
    gc.collect()
    gc.freeze()


def _api_keys(config: Config, auth: bool | None) -> ApiKeys:
    enabled = config.serving.auth if auth is None else auth
    keys = ApiKeys.from_config(config.serving, enabled=enabled)
    if enabled and not keys.entries:
        from shopkeep.errors import ConfigError

        raise ConfigError("auth is on but no API keys are configured: `shopkeep keys create --scopes read,ingest` "
                          "prints a key and its entry for serving.api_keys (or serving.api_keys_file), or turn "
                          "auth off",
                          {"key": "serving.api_keys"})
    return keys


def create_app(config: Config | None = None, engine: Engine | None = None, *, auth: bool | None = None,
               max_body_bytes: int | None = None, owns_engine: bool = False) -> FastAPI:
    """The FastAPI app. Without ``engine`` one is opened from ``config.storage`` at startup; an engine
    opened here (or given with ``owns_engine``) is closed on shutdown.

    ``auth`` overrides ``serving.auth``; with auth on, ``serving.api_keys`` must name at least one key.
    """
    config = config or Config()
    keys = _api_keys(config, auth)
    owned = engine is None or owns_engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if app.state.engine is None:
            app.state.engine = Engine.open(config)
        freeze_heap()
        try:
            yield
        finally:
            if owned and app.state.engine is not None:
                app.state.engine.close()

    app = FastAPI(title="shopkeep", version=__version__, lifespan=lifespan,
                  description="1:1 retail personalization: events in, explainable recommendations out.")
    app.state.engine = engine
    app.state.api_keys = keys
    app.state.metrics = Metrics()
    install_error_handlers(app)
    _register_routes(app)
    app.include_router(web_router())  # the storefront and console pages (serving/web) and /v1/web
    app.include_router(search_router)  # POST /v1/search (serving/routes_search.py)
    app.include_router(offers_router())  # POST /v1/offers/decide, GET /v1/audit/decisions (routes_offers.py)
    app.include_router(concierge_router)  # POST /v1/concierge/messages (routes_concierge.py)
    app.include_router(catalog_router())  # /v1/catalog/audit|proposals, product JSON-LD, feed (routes_catalog.py)
    app.include_router(agents_router())  # /v1/agents: product facts, availability, policy, grants (routes_agents.py)
    app.include_router(experiments_router())  # GET /v1/experiments/{id}/report (routes_experiments.py)
    app.include_router(privacy_router())  # GET/DELETE /v1/users/{user_id} (routes_privacy.py)
    app.include_router(webhooks_router())  # POST /v1/webhooks/events, HMAC-signed, no API key (routes_webhooks.py)
    app.include_router(similar_router())  # POST /v1/search/similar: image-vector similarity (routes_similar.py)
    app.include_router(transparency_router())  # /v1/transparency: why, personalization switch (routes_transparency.py)
    app.include_router(operators_router())  # /v1/operators: agents' proposals, approval (routes_operators.py)
    app.include_router(onboarding_router())  # /v1/onboarding: elicitation questions, answers (routes_onboarding.py)
    limit = max_body_bytes or config.serving.max_body_bytes or DEFAULT_MAX_BODY_BYTES
    app.add_middleware(ServiceMiddleware, metrics=app.state.metrics, max_body_bytes=limit)  # type: ignore[arg-type]
    install_access_control(app, config)  # per-key rate limits and CORS (serving/auth.py)
    if not keys.enabled:
        log.warning("API authentication is OFF: every caller may ingest, read and administer")
    return app
