"""shopkeep.concierge: a multi-turn shopping assistant (slots, questions by information gain, grounded reasons)."""

from shopkeep.concierge.assistant import (
    ASK_POLICIES,
    Concierge,
    ConciergeMessage,
    ConciergeProduct,
    ConciergeReply,
    merge_slots,
)
from shopkeep.concierge.questions import Facet, Question, QuestionSelector, entropy_bits, expected_gain

__all__ = [
    "ASK_POLICIES",
    "Concierge",
    "ConciergeMessage",
    "ConciergeProduct",
    "ConciergeReply",
    "Facet",
    "Question",
    "QuestionSelector",
    "entropy_bits",
    "expected_gain",
    "merge_slots",
]
