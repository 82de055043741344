"""``POST /v1/concierge/messages`` (scope concierge): the automated shopping concierge.

Body ``{"conversation_id", "message", "user_id" | "anonymous_id", "store", "save_preferences"}``;
answer ``{"conversation_id", "reply", "automated": true, "products": [{item_id, title, price,
reasons}], "slots": [...], "question": {slot, text, options, gain_bits} | null, "turn",
"saved_preferences", "suggestion"}``. Products come from the engine's search index and policy (or its
recommendations when nothing was asked for); see :mod:`shopkeep.concierge.assistant`.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from shopkeep.concierge import Concierge, ConciergeMessage, ConciergeReply
from shopkeep.features.context import ContextRequest
from shopkeep.serving.deps import require_scope
from shopkeep.serving.routes_search import SearchService, _service

__all__ = ["ConciergeBody", "concierge_for", "reply_to_dict", "router"]


class ConciergeBody(BaseModel):
    """``POST /v1/concierge/messages`` body."""

    model_config = ConfigDict(extra="forbid")
    conversation_id: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1, max_length=1000)
    user_id: str | None = Field(default=None, max_length=256)
    anonymous_id: str | None = Field(default=None, max_length=256)
    store: str | None = Field(default=None, max_length=256)
    save_preferences: bool = True


def concierge_for(service: SearchService) -> Concierge:
    """A concierge over a search service's engine (search index, policy, profiles, recommendations)."""
    engine = service.engine

    def view() -> Any:
        snapshot, policy = engine.read_view()
        return service.searcher(snapshot), policy

    def context(user_id: str | None, anonymous_id: str | None, store: str | None) -> Any:
        profile = engine.profiles.get_many([user_id]).get(user_id) if user_id else None
        req = ContextRequest(surface="search", user_id=user_id, anonymous_id=anonymous_id, store=store)
        return engine.features.context(req, profile)

    def recommend(user_id: str | None, anonymous_id: str | None, k: int) -> list[str]:
        slate = engine.recommend(ContextRequest(surface="home", user_id=user_id, anonymous_id=anonymous_id, k=k))
        return [it.item_id for it in slate.items]

    def fit(user_id: str | None, anonymous_id: str | None, item_id: str) -> str | None:
        profile = engine.profiles.get_many([user_id]).get(user_id) if user_id else None
        if profile is not None and not profile.consent.personalization:
            return None  # no consent: no advice drawn from the shopper's own purchases and returns
        advice = engine.fit.advise(user_id, anonymous_id, item_id)
        return advice.note if advice is not None else None

    return Concierge(engine.store, view, profiles=engine.profiles, context=context, recommend=recommend, fit=fit)


def reply_to_dict(r: ConciergeReply) -> dict[str, Any]:
    """The wire answer of a concierge reply."""
    q = r.question
    return {"conversation_id": r.conversation_id, "reply": r.reply, "automated": r.automated, "turn": r.turn,
            "products": [{"item_id": p.item_id, "title": p.title, "reasons": list(p.reasons),
                          "price": {"amount": p.price_minor, "currency": p.currency}
                          if p.price_minor is not None else None} for p in r.products],
            "slots": [{"kind": c.kind, "key": c.key, "op": c.op, "value": c.value, "label": c.label()}
                      for c in r.slots],
            "question": None if q is None else {"slot": q.slot, "text": q.text, "options": list(q.options),
                                                "gain_bits": q.gain_bits},
            "saved_preferences": dict(r.saved_preferences), "suggestion": r.suggestion}


router = APIRouter()


@router.post("/v1/concierge/messages", dependencies=[Depends(require_scope("concierge"))],
             summary="Automated shopping concierge: one message in, a question or grounded products out")
def post_message(body: ConciergeBody, request: Request,
                 service: Annotated[SearchService, Depends(_service)]) -> Response:
    state = request.app.state
    bot: Concierge | None = getattr(state, "concierge", None)
    if bot is None or getattr(state, "concierge_service", None) is not service:
        bot = state.concierge = concierge_for(service)
        state.concierge_service = service
    reply = bot.reply(ConciergeMessage(body.conversation_id, body.message, body.user_id, body.anonymous_id,
                                       body.store, body.save_preferences))
    return Response(orjson.dumps(reply_to_dict(reply)), media_type="application/json")
