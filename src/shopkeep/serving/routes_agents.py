"""Structured read APIs for AI shopping agents (``/v1/agents``), answered only from governed data.

* ``GET /v1/agents/products/{id}`` (read) — catalog facts: price (Money), MAP-safe display price, attributes, rating.
* ``GET /v1/agents/availability/{id}?location=`` (read) — units by location, ship SLA, same-day pickup stores.
* ``GET /v1/agents/policy?item_id=&region=`` (read) — the hard rules that apply to the item there (regulated and
  age gates, exclusions, MAP) and the boosts and pins active now ("promotions").
* ``POST /v1/agents/offer-eligibility`` (read) — the offer decision stack for (user, item), else price and MAP.
* ``GET /v1/agents/explanations/{trace_id}`` (read) — a served slate as logged (items, sources, propensities).
* ``POST /v1/agents/grants`` — an admin key, or a shopper token with scope ``delegate`` for the same user, mints a
  scoped, expiring token; ``GET /v1/agents/me/context`` takes that token (``Authorization: Bearer`` or
  ``X-Shopper-Token``) and answers only that shopper's data, limited to the token's scopes.

Tokens are random (``skt_...``); the store keeps only their SHA-256 digest (collection ``agent_grants``).
"""

from __future__ import annotations

import math
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import NotFoundError, ShopkeepError, ValidationError
from shopkeep.events.log import events_of_user, read_slates
from shopkeep.features.context import ContextRequest
from shopkeep.pipeline.engine import Engine
from shopkeep.policy.hard import hard_checks, map_mode, selector_mask
from shopkeep.policy.model import BoostRule, ExcludeRule, PinRule, PolicySet, RegulatedRule
from shopkeep.profiles.identity import IdentityGraph
from shopkeep.serving.auth import ApiKeys, digest, key_from_headers
from shopkeep.serving.deps import EngineDep, require_scope
from shopkeep.serving.errors import ApiError
from shopkeep.types import EventType, Item, Money

__all__ = ["GRANT_SCOPES", "agents_router", "availability", "product_facts"]

#: Scopes a shopper token may carry: ``orders`` (recent purchases), ``preferences`` (stated preferences,
#: budget, exclusions, loyalty), ``delegate`` (may mint narrower tokens for the same shopper).
GRANT_SCOPES = ("orders", "preferences", "delegate")
GRANTS = "agent_grants"
_MAX_TTL_S = 30 * 86_400
_LOCK = threading.Lock()
_SHIP = ("ship", "delivery")


ItemId = Annotated[str, Path(max_length=256)]


def _item(snapshot: CatalogSnapshot, item_id: str) -> tuple[int, Item]:
    i = snapshot.index.get(item_id)
    if i is None:
        raise NotFoundError(f"unknown item {item_id!r}", {"item_id": item_id})
    return i, snapshot.items[i]


def _money(m: Money | None) -> dict[str, Any] | None:
    return None if m is None else m.to_dict()


def _policy_set(engine: Engine) -> PolicySet | None:
    _, stage = engine.read_view()
    found = getattr(stage, "policy", None)
    return found if isinstance(found, PolicySet) else None


def product_facts(item: Item, map_hide: bool = False) -> dict[str, Any]:
    """Catalog facts of one item; ``display_price`` is never below MAP (None when hidden or unpriced)."""
    price, floor = item.price, item.map_price
    display: Money | None = price
    if price is not None and floor is not None and floor.currency == price.currency and price.amount < floor.amount:
        display = None if map_hide else floor
    return {"item_id": item.item_id, "title": item.title, "brand": item.brand, "vendor": item.vendor,
            "group_id": item.group_id, "category": list(item.category), "description": item.description,
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in item.attributes.items()},
            "price": _money(price), "map_price": _money(floor), "display_price": _money(display),
            "rating": {"average": item.rating_avg, "count": item.rating_count},
            "regulated_class": item.regulated_class, "regulated_regions": list(item.regulated_regions),
            "active": item.active}


