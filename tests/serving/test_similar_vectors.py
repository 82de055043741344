"""Image vectors on the write path: a catalog file whose vectors disagree in length is refused row by
row (line, field, reason), and the repository keeps one dimension per catalog on every store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopkeep.catalog import CatalogRepository, load_items, parse_item
from shopkeep.errors import ValidationError
from shopkeep.storage.base import Store


def test_loader_refuses_a_vector_of_another_length(tmp_path: Path) -> None:
    rows = [{"item_id": "a", "title": "A", "image_vector": [0.1, 0.2, 0.3]},
            {"item_id": "b", "title": "B"},
            {"item_id": "c", "title": "C", "image_vector": [0.1, 0.2]},
            {"item_id": "d", "title": "D", "image_vector": [1, 2, 3]}]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = load_items(path, on_error="skip")
    assert [i.item_id for i in result.items] == ["a", "b", "d"]
    assert [str(e) for e in result.rejected] == [
        "line 3: image_vector='2 numbers': expected 3 numbers (the dimension of line 1)"]
    assert load_items(path).items == (), "reject mode stores nothing from a file with a bad row"


def test_csv_column_mapped_to_the_vector_field(tmp_path: Path) -> None:
    from shopkeep.catalog import ColumnMapping

    path = tmp_path / "items.csv"
    path.write_text('sku,name,clip\nx,X,"[0.5, 0.25]"\ny,Y,"[1, 0]"\n')
    mapping = ColumnMapping.from_dict({"fields": {"item_id": "sku", "title": "name", "image_vector": "clip"}})
    result = load_items(path, mapping=mapping)
    assert result.ok and [i.image_vector for i in result.items] == [(0.5, 0.25), (1.0, 0.0)]


def test_repository_keeps_one_dimension(store: Store) -> None:
    repo = CatalogRepository(store)
    assert repo.image_dim() is None
    repo.upsert_many([parse_item({"item_id": "p", "title": "P"})])
    assert repo.image_dim() is None
    repo.upsert_many([parse_item({"item_id": "a", "title": "A", "image_vector": [1, 0, 0, 0]})])
    assert repo.image_dim() == 4
    with pytest.raises(ValidationError) as err:
        repo.upsert_many([parse_item({"item_id": "q", "title": "Q"}),
                          parse_item({"item_id": "b", "title": "B", "image_vector": [1, 0]})])
    assert err.value.field == "items[1].image_vector" and "4 numbers" in err.value.reason
    assert repo.get_many(["q", "b"]) == {}, "nothing of the refused batch is stored"
    repo.upsert_many([parse_item({"item_id": "b", "title": "B", "image_vector": [0, 1, 0, 0]})])
    assert repo.get("b").image_vector == (0.0, 1.0, 0.0, 0.0)
