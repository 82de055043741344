"""shopkeep.index: vector indexes (exact and HNSW behind one protocol, picked by size) and the keyword index.

:class:`~shopkeep.index.ann.HNSWIndex` is not re-exported here: it needs faiss, which ``import
shopkeep`` must not load; :func:`make_index`/:func:`build_index`/:func:`load_index` import it on demand.
"""

from shopkeep.index.factory import EXACT_BELOW, build_index, cached_index, load_index, make_index
from shopkeep.index.vector import ExactIndex, SearchResult, VectorIndex

__all__ = [
    "EXACT_BELOW", "ExactIndex", "SearchResult", "VectorIndex", "build_index", "cached_index", "load_index",
    "make_index",
]
