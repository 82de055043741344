"""shopkeep.ranking: business objectives and rankers over fused retrieval candidates.

The learned re-ranker (:mod:`shopkeep.ranking.learned`, LightGBM) is imported lazily; ``Ranker.load``
falls back to the non-learned ranker without it.
"""

from shopkeep.ranking.dataset import LabeledRequests, next_item_requests
from shopkeep.ranking.features import FeatureBuilder, ItemStats
from shopkeep.ranking.objective import Fused, HeadModel, Objective, PurchaseModel, Ranker, RelevancePrior, ScoredItem

__all__ = ["FeatureBuilder", "Fused", "HeadModel", "ItemStats", "LabeledRequests", "Objective", "PurchaseModel",
           "Ranker", "RelevancePrior", "ScoredItem", "next_item_requests"]
