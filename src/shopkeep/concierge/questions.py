"""The clarifying-question selector, re-exported from :mod:`shopkeep.explore.questions`.

The selector is generic (expected information gain over weighted candidates); it lives in
``explore`` (layer 4) so that preference elicitation for new shoppers can use it too, and the
concierge (layer 2) imports it from there.
"""

from shopkeep.explore.questions import Facet, Question, QuestionSelector, entropy_bits, expected_gain

__all__ = ["Facet", "Question", "QuestionSelector", "entropy_bits", "expected_gain"]
