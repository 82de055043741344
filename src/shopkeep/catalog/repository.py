"""The catalog in a :class:`~shopkeep.storage.base.DocumentStore`: collection ``items``, one
document per item in the wire form of :func:`~shopkeep.catalog.schema.item_to_dict`.

>>> from shopkeep.storage import open_store
>>> repo = CatalogRepository(open_store("memory://"))
>>> repo.upsert_many([parse_item({"item_id": "a", "title": "A"})]).inserted
('a',)
>>> repo.soft_delete_many(["a"]), repo.count(), list(repo.iter_items())
(1, 1, [])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopkeep.catalog.loaders import LoadResult, Progress, load_items
from shopkeep.catalog.mapping import ColumnMapping
from shopkeep.catalog.schema import item_to_dict, parse_item
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.storage.base import Document, DocumentStore, iter_collection
from shopkeep.types import Item

__all__ = ["COLLECTION", "META_COLLECTION", "CatalogRepository", "IngestResult", "UpsertResult"]

COLLECTION = "items"
#: Catalog-wide facts; key ``image_vector`` holds ``{"dim": n}`` once an item carries an image vector.
META_COLLECTION = "catalog_meta"
_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """Which item ids were new, which changed, and which were already stored exactly so."""

    inserted: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """A file ingest: what the loader read and, unless the file was rejected, what was written."""

    load: LoadResult
    upsert: UpsertResult | None

    @property
    def stored(self) -> bool:
        """Whether anything was written."""
        return self.upsert is not None


def _check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise ValidationError("ids", ids, "must be a sequence of item ids, not a string")
    for i, item_id in enumerate(ids):
        if not isinstance(item_id, str) or not item_id:
            raise ValidationError(f"ids[{i}]", item_id, "must be a non-empty string")
    return list(dict.fromkeys(ids))


class CatalogRepository:
    """Read and write catalog items; every write is one atomic ``put_many``."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def _docs(self, ids: Sequence[str]) -> dict[str, Document]:
        out: dict[str, Document] = {}
        for start in range(0, len(ids), _CHUNK):
            out.update(self.store.get_many(COLLECTION, list(ids[start:start + _CHUNK])))
        return out

    def upsert_many(self, items: Sequence[Item]) -> UpsertResult:
        """Insert or replace items atomically (all or nothing). Unchanged items are not rewritten."""
        docs: dict[str, Document] = {}
        for i, item in enumerate(items):
            if not isinstance(item, Item):
                raise ValidationError(f"items[{i}]", item, "must be an Item")
            doc = item_to_dict(item)
            parse_item(doc)  # an Item built by hand is checked like file input
            if item.item_id in docs:
                raise ValidationError(f"items[{i}].item_id", item.item_id, "appears twice in one batch")
            docs[item.item_id] = doc
        dim = self._check_image_dim(items)
        existing = self._docs(list(docs))
        inserted = tuple(k for k in docs if k not in existing)
        updated = tuple(k for k in docs if k in existing and existing[k] != docs[k])
        unchanged = tuple(k for k in docs if k in existing and existing[k] == docs[k])
        if inserted or updated:
            self.store.put_many(COLLECTION, {k: docs[k] for k in (*inserted, *updated)})
            if dim is not None and self.image_dim() is None:
                self.store.put_many(META_COLLECTION, {"image_vector": {"dim": dim}})
        return UpsertResult(inserted, updated, unchanged)

    def image_dim(self) -> int | None:
        """The catalog's image-vector dimension (None until an item carries an image vector)."""
        meta = self.store.get_many(META_COLLECTION, ["image_vector"]).get("image_vector")
        if meta is not None:
            return int(meta["dim"])
        for _, doc in iter_collection(self.store, COLLECTION):  # a catalog stored before the meta record
            vector = doc.get("image_vector")
            if vector:
                self.store.put_many(META_COLLECTION, {"image_vector": {"dim": len(vector)}})
                return len(vector)
        return None

    def _check_image_dim(self, items: Sequence[Item]) -> int | None:
        """Every image vector of ``items`` has the catalog's dimension (or, in a catalog without
        vectors yet, the first one's); that dimension, or None when no item carries a vector."""
        with_vector = [(n, it) for n, it in enumerate(items) if it.image_vector is not None]
        if not with_vector:
            return None
        stored = self.image_dim()
        dim = stored if stored is not None else len(with_vector[0][1].image_vector or ())
        for n, item in with_vector:
            if len(item.image_vector or ()) != dim:
                where = "the catalog's" if stored is not None else f"items[{with_vector[0][0]}]'s"
                raise ValidationError(f"items[{n}].image_vector", f"{len(item.image_vector or ())} numbers",
                                      f"must have {dim} numbers ({where} image-vector dimension)")
        return dim

    def get_many(self, ids: Sequence[str]) -> dict[str, Item]:
        """The stored items among ``ids`` (inactive ones included), in the order asked."""
        wanted = _check_ids(ids)
        docs = self._docs(wanted)
        return {k: parse_item(docs[k]) for k in wanted if k in docs}

    def get(self, item_id: str) -> Item:
        """One item; raises :class:`NotFoundError` if it was never stored."""
        found = self.get_many([item_id])
        if item_id not in found:
            raise NotFoundError(f"no item {item_id!r}", {"item_id": item_id})
        return found[item_id]

    def iter_items(self, *, include_inactive: bool = False) -> Iterator[Item]:
        """Every item in item_id order, skipping soft-deleted ones unless ``include_inactive``."""
        for _, doc in iter_collection(self.store, COLLECTION):
            item = parse_item(doc)
            if include_inactive or item.active:
                yield item

    def soft_delete_many(self, ids: Sequence[str]) -> int:
        """Mark items inactive (kept for history); returns how many were active. NotFoundError if any
        id is unknown, and then nothing changes."""
        wanted = _check_ids(ids)
        found = self.get_many(wanted)
        missing = [k for k in wanted if k not in found]
        if missing:
            raise NotFoundError(f"no item {missing[0]!r}", {"item_ids": missing})
        changed = [dataclasses.replace(item, active=False) for item in found.values() if item.active]
        if changed:
            self.store.put_many(COLLECTION, {item.item_id: item_to_dict(item) for item in changed})
        return len(changed)

    def count(self) -> int:
        """Number of stored items, soft-deleted ones included."""
        return self.store.count(COLLECTION)

    def ingest_file(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        mapping: ColumnMapping | None = None,
        on_error: str = "reject",
        progress: Progress | None = None,
    ) -> IngestResult:
        """Load a catalog file and upsert it. ``reject``: a file with any bad row stores nothing;
        ``skip``: the good rows are stored. Every bad row is reported either way."""
        result = load_items(path, format=format, mapping=mapping, on_error=on_error, progress=progress)
        if on_error == "reject" and result.rejected:
            return IngestResult(result, None)
        return IngestResult(result, self.upsert_many(result.items))