def availability(item: Item, location: str | None = None) -> dict[str, Any]:
    """Units by location and the fulfillment options (ship with SLA, pickup where units are on hand)."""
    inv = dict(item.inventory)
    ship = [{"from": o.location, "sla_days": o.sla_days,
             "available": (inv.get(o.location, 0) > 0) if o.location else any(q > 0 for q in inv.values())}
            for o in item.fulfillment if o.kind in _SHIP]
    pickup = [{"store": o.location, "units": inv.get(o.location or "", 0), "same_day": o.same_day}
              for o in item.fulfillment if o.kind == "pickup" and o.location and inv.get(o.location, 0) > 0]
    out: dict[str, Any] = {
        "item_id": item.item_id, "active": item.active, "inventory": inv,
        "in_stock_anywhere": any(q > 0 for q in inv.values()) or any(o.kind == "digital" for o in item.fulfillment),
        "ship": ship, "pickup_stores": pickup,
        "same_day_pickup_stores": [p["store"] for p in pickup if p["same_day"]],
    }
    if location is not None:
        here = inv.get(location, 0)
        out["location"] = {"location": location, "units": here,
                           "same_day_pickup": location in out["same_day_pickup_stores"],
                           "pickup": any(p["store"] == location for p in pickup),
                           "can_ship": any(s["available"] for s in ship)}
    return out


def _rule_json(rule: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule.id, "kind": rule.kind}
    if isinstance(rule, RegulatedRule):
        out.update(regulated_class=rule.regulated_class, min_age=rule.min_age,
                   regions=list(rule.regions) if rule.regions is not None else None)
    if isinstance(rule, BoostRule):
        out.update(multiply=rule.multiply, add=rule.add)
    if isinstance(rule, PinRule):
        out.update(position=rule.position, surfaces=list(rule.surfaces))
    return out


def _promotes(rule: Any, snapshot: CatalogSnapshot, i: int, now_ms: int) -> bool:
    if isinstance(rule, PinRule):
        return rule.window.contains(now_ms) and rule.item_id == snapshot.item_ids[i]
    if isinstance(rule, BoostRule):
        return rule.window.contains(now_ms) and bool(selector_mask(snapshot, rule.select)[i])
    return False


def policy_for(engine: Engine, item_id: str, region: str | None) -> dict[str, Any]:
    """The hard rules that block or gate ``item_id`` in ``region`` and the promotions active on it now."""
    snapshot, stage = engine.read_view()
    i, item = _item(snapshot, item_id)
    policy = _policy_set(engine)
    ctx = engine.features.context(ContextRequest(surface="home", anonymous_id="agent-policy-probe", region=region))
    blocked = [{"rule_id": c.rule_id, "kind": c.kind, "reason": c.reason}
               for c in (hard_checks(snapshot, ctx, policy) if policy is not None else []) if not bool(c.ok[i])]
    applies: list[dict[str, Any]] = []
    promotions: list[dict[str, Any]] = []
    for rule in policy.rules if policy is not None else ():
        if isinstance(rule, RegulatedRule):
            own = bool(item.regulated_class) and \
                (rule.regulated_class or "").strip().lower() == (item.regulated_class or "").strip().lower()
            if own or (rule.select is not None and bool(selector_mask(snapshot, rule.select)[i])):
                applies.append(_rule_json(rule))
        elif isinstance(rule, ExcludeRule) and bool(selector_mask(snapshot, rule.select)[i]):
            applies.append(_rule_json(rule))
        elif _promotes(rule, snapshot, i, ctx.now_ms):
            promotions.append(_rule_json(rule))
    map_id, mode = map_mode(policy) if policy is not None else ("map-default", "raise")
    return {"item_id": item_id, "region": region, "policy_version": stage.version, "eligible": not blocked,
            "blocked_by": blocked, "rules": applies, "promotions": promotions,
            "map": {"rule_id": map_id, "mode": mode, "map_price": _money(item.map_price)},
            "note": "eligibility for an anonymous shopper without age verification in this region"}


