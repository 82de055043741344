"""shopkeep.explore: contextual bandits, a stochastic slate logging policy, off-policy estimators."""

from shopkeep.explore.bandits import BanditSelection, LinearThompson, LinUCB
from shopkeep.explore.ope import Estimate, doubly_robust, ips, slate_position_ips, snips
from shopkeep.explore.seeding import request_rng
from shopkeep.explore.slates import ExplorationSlate, SlatePolicy, new_item_exposure

__all__ = [
    "BanditSelection",
    "Estimate",
    "ExplorationSlate",
    "LinUCB",
    "LinearThompson",
    "SlatePolicy",
    "doubly_robust",
    "ips",
    "new_item_exposure",
    "request_rng",
    "slate_position_ips",
    "snips",
]
