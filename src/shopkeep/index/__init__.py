"""shopkeep.index: vector index (exact top-k today; an ANN index may follow behind the same protocol)."""

from shopkeep.index.vector import ExactIndex, SearchResult, VectorIndex

__all__ = ["ExactIndex", "SearchResult", "VectorIndex"]