class OfferBody(BaseModel):
    """``POST /v1/agents/offer-eligibility`` body."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    region: str | None = Field(default=None, max_length=16)
    features: dict[str, float] = Field(default_factory=dict, max_length=16, description="the offer model's shopper "
                                       "features when the caller computes them (deal_affinity, engagement, ...)")


def _offer_features(engine: Engine, body: OfferBody, price: Money) -> dict[str, float]:
    """Offer-model features: the profile's loyalty flag and the catalog price; the behavioural proxies
    the service does not compute (deal affinity, engagement, offers seen) default to 0 unless given."""
    profile = engine.profiles.get_many([body.user_id]).get(body.user_id)
    base = {"loyalty_member": float(bool(profile and profile.loyalty_member)), "deal_affinity": 0.0,
            "engagement": 0.0, "log_price": math.log(max(price.amount, 1) / 100.0), "offers_seen": 0.0}
    return {**base, **body.features}


def offer_eligibility(request: Request, engine: Engine, body: OfferBody) -> dict[str, Any]:
    """The offer decision stack's answer for (user, item), or the price and MAP when it cannot decide."""
    snapshot, _ = engine.read_view()
    _, item = _item(snapshot, body.item_id)
    facts = product_facts(item)
    out: dict[str, Any] = {"user_id": body.user_id, "item_id": body.item_id, "price": facts["price"],
                           "map_price": facts["map_price"], "display_price": facts["display_price"]}
    if item.price is None:
        return {**out, "offer": None, "eligible": False, "reason": "item has no price"}
    from shopkeep.serving import routes_offers

    doc = {"shopper_key": body.user_id, "region": body.region or "",
           "item": {"item_id": item.item_id, "price": item.price.to_dict(), "cost": _money(item.cost),
                    "map_price": _money(item.map_price), "category": "/".join(item.category),
                    "regulated_class": item.regulated_class},
           "features": _offer_features(engine, body, item.price)}
    try:
        svc = routes_offers._service(request)
        with _LOCK:
            _, decision = svc.audit.decide(svc.stack, routes_offers.parse_request(doc))
    except ShopkeepError as exc:
        return {**out, "offer": None, "eligible": False, "reason": f"offer stack unavailable: {exc}"}
    return {**out, "offer": routes_offers._decision_json(decision), "eligible": decision["action"] != "no_action",
            "features_used": doc["features"],
            "reason": "decided by the offer stack (bounded by guardrails, audited)"}


# -- shopper grants ---------------------------------------------------------------------------------
class GrantBody(BaseModel):
    """``POST /v1/agents/grants`` body."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    scopes: list[str] = Field(default_factory=lambda: ["orders", "preferences"], min_length=1, max_length=3)
    ttl_s: int = Field(default=3600, ge=1, le=_MAX_TTL_S)
    agent: str | None = Field(default=None, max_length=256, description="who the token is for (audit only)")


def _bearer(request: Request) -> str | None:
    return request.headers.get("x-shopper-token") or key_from_headers(request.headers)


def shopper_grant(engine: Engine, token: str | None) -> dict[str, Any]:
    """The live grant of ``token``; ApiError 401 when missing, unknown or expired."""
    if not token:
        raise ApiError("unauthorized", "a shopper token is required (Authorization: Bearer TOKEN)", {},
                       {"WWW-Authenticate": "Bearer"})
    doc = engine.store.get_many(GRANTS, [digest(token)]).get(digest(token))
    if doc is None:
        raise ApiError("unauthorized", "unknown shopper token", {}, {"WWW-Authenticate": "Bearer"})
    expires = datetime.fromisoformat(str(doc["expires_at"]))
    if expires <= datetime.now(UTC):
        raise ApiError("unauthorized", "the shopper token has expired", {"expired_at": doc["expires_at"]},
                       {"WWW-Authenticate": "Bearer"})
    return dict(doc)


def grant_caller(request: Request) -> dict[str, Any] | None:
    """Who asks for a grant: None for an admin key, else the caller's own live shopper grant (401 otherwise)."""
    keys: ApiKeys = request.app.state.api_keys
    if keys.allows(key_from_headers(request.headers), "admin") is True:
        return None
    return shopper_grant(request.app.state.engine, _bearer(request))


def create_grant(engine: Engine, body: GrantBody, parent: dict[str, Any] | None) -> dict[str, Any]:
    """Mint a token for ``body.user_id``: any for an admin (``parent`` None); a shopper's ``delegate`` token
    may mint only narrower tokens for the same shopper, expiring no later than itself."""
    bad = sorted(set(body.scopes) - set(GRANT_SCOPES))
    if bad:
        raise ValidationError("scopes", bad, f"unknown; use {list(GRANT_SCOPES)}")
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=body.ttl_s)
    if parent is not None:
        if parent["user_id"] != body.user_id or "delegate" not in parent["scopes"]:
            raise ApiError("forbidden", "only an admin key or this shopper's delegate token may grant access",
                           {"user_id": body.user_id})
        if not set(body.scopes) <= set(parent["scopes"]):
            raise ApiError("forbidden", "a delegated token cannot widen its parent's scopes",
                           {"scopes": body.scopes, "parent_scopes": parent["scopes"]})
        expires = min(expires, datetime.fromisoformat(str(parent["expires_at"])))
    token = "skt_" + secrets.token_urlsafe(24)
    doc = {"user_id": body.user_id, "scopes": sorted(set(body.scopes)), "agent": body.agent,
           "created_at": now.isoformat(), "expires_at": expires.isoformat()}
    engine.store.put_many(GRANTS, {digest(token): doc})
    return {"token": token, "user_id": body.user_id, "scopes": doc["scopes"], "expires_at": doc["expires_at"]}


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _orders(engine: Engine, user_id: str, k: int = 50) -> dict[str, Any]:
    """The shopper's last ``k`` purchases and returns from the event log (their linked anonymous ids included)."""
    events = events_of_user(engine.store, user_id, IdentityGraph(engine.store).anonymous_ids(user_id))
    bought = [e for e in events if e.type == EventType.PURCHASE][-k:]
    returned = [e for e in events if e.type == EventType.RETURN][-k:]
    return {
        "recent_orders": [{"item_id": e.item_id, "order_id": e.order_id, "quantity": e.quantity,
                           "price": _money(e.price), "purchased_at": _iso(e.timestamp)} for e in reversed(bought)],
        "returns": [{"item_id": e.item_id, "order_id": e.order_id, "reason": e.reason,
                     "returned_at": _iso(e.timestamp)} for e in reversed(returned)],
    }


