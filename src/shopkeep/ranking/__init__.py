"""shopkeep.ranking: business objectives and rankers over fused retrieval candidates.

The learned re-ranker (:mod:`shopkeep.ranking.learned`, LightGBM) is imported lazily; ``Ranker.load``
falls back to the non-learned ranker without it.
"""

from shopkeep.ranking.dataset import LabeledRequests, next_item_requests
from shopkeep.ranking.features import FeatureBuilder, ItemStats
from shopkeep.ranking.objective import (
    Fused,
    FusedArraysLike,
    HeadModel,
    Objective,
    PurchaseModel,
    RankedArrays,
    Ranker,
    RelevancePrior,
    ScoredItem,
)

__all__ = ["FeatureBuilder", "Fused", "FusedArraysLike", "HeadModel", "ItemStats", "LabeledRequests", "Objective",
           "PurchaseModel", "RankedArrays", "Ranker", "RelevancePrior", "ScoredItem", "next_item_requests"]
