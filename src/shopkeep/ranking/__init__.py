"""shopkeep.ranking: business objectives and rankers over fused retrieval candidates."""

from shopkeep.ranking.objective import Fused, Objective, PurchaseModel, Ranker, RelevancePrior, ScoredItem

__all__ = ["Fused", "Objective", "PurchaseModel", "Ranker", "RelevancePrior", "ScoredItem"]