def my_context(engine: Engine, grant: dict[str, Any]) -> dict[str, Any]:
    """The granted shopper's own data, limited to the grant's scopes."""
    user_id = str(grant["user_id"])
    profile = engine.profiles.get_many([user_id]).get(user_id)
    out: dict[str, Any] = {"user_id": user_id, "scopes": grant["scopes"], "expires_at": grant["expires_at"]}
    if "orders" in grant["scopes"]:
        out.update(_orders(engine, user_id))
    if "preferences" in grant["scopes"]:
        out["preferences"] = None if profile is None else {
            "preferences": {k: list(v) for k, v in profile.preferences.items()},
            "avoid": {k: list(v) for k, v in profile.avoid.items()},
            "budget_max": _money(profile.budget_max), "loyalty_tier": profile.loyalty_tier,
            "region": profile.region}
    return out


def explanation(engine: Engine, trace_id: str) -> dict[str, Any]:
    """A served slate as logged, with the current title of each item."""
    engine.flush()
    found = read_slates(engine.store, [trace_id]).get(trace_id)
    if found is None:
        raise NotFoundError(f"no served slate with trace_id {trace_id!r}", {"trace_id": trace_id})
    snapshot, _ = engine.read_view()
    doc = found.to_dict()
    doc["titles"] = {i: snapshot.items[snapshot.index[i]].title for i in found.items if i in snapshot.index}
    return doc


def agents_router() -> APIRouter:
    """The ``/v1/agents`` routes."""
    router = APIRouter(prefix="/v1/agents", tags=["agents"])
    read = [Depends(require_scope("read"))]

    @router.get("/products/{item_id}", dependencies=read, summary="Structured product facts")
    def get_product(item_id: ItemId, engine: EngineDep) -> dict[str, Any]:
        snapshot, _ = engine.read_view()
        policy = _policy_set(engine)
        return product_facts(_item(snapshot, item_id)[1], policy is not None and map_mode(policy)[1] == "hide")

    @router.get("/availability/{item_id}", dependencies=read, summary="Inventory and fulfillment by location")
    def get_availability(item_id: ItemId, engine: EngineDep,
                         location: Annotated[str | None, Query(max_length=256)] = None) -> dict[str, Any]:
        return availability(_item(engine.read_view()[0], item_id)[1], location)

    @router.get("/policy", dependencies=read, summary="Policy constraints and promotions for an item in a region")
    def get_policy(engine: EngineDep, item_id: Annotated[str, Query(max_length=256)],
                   region: Annotated[str | None, Query(max_length=16)] = None) -> dict[str, Any]:
        return policy_for(engine, item_id, region)

    @router.post("/offer-eligibility", dependencies=read, summary="Price, MAP and the offer decision")
    def post_offer(body: OfferBody, engine: EngineDep, request: Request) -> dict[str, Any]:
        return offer_eligibility(request, engine, body)

    @router.get("/explanations/{trace_id}", dependencies=read, summary="A served slate, as logged")
    def get_explanation(trace_id: Annotated[str, Path(max_length=128)], engine: EngineDep) -> dict[str, Any]:
        return explanation(engine, trace_id)

    @router.post("/grants", summary="Mint a scoped, expiring shopper token (admin, or the shopper's delegate token)")
    def post_grant(body: GrantBody, engine: EngineDep,
                   parent: Annotated[dict[str, Any] | None, Depends(grant_caller)]) -> dict[str, Any]:
        return create_grant(engine, body, parent)

    @router.get("/me/context", summary="The granting shopper's own context (shopper token required)")
    def get_me(engine: EngineDep, request: Request) -> dict[str, Any]:
        return my_context(engine, shopper_grant(engine, _bearer(request)))

    return router
