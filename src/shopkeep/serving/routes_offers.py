"""``POST /v1/offers/decide``, ``POST /v1/offers/whatif``, ``GET /v1/audit/decisions`` and ``.../{id}``.

The offer service lives in ``app.state.offers`` (an :class:`OffersService`); when absent, the first
request builds one from the engine's Store: the uplift model that ``shopkeep offers fit`` stored there
(learned from the Store's own randomized exposures), else a demo model learned the same way from a
randomized log of the frozen ``responsive`` simulated world written to a scratch memory store. Audit
records go to the engine's Store. The stack obeys the offer strategy operators approved
(``offer_strategies``, :mod:`shopkeep.pipeline.offer_strategy`): an action disabled for the request's
``campaign`` is never chosen; the answer's ``refused`` list and the audit record's verdicts say why.

``POST /v1/offers/whatif`` runs the simulator's frontier (deterministic per seed; results are cached
per request body) and returns the points, the frontier and the SVG plot; ``?format=svg`` returns the
plot itself (``image/svg+xml``) for the console.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.offers.audit import AuditTrail
from shopkeep.offers.decide import ACTIONS, DecisionRequest, DecisionStack
from shopkeep.offers.guardrails import ItemFacts, ShopperFacts
from shopkeep.offers.simulation import default_rules, learn_from_log
from shopkeep.offers.uplift import FEATURES, UpliftModel
from shopkeep.offers.whatif import frontier_svg, run_whatif
from shopkeep.pipeline.offer_strategy import StrategyReader, StrategyStack
from shopkeep.serving.deps import require_scope
from shopkeep.simulate.pricing import CONFIGS
from shopkeep.storage.base import Store
from shopkeep.types import Money, utc_now

__all__ = ["OffersService", "offers_router"]
_LOCK = threading.Lock()


@dataclass
class OffersService:
    """The decision stack and its audit trail, shared by the offer routes."""

    stack: DecisionStack
    audit: AuditTrail


def _model(store: Store) -> UpliftModel:
    try:
        return UpliftModel.latest(store)
    except NotFoundError:
        return learn_from_log(CONFIGS["responsive"], 0, 2000).model


def _service(request: Request) -> OffersService:
    with _LOCK:
        svc: OffersService | None = getattr(request.app.state, "offers", None)
        if svc is None:
            store = request.app.state.engine.store
            stack = StrategyStack(_model(store), default_rules(), strategies=StrategyReader(store))
            svc = OffersService(stack, AuditTrail(store))
            request.app.state.offers = svc
        return svc


SvcDep = Annotated[OffersService, Depends(_service)]


def _money(body: Mapping[str, Any], key: str, required: bool = True) -> Money | None:
    raw = body.get(key)
    if raw is None:
        if required:
            raise ValidationError(key, None, "is required")
        return None
    return Money.parse(raw, field=key)


def parse_request(body: Mapping[str, Any]) -> DecisionRequest:
    """A DecisionRequest from the JSON body (``shopper_key``, ``item``, ``features``, ``ship_cost``...)."""
    if not isinstance(body, Mapping):
        raise ValidationError("body", body, "must be a JSON object")
    key = body.get("shopper_key")
    if not isinstance(key, str) or not key:
        raise ValidationError("shopper_key", key, "must be a non-empty pseudonymous key")
    item = body.get("item")
    if not isinstance(item, Mapping) or not isinstance(item.get("item_id"), str):
        raise ValidationError("item", item, 'must be {"item_id", "price", "cost", "map_price"?}')
    feats = body.get("features", {})
    if not isinstance(feats, Mapping) or not all(isinstance(v, int | float) for v in feats.values()):
        raise ValidationError("features", feats, "must map feature names to numbers")
    actions = tuple(body.get("actions") or ACTIONS)
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise ValidationError("actions", unknown, f"unknown; known: {sorted(ACTIONS)}")
    price = _money(item, "price")
    if price is None:  # pragma: no cover - _money(required=True) already refused it
        raise ValidationError("item.price", None, "is required")
    brand = item.get("brand")
    facts = ItemFacts(item["item_id"], price, _money(item, "cost", False), _money(item, "map_price", False),
                      str(item.get("category", "")), item.get("regulated_class"),
                      brand if isinstance(brand, str) and brand else None)
    shopper = ShopperFacts(key, str(body.get("region", "")), str(body.get("channel", "web")),
                           bool(body.get("loyalty_member", False)), str(body.get("segment", "default")))
    campaign = body.get("campaign", "default")
    if not isinstance(campaign, str) or not 1 <= len(campaign) <= 64:
        raise ValidationError("campaign", campaign, "must be a campaign name of 1 to 64 characters")
    ship = _money(body, "ship_cost", False) or Money(0, price.currency)
    return DecisionRequest(shopper, facts, {k: float(v) for k, v in feats.items()}, ship,
                           complement_price=_money(body, "complement_price", False),
                           stock_age_days=int(body.get("stock_age_days", 0)), campaign=campaign, actions=actions,
                           now=utc_now())


def _decision_json(doc: Mapping[str, Any]) -> dict[str, Any]:
    ranked = sorted((c for c in doc["candidates"] if c["allowed"] and c["action"] != doc["action"]),
                    key=lambda c: -c["expected_value"])
    return {"decision_id": doc["decision_id"], "action": doc["action"], "kind": ACTIONS[doc["action"]].kind,
            "expected_value_cents": round(doc["expected_value"], 2), "offer_price": doc["offer_price"],
            "personalized_price": doc["personalized_price"],
            "disclosure": "personalized price" if doc["personalized_price"] else None,
            "timing": ACTIONS[doc["action"]].timing, "channel": ACTIONS[doc["action"]].channel,
            "runner_ups": [{"action": c["action"], "expected_value_cents": round(c["expected_value"], 2)}
                           for c in ranked[:3]],
            "model_versions": doc["model_versions"], "elasticity_prior": doc.get("prior"),
            "arm": doc.get("arm"), "propensity": doc.get("propensity"), "features_expected": list(FEATURES),
            "campaign": doc["inputs"]["campaign"],
            "refused": [{"action": c["action"], "verdicts": [v for v in c["verdicts"] if not v["passed"]]}
                        for c in doc["candidates"] if not c["allowed"]]}


_WHATIF_CACHE: dict[str, dict[str, Any]] = {}


#: The defaults (4000 + 600 x 4 x 4 = 13,600) fit; the largest grids need a smaller n_eval.
_WHATIF_MAX_WORK = 20_000


def _whatif(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the what-if body and run it (cached: the result is a pure function of the body)."""
    import json

    if not isinstance(body, Mapping):
        raise ValidationError("body", body, "must be a JSON object")
    weights = body.get("margin_weights", [0.0, 0.5, 0.8, 1.0])
    budgets = body.get("budgets", [0, 100, 500, None])
    for name, vals, nullable in (("margin_weights", weights, False), ("budgets", budgets, True)):
        if not isinstance(vals, list) or not 1 <= len(vals) <= 8 or not all(
                (nullable and v is None) or (isinstance(v, int | float) and not isinstance(v, bool)) for v in vals):
            raise ValidationError(name, vals, "must be a list of 1..8 numbers (budgets: null = unlimited)")
    seed, n_eval, n_log = body.get("seed", 0), body.get("n_eval", 600), body.get("n_log", 4000)
    for name, val, low, top in (("seed", seed, 0, 10**6), ("n_eval", n_eval, 1, 2000), ("n_log", n_log, 100, 8000)):
        if type(val) is not int or not low <= val <= top:
            raise ValidationError(name, val, f"must be an integer {low}..{top}")
    work = n_log + n_eval * len(weights) * len(budgets)
    if work > _WHATIF_MAX_WORK:  # one request may not hold a worker thread for minutes of simulation
        raise ValidationError("n_eval", n_eval, f"n_log + n_eval x margin_weights x budgets = {work} simulated "
                              f"shoppers; at most {_WHATIF_MAX_WORK} per request")
    key = json.dumps([body.get("config", "responsive"), seed, weights, budgets, n_eval, n_log])
    if key not in _WHATIF_CACHE:
        report = run_whatif(str(body.get("config", "responsive")), seed, margin_weights=[float(w) for w in weights],
                            budgets_usd=[None if b is None else float(b) for b in budgets], n_log=n_log,
                            n_eval=n_eval)
        report["svg"] = frontier_svg(report)
        _WHATIF_CACHE[key] = report
    return _WHATIF_CACHE[key]


