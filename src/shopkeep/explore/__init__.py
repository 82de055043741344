"""shopkeep.explore: contextual bandits, a stochastic slate logging policy, off-policy estimators, and new-shopper
cold start (lookalike profiles, session-context priors, preference elicitation by information gain)."""

from shopkeep.explore.bandits import BanditSelection, LinearThompson, LinUCB
from shopkeep.explore.context_prior import CONTEXT_FIELDS, ContextPrior, event_context
from shopkeep.explore.elicitation import NO_PREFERENCE, PreferenceElicitor, answers_to_preferences, catalog_facets
from shopkeep.explore.lookalike import LookalikeRecommender
from shopkeep.explore.ope import Estimate, doubly_robust, ips, slate_position_ips, snips
from shopkeep.explore.questions import Facet, Question, QuestionSelector, entropy_bits, expected_gain
from shopkeep.explore.seeding import request_rng
from shopkeep.explore.slates import ExplorationSlate, SlatePolicy, new_item_exposure

__all__ = [
    "CONTEXT_FIELDS",
    "NO_PREFERENCE",
    "BanditSelection",
    "ContextPrior",
    "Estimate",
    "ExplorationSlate",
    "Facet",
    "LinUCB",
    "LinearThompson",
    "LookalikeRecommender",
    "PreferenceElicitor",
    "Question",
    "QuestionSelector",
    "SlatePolicy",
    "answers_to_preferences",
    "catalog_facets",
    "doubly_robust",
    "entropy_bits",
    "event_context",
    "expected_gain",
    "ips",
    "new_item_exposure",
    "request_rng",
    "slate_position_ips",
    "snips",
]
