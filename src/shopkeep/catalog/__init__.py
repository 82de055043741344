"""The catalog: item schema and validation, file loaders with column mappings, and the repository."""

from shopkeep.catalog.loaders import LoadResult, RowError, load_items
from shopkeep.catalog.mapping import AttributeColumn, ColumnMapping, load_mapping
from shopkeep.catalog.repository import CatalogRepository, IngestResult, UpsertResult
from shopkeep.catalog.schema import item_to_dict, parse_item
from shopkeep.catalog.snapshot import CatalogSnapshot

__all__ = [
    "AttributeColumn",
    "CatalogRepository",
    "CatalogSnapshot",
    "ColumnMapping",
    "IngestResult",
    "LoadResult",
    "RowError",
    "UpsertResult",
    "item_to_dict",
    "load_items",
    "load_mapping",
    "parse_item",
]
