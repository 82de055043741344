"""Onboarding over HTTP: preference elicitation for new shoppers (:mod:`shopkeep.explore.elicitation`).

* ``POST /v1/onboarding/next`` (scope read) — body ``{"user_id" | "anonymous_id", "answers": {slot:
  answer}, "device"?, "referrer"?, "campaign"?, "channel"?}``; answers the next question chosen by
  expected information gain over where the shopper's next item probably is (the visit-context prior
  when the context is known, else popularity; eligible items only): ``{"done": false, "question":
  {"slot", "text", "options", "gain_bits"}, ...}``, or ``{"done": true, "question": null, ...}`` once
  asking no longer pays or ``max_questions`` were answered. An answer is one of the question's options
  or ``"no_preference"``.
* ``POST /v1/onboarding/answers`` (scope ingest) — body ``{"user_id", "answers", "consent": true}``;
  stores the answers as the shopper's zero-party preferences (and budget cap) in the profile. Without
  ``"consent": true``, or for a shopper who withdrew consent to personalization, nothing is stored.
  The next recommendations read them through the ``stated`` source.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ConflictError, ValidationError
from shopkeep.explore.elicitation import NO_PREFERENCE, PreferenceElicitor, answers_to_preferences, catalog_facets
from shopkeep.explore.questions import Facet
from shopkeep.features.context import ContextRequest
from shopkeep.serving.deps import EngineDep, require_scope

__all__ = ["onboarding_router"]

MAX_QUESTIONS = 3
_ID = Field(default=None, min_length=1, max_length=256)
_VISIT = r"^[A-Za-z0-9][A-Za-z0-9 _.:/@+-]*$"
_LOCK = threading.Lock()


class NextBody(BaseModel):
    """``POST /v1/onboarding/next`` body."""

    model_config = ConfigDict(extra="forbid")
    user_id: str | None = _ID
    anonymous_id: str | None = _ID
    answers: dict[str, Annotated[str, Field(max_length=64)]] = Field(default_factory=dict, max_length=8)
    device: str | None = Field(default=None, max_length=64, pattern=_VISIT)
    referrer: str | None = Field(default=None, max_length=64, pattern=_VISIT)
    campaign: str | None = Field(default=None, max_length=64, pattern=_VISIT)
    channel: str | None = Field(default=None, max_length=64, pattern=_VISIT)


class AnswersBody(BaseModel):
    """``POST /v1/onboarding/answers`` body."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    answers: dict[str, Annotated[str, Field(max_length=64)]] = Field(max_length=8)
    consent: bool = False


def _facets(request: Request, snapshot: CatalogSnapshot) -> list[Facet]:
    """The catalog's questions, built once per catalog snapshot."""
    with _LOCK:
        cached = getattr(request.app.state, "onboarding_facets", None)
        if cached is None or cached[0] is not snapshot:
            cached = (snapshot, catalog_facets(snapshot))
            request.app.state.onboarding_facets = cached
        facets: list[Facet] = cached[1]
        return facets


def _check_answers(answers: Mapping[str, str], facets: list[Facet]) -> dict[str, str]:
    """The answers, each naming a known question and one of its options (or ``no_preference``)."""
    by_slot = {f.slot: f for f in facets}
    for slot, answer in answers.items():
        facet = by_slot.get(slot)
        if facet is None:
            raise ValidationError(f"answers.{slot}", answer, f"no such question; known: {', '.join(by_slot)}")
        if answer != NO_PREFERENCE and answer not in facet.buckets:
            raise ValidationError(f"answers.{slot}", answer,
                                  f"must be one of {', '.join([*facet.buckets, NO_PREFERENCE])}")
    return dict(answers)


def onboarding_router() -> APIRouter:
    """The onboarding routes (next question: ``read``; storing answers: ``ingest``)."""
    router = APIRouter()
    elicitor = PreferenceElicitor(max_questions=MAX_QUESTIONS)

    @router.post("/v1/onboarding/next", dependencies=[Depends(require_scope("read"))],
                 summary="The next onboarding question by expected information gain, or done")
    def next_question(body: NextBody, engine: EngineDep, request: Request) -> dict[str, Any]:
        if body.user_id is None and body.anonymous_id is None:
            raise ValidationError("anonymous_id", None, "give user_id or anonymous_id")
        req = ContextRequest(user_id=body.user_id, anonymous_id=body.anonymous_id, device=body.device,
                             referrer=body.referrer, campaign=body.campaign, channel=body.channel)
        snapshot, weights = engine.prior_weights(req)
        facets = _facets(request, snapshot)
        answers = _check_answers(body.answers, facets)
        q = None if len(answers) >= MAX_QUESTIONS else elicitor.next_question(facets, weights, answers)
        return {"done": q is None, "asked": len(answers), "max_questions": MAX_QUESTIONS,
                "question": None if q is None else {"slot": q.slot, "text": q.text, "options": list(q.options),
                                                    "gain_bits": round(q.gain_bits, 4)}}

    @router.post("/v1/onboarding/answers", dependencies=[Depends(require_scope("ingest"))],
                 summary="Store onboarding answers as zero-party preferences (with the shopper's consent)")
    def save_answers(body: AnswersBody, engine: EngineDep, request: Request) -> dict[str, Any]:
        if body.consent is not True:
            raise ValidationError("consent", body.consent, "must be true: answers are stored only with the "
                                  "shopper's consent")
        snapshot, _ = engine.read_view()
        answers = _check_answers(body.answers, _facets(request, snapshot))
        profile = engine.profiles.get_many([body.user_id]).get(body.user_id)
        if profile is not None and not profile.consent.personalization:
            raise ConflictError("this shopper turned personalization off: preferences are not stored",
                                {"field": "user_id", "value": body.user_id})
        stored = PreferenceElicitor.save_answers(engine.profiles, body.user_id, answers, snapshot)
        prefs, budget = answers_to_preferences(answers, snapshot)
        return {"user_id": stored.user_id, "preferences": prefs,
                "budget_max": budget.to_dict() if budget is not None else None}

    return router
