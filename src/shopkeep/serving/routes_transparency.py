"""Shopper-facing transparency: "why am I seeing this", a personalization switch, and disclosures.

* ``GET /v1/transparency/recommendations`` (scope transparency) — the slate of ``GET /v1/recommendations``
  (same parameters, logged the same way) with, per item, ``why``: plain-language reasons derived from
  the trace (which sources found it, which merchant rules moved it, which of the shopper's own
  signals it matches), and ``personalized`` for the slate. ``explain=true`` adds the raw trace.
* ``POST /v1/transparency/search`` (transparency) — ``POST /v1/search`` with ``why`` per result.
* ``GET /v1/transparency/offers/{decision_id}?shopper_key=`` (transparency) — why the shopper got an offer,
  read from the offers audit trail; a key other than the decision's own answers 404.
* ``GET|PUT /v1/transparency/settings/{user_id}`` (transparency | ingest) — ``{"personalization": bool}``,
  stored as the profile's ``consent.personalization`` (the flag the engine already obeys: no session
  affinities, history or stated preferences, only non-personal sources; search and the concierge
  read the same profile). A shopper without a profile gets one on the first PUT.
* ``GET /v1/transparency/disclosures`` — the statements the storefront shows: the concierge is an
  automated assistant; an offer marked ``personalized_price`` is a price other shoppers may not see.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import NotFoundError
from shopkeep.features.context import affinity_key
from shopkeep.offers.decide import ACTIONS
from shopkeep.pipeline.engine import Engine, Slate
from shopkeep.profiles.model import Profile
from shopkeep.serving.deps import EngineDep, RecommendationQuery, require_scope
from shopkeep.serving.routes_offers import SvcDep
from shopkeep.serving.routes_search import SearchBody, SearchService, _service, response_to_dict
from shopkeep.types import Item

__all__ = ["DISCLOSURES", "offer_why", "recommendation_why", "search_why", "transparency_router"]

#: What the storefront discloses, verbatim.
DISCLOSURES = {
    "assistant": "The shopping concierge is an automated assistant, not a person. It only suggests products "
                 "from this store's catalog, at the catalog's prices.",
    "personalized_prices": "A price marked \"personalized price\" was chosen for you by an automated offer "
                           "system; other shoppers may see a different price for the same product.",
    "personalization": "Recommendations and search results use what you do in this store (views, searches, "
                       "cart) and preferences you state. You can switch personalization off at any time.",
}
_NOT_PERSONAL = "Personalization is off for you: this is not based on your activity."
_SOURCES = {
    "popular": "Popular with shoppers in this store right now.",
    "lookalike": "Popular with shoppers whose first picks were like yours.",
    "stated": "Matches preferences you told us.",
    "affinity": "Matches what you have been browsing.",
}
_RULES = {
    "pin": "Placed in this spot by the store.",
    "boost": "Promoted by the store.",
    "new_items": "A new arrival the store gives a guaranteed spot.",
    "diversity": "Moved to keep the list varied.",
    "novelty": "Moved to keep the list varied.",
    "map": "Shown at the manufacturer's advertised price.",
}


def _title(snap: CatalogSnapshot, item_id: str | None) -> str | None:
    i = snap.index.get(item_id, -1) if item_id else -1
    return snap.items[i].title if i >= 0 else None


def _own_signals(item: Item, affinities: Mapping[str, float]) -> list[str]:
    """The shopper's own signals this item matches: category, brand, attribute values."""
    out = []
    for name in reversed(item.category):
        if affinity_key("cat", name) in affinities:
            out.append(f"You have been looking at {name}.")
            break
    if item.brand and affinity_key("brand", item.brand) in affinities:
        out.append(f"You have been looking at {item.brand} products.")
    for key, value in item.attributes.items():
        values = value if isinstance(value, tuple) else (value,)
        hit = next((v for v in values if affinity_key("attr", key, v) in affinities), None)
        if hit is not None and len(out) < 4:
            shown = ("yes" if hit else "no") if isinstance(hit, bool) else hit
            out.append(f"You showed interest in {key.replace('_', ' ')}: {shown}.")
    return out


