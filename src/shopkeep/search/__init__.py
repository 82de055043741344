"""shopkeep.search: query understanding, hard constraint filters and hybrid (BM25 + dense) product search."""

from shopkeep.search.attributes import AttributeTable, derive_attributes, enrich_items
from shopkeep.search.query import KINDS, Constraint, ParsedQuery, QueryParser
from shopkeep.search.searcher import (
    SearchConfig,
    Searcher,
    SearchHit,
    SearchPolicy,
    SearchRequest,
    SearchResponse,
)

__all__ = [
    "KINDS",
    "AttributeTable",
    "Constraint",
    "ParsedQuery",
    "QueryParser",
    "SearchConfig",
    "SearchHit",
    "SearchPolicy",
    "SearchRequest",
    "SearchResponse",
    "Searcher",
    "derive_attributes",
    "enrich_items",
]