def offers_router() -> APIRouter:
    """The offer-decision and audit routes (decide needs ``read``; audit needs ``admin``)."""
    router = APIRouter()

    @router.post("/v1/offers/decide", dependencies=[Depends(require_scope("offers"))],
                  summary="Decide a bounded 1:1 offer")
    def decide(svc: SvcDep, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        req = parse_request(body)
        with _LOCK:
            _, doc = svc.audit.decide(svc.stack, req)
        return _decision_json(doc)

    @router.post("/v1/offers/whatif", dependencies=[Depends(require_scope("offers"))], response_model=None,
                 summary="Margin-versus-conversion frontier over margin weight and discount budget (simulated)")
    def whatif(body: Annotated[dict[str, Any], Body()],
               format: Annotated[str, Query(pattern="^(json|svg)$")] = "json") -> dict[str, Any] | Response:
        report = _whatif(body)
        if format == "svg":
            return Response(report["svg"], media_type="image/svg+xml")
        return report

    @router.get("/v1/audit/decisions/{decision_id}", dependencies=[Depends(require_scope("audit"))],
                summary="One stored offer decision with candidates, verdicts and model versions")
    def get_decision(svc: SvcDep, decision_id: str, replay: bool = False) -> dict[str, Any]:
        doc = svc.audit.get(decision_id)
        if replay:
            again = AuditTrail.replay(doc, svc.stack)
            same = again.action == doc["action"] and again.decision_id == doc["decision_id"]
            return {**doc, "replay": {"action": again.action, "expected_value": again.expected_value, "same": same}}
        return doc

    @router.get("/v1/audit/decisions", dependencies=[Depends(require_scope("audit"))],
                summary="Filtered decision listing")
    def list_decisions(svc: SvcDep, shopper_key: str | None = None, action: str | None = None,
                       k: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        docs = svc.audit.list(shopper_key=shopper_key, action=action, k=k)
        return {"decisions": docs, "count": len(docs)}

    return router