def recommendation_why(snap: CatalogSnapshot, explain: Mapping[str, Any], item_id: str,
                       anchor: str | None = None, personalized: bool = True) -> list[str]:
    """Plain-language reasons for one slate item from the engine's ``explain`` trace."""
    entry = next((it for it in explain.get("items", ()) if it["item_id"] == item_id), None)
    sources = sorted((entry or {}).get("sources", {}), key=lambda s: (entry or {})["sources"][s]["rank"])
    recent = list(explain.get("recent_items", ()))
    near = _title(snap, anchor) or _title(snap, recent[-1] if recent else None)
    why: list[str] = []
    for name in sources:
        if name in ("covisit", "complements"):
            why.append(f"Often bought or viewed together with {near}." if near else "Often bought together with "
                       "items shoppers chose.")
        elif name == "sequential":
            why.append(f"Shoppers who viewed {near} often looked at this next." if near
                       else "Shoppers often look at this next.")
        elif name in ("content", "two_tower"):
            why.append(f"Similar in kind, brand or features to {near}." if near else "Similar to items you viewed.")
        else:
            why.append(_SOURCES.get(name, f"Found by the {name.replace('_', ' ')} recommender."))
    i = snap.index.get(item_id, -1)
    if personalized and i >= 0:
        why += _own_signals(snap.items[i], explain.get("affinities", {}))
    for rule in explain.get("rules", ()):
        if rule.get("item_id") == item_id and rule.get("kind") in _RULES:
            why.append(f"{_RULES[rule['kind']]} (rule {rule['rule_id']})")
    for reason in (entry or {}).get("reasons", ()):
        kind, _, rule_id = str(reason).partition(":")
        if kind in ("boost", "map") and not any(rule_id in w for w in why):
            why.append(f"{_RULES[kind]} (rule {rule_id})")
    if not personalized:
        why.append(_NOT_PERSONAL)
    return list(dict.fromkeys(why)) or ["Recommended by the store."]


def search_why(hit: Mapping[str, Any], personalized: bool = True) -> list[str]:
    """Plain-language reasons for one search result from its sources and reasons."""
    why = []
    for reason in hit.get("reasons", ()):
        if reason.startswith("matches ") and reason != "matches your recent interests":
            why.append(f"Matches your search: {reason.removeprefix('matches ')}.")
        kind, _, rule_id = reason.partition(":")
        if kind in ("boost", "map"):
            why.append(f"{_RULES[kind]} (rule {rule_id})")
    sources = hit.get("sources", {})
    if "bm25" in sources:
        why.append("Its title or description contains the words you searched for.")
    if "dense" in sources:
        why.append("Close in meaning to what you searched for.")
    if personalized and ("personal" in sources or "matches your recent interests" in hit.get("reasons", ())):
        why.append("Ranked higher because it matches what you have been browsing.")
    if not personalized:
        why.append(_NOT_PERSONAL)
    return list(dict.fromkeys(why)) or ["Matches your search."]


