"""CatalogRepository on memory, SQLite and PostgreSQL: atomic upserts, reject/skip ingest, soft delete."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from shopkeep.catalog import CatalogRepository, parse_item
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.storage import Store, iter_collection


def _snapshot(store: Store) -> str:
    return json.dumps(list(iter_collection(store, "items")), sort_keys=True)


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_upsert_get_and_unchanged_items(store: Store) -> None:
    repo = CatalogRepository(store)
    a = parse_item({"item_id": "a", "title": "A", "price": {"amount": 100, "currency": "USD"}})
    b = parse_item({"item_id": "b", "title": "B", "attributes": {"skin_type": ["dry"]}})
    assert repo.upsert_many([a, b]).inserted == ("a", "b")
    a2 = parse_item({"item_id": "a", "title": "A v2", "price": {"amount": 100, "currency": "USD"}})
    result = repo.upsert_many([a2, b])
    assert (result.inserted, result.updated, result.unchanged) == ((), ("a",), ("b",))
    assert repo.get("a") == a2 and repo.get_many(["b", "zz", "a"]) == {"b": b, "a": a2}
    assert repo.count() == 2
    with pytest.raises(NotFoundError):
        repo.get("zz")
    with pytest.raises(ValidationError, match="twice"):
        repo.upsert_many([a, a])
    assert repo.get("a") == a2


def test_soft_delete_keeps_items_and_refuses_unknown_ids(store: Store) -> None:
    repo = CatalogRepository(store)
    repo.upsert_many([parse_item({"item_id": i, "title": i}) for i in ("a", "b", "c")])
    assert repo.soft_delete_many(["b"]) == 1 and repo.soft_delete_many(["b"]) == 0
    assert [i.item_id for i in repo.iter_items()] == ["a", "c"]
    assert [i.item_id for i in repo.iter_items(include_inactive=True)] == ["a", "b", "c"]
    assert repo.get("b").active is False and repo.count() == 3
    with pytest.raises(NotFoundError):
        repo.soft_delete_many(["a", "nope"])
    assert repo.get("a").active is True


def test_rejected_file_leaves_the_catalog_unchanged(store: Store, tmp_path: Path) -> None:
    repo = CatalogRepository(store)
    good = _write_jsonl(tmp_path / "good.jsonl", [{"item_id": f"i{n}", "title": f"T{n}"} for n in range(5)])
    assert repo.ingest_file(good).upsert is not None
    before = _snapshot(store)
    digest = hashlib.sha256(Path(store.uri.removeprefix("sqlite:///")).read_bytes()).hexdigest() \
        if store.uri.startswith("sqlite") else None
    bad = _write_jsonl(tmp_path / "bad.jsonl", [
        {"item_id": "i0", "title": "changed"}, {"item_id": "new", "title": "N"},
        {"item_id": "x", "title": "X", "price": {"amount": -1, "currency": "USD"}},
        {"item_id": "y"},
    ])
    result = repo.ingest_file(bad, on_error="reject")
    assert result.upsert is None and not result.stored
    assert [(e.line, e.field) for e in result.load.rejected] == [(3, "price.amount"), (4, "title")]
    assert _snapshot(store) == before and repo.count() == 5
    if digest is not None:
        assert hashlib.sha256(Path(store.uri.removeprefix("sqlite:///")).read_bytes()).hexdigest() == digest


def test_skip_mode_stores_exactly_the_good_rows(store: Store, tmp_path: Path) -> None:
    repo = CatalogRepository(store)
    bad = _write_jsonl(tmp_path / "mixed.jsonl", [
        {"item_id": "a", "title": "A"}, {"item_id": "b", "title": 5}, {"item_id": "a", "title": "again"},
        {"item_id": "c", "title": "C", "active": False},
    ])
    result = repo.ingest_file(bad, on_error="skip")
    assert result.upsert is not None and result.upsert.inserted == ("a", "c")
    assert [(e.line, e.field) for e in result.load.rejected] == [(2, "title"), (3, "item_id")]
    assert sorted(k for k, _ in iter_collection(store, "items")) == ["a", "c"]
    assert repo.get("a").title == "A" and repo.get("c").active is False
