"""Merchant policy: declarative, versioned rules applied as pure functions with a trace.

``eligibility_mask`` gives the hard rules as a mask to push into retrieval; ``apply_policy``
re-checks them and applies boosts, pins, diversity, novelty, new-item floors and MAP display.
"""

from shopkeep.policy.apply import PolicyItem, PolicyResult, Ranked, apply_policy, pacing_keys
from shopkeep.policy.hard import HardCheck, allowed_sources, eligibility_mask, hard_checks
from shopkeep.policy.model import (
    AvoidRule,
    BoostRule,
    ConsentRule,
    DiversityRule,
    ExcludeRule,
    InventoryRule,
    MapRule,
    NewItemFloorRule,
    NoveltyRule,
    PinRule,
    PolicySet,
    PolicyVersion,
    RegulatedRule,
    RepurchaseRule,
    Rule,
    RuleFiring,
    Selector,
    Window,
    parse_policy,
)
from shopkeep.policy.store import EMPTY_POLICY, PolicyStore

__all__ = [
    "EMPTY_POLICY",
    "AvoidRule",
    "BoostRule",
    "ConsentRule",
    "DiversityRule",
    "ExcludeRule",
    "HardCheck",
    "InventoryRule",
    "MapRule",
    "NewItemFloorRule",
    "NoveltyRule",
    "PinRule",
    "PolicyItem",
    "PolicyResult",
    "PolicySet",
    "PolicyStore",
    "PolicyVersion",
    "Ranked",
    "RegulatedRule",
    "RepurchaseRule",
    "Rule",
    "RuleFiring",
    "Selector",
    "Window",
    "allowed_sources",
    "apply_policy",
    "eligibility_mask",
    "hard_checks",
    "pacing_keys",
    "parse_policy",
]