def offer_why(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The shopper-facing account of one audited offer decision."""
    spec = ACTIONS[doc["action"]]
    why = []
    if spec.kind == "none":
        why.append("No offer was made: none was expected to help you enough within the store's limits.")
    else:
        why.append(f"Offer chosen automatically: {spec.kind.replace('_', ' ')}, the allowed option expected to be "
                   "most useful for this purchase.")
    blocked = sorted({v["rule"].replace("_", " ") for c in doc.get("candidates", ()) if not c["allowed"]
                      for v in c.get("verdicts", ()) if not v["passed"]})
    if blocked:
        why.append("Some offers were ruled out by the store's limits: " + ", ".join(blocked) + ".")
    used = [name.replace("_", " ") for name in doc.get("inputs", {}).get("features", {})]
    if used:
        why.append("Based on: " + ", ".join(used) + ".")
    personalized = bool(doc.get("personalized_price"))
    if personalized:
        why.append(DISCLOSURES["personalized_prices"])
    return {"decision_id": doc["decision_id"], "action": doc["action"], "kind": spec.kind,
            "offer_price": doc.get("offer_price"), "personalized_price": personalized,
            "disclosure": "personalized price" if personalized else None, "automated": True, "why": why}


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _profile(request: Request, user_id: str | None) -> Profile | None:
    if not user_id:
        return None
    engine: Engine = request.app.state.engine
    return engine.profiles.get_many([user_id]).get(user_id)


def _personalized(profile: Profile | None) -> bool:
    return profile.consent.personalization if profile is not None else True


class SettingsBody(BaseModel):
    """``PUT /v1/transparency/settings/{user_id}`` body."""

    model_config = ConfigDict(extra="forbid")
    personalization: bool


def _settings(profile: Profile | None, user_id: str) -> dict[str, Any]:
    updated = profile.consent.updated_at if profile is not None else None
    return {"user_id": user_id, "personalization": _personalized(profile),
            "updated_at": updated.isoformat().replace("+00:00", "Z") if updated else None}


UserPath = Annotated[str, Path(min_length=1, max_length=256)]


def _add_settings(router: APIRouter) -> None:
    @router.get("/v1/transparency/settings/{user_id}", dependencies=[Depends(require_scope("transparency"))],
                summary="A shopper's personalization switch")
    def get_settings(user_id: UserPath, request: Request) -> Response:
        return _json(_settings(_profile(request, user_id), user_id))

    @router.put("/v1/transparency/settings/{user_id}", dependencies=[Depends(require_scope("ingest"))],
                summary="Turn personalization on or off for a shopper (stored as profile consent)")
    def put_settings(user_id: UserPath, body: SettingsBody, engine: EngineDep) -> Response:
        if not engine.profiles.get_many([user_id]):
            engine.profiles.upsert(Profile(user_id=user_id))
        return _json(_settings(engine.profiles.set_consent(user_id, personalization=body.personalization), user_id))

    @router.get("/v1/transparency/disclosures", summary="What the storefront discloses about automation")
    def disclosures() -> Response:
        return _json(DISCLOSURES)


def _slate(slate: Slate) -> dict[str, Any]:
    return {"items": [{"item_id": it.item_id, "score": it.score, "position": it.position,
                       "price": it.price.to_dict() if it.price is not None else None,
                       "sources": list(it.sources), "reasons": list(it.reasons)} for it in slate.items],
            "trace_id": slate.trace_id, "surface": slate.surface}


def _recommendation_items(snap: CatalogSnapshot, data: dict[str, Any], explain: Mapping[str, Any],
                          anchor: str | None, personalized: bool) -> None:
    for it in data["items"]:
        it["why"] = recommendation_why(snap, explain, it["item_id"], anchor, personalized)


def transparency_router() -> APIRouter:
    """The ``/v1/transparency`` routes (see the module docstring)."""
    router = APIRouter()
    read = [Depends(require_scope("transparency"))]
    _add_settings(router)

    @router.get("/v1/transparency/recommendations", dependencies=read,
                summary="Recommendations with a plain-language 'why am I seeing this' per item")
    def recommendations(engine: EngineDep, request: Request, query: RecommendationQuery) -> Response:
        req = replace(query, explain=True)  # the why is read off the explain trace; ?explain= adds the trace
        item_id, carted = req.item_id, req.cart_item_ids
        user_id, explain = req.user_id, query.explain
        slate = engine.recommend(req)
        snap, _ = engine.read_view()
        personalized = _personalized(_profile(request, user_id))
        data = _slate(slate)
        trace = dict(slate.explain or {})
        _recommendation_items(snap, data, trace, item_id or (carted[-1] if carted else None), personalized)
        data["personalized"] = personalized
        if explain:
            data["explain"] = trace
        return _json(data)

    @router.post("/v1/transparency/search", dependencies=read,
                 summary="Search with a plain-language 'why am I seeing this' per result")
    def search(body: SearchBody, request: Request, service: Annotated[SearchService, Depends(_service)]) -> Response:
        res, snapshot = service.search(body)
        data = response_to_dict(res, snapshot, uuid.uuid4().hex)
        personalized = _personalized(_profile(request, body.user_id))
        for hit in data["items"]:
            hit["why"] = search_why(hit, personalized)
        data["personalized"] = personalized
        return _json(data)

    @router.get("/v1/transparency/offers/{decision_id}", dependencies=read,
                summary="Why a shopper got an offer (and whether its price is personalized)")
    def offer(decision_id: Annotated[str, Path(max_length=128)], svc: SvcDep,
              shopper_key: Annotated[str, Query(min_length=1, max_length=256)]) -> Response:
        doc = svc.audit.get(decision_id)
        if doc.get("shopper_key") != shopper_key:  # never confirm another shopper's decision exists
            raise NotFoundError(f"no decision {decision_id!r} for this shopper", {"decision_id": decision_id})
        return _json(offer_why(doc))

    return router
