"""CSV / JSONL / Parquet loaders: bad rows reported with their line, formats agree, Sephora files load."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shopkeep.catalog import ColumnMapping, load_items, load_mapping
from shopkeep.catalog.loaders import RowError
from shopkeep.errors import ValidationError
from shopkeep.types import Money

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "examples" / "mappings"

CSV = (
    "item_id,title,brand,category,price,currency,rating_avg,rating_count,attributes.skin_type,attributes.vegan\n"
    "a1,Lip Mask,Acme,Skincare > Masks,2499,USD,4.5,10,dry|oily,true\n"
    'a2,"Cream, rich",Acme,Skincare,1000,USD,,0,,false\n'
)


def _rows_as_wire() -> list[dict[str, object]]:
    return [
        {"item_id": "a1", "title": "Lip Mask", "brand": "Acme", "category": ["Skincare", "Masks"],
         "price": {"amount": 2499, "currency": "USD"}, "rating_avg": 4.5, "rating_count": 10,
         "attributes": {"skin_type": ["dry", "oily"], "vegan": True}},
        {"item_id": "a2", "title": "Cream, rich", "brand": "Acme", "category": "Skincare",
         "price": {"amount": 1000, "currency": "USD"}, "rating_count": 0, "attributes": {"vegan": False}},
    ]


def test_csv_jsonl_and_parquet_give_identical_items(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(CSV, encoding="utf-8")
    mapping = ColumnMapping.from_dict({
        "fields": {k: k for k in ("item_id", "title", "brand", "category", "price", "currency", "rating_avg",
                                  "rating_count")},
        "attributes": [{"column": "attributes.skin_type", "name": "skin_type", "type": "list"},
                       {"column": "attributes.vegan", "name": "vegan"}],
    })
    from_csv = load_items(tmp_path / "c.csv", mapping=mapping)
    with (tmp_path / "j.jsonl").open("w") as fh:
        for row in _rows_as_wire():
            fh.write(json.dumps(row) + "\n")
    from_jsonl = load_items(tmp_path / "j.jsonl")
    table = pa.table({
        "item_id": ["a1", "a2"], "title": ["Lip Mask", "Cream, rich"], "brand": ["Acme", "Acme"],
        "category": [["Skincare", "Masks"], ["Skincare"]], "price": pa.array([2499, 1000], pa.int64()),
        "currency": ["USD", "USD"], "rating_avg": [4.5, None], "rating_count": [10, 0],
        "attributes.skin_type": [["dry", "oily"], None], "attributes.vegan": [True, False],
    })
    pq.write_table(table, tmp_path / "p.parquet")
    from_parquet = load_items(tmp_path / "p.parquet")
    assert from_csv.rejected == from_jsonl.rejected == from_parquet.rejected == ()
    assert from_csv.items == from_jsonl.items == from_parquet.items
    assert from_csv.items[0].attributes == {"skin_type": ("dry", "oily"), "vegan": True}
    assert from_csv.items[1].price == Money(1000, "USD") and from_csv.items[1].rating_avg is None


def test_csv_without_mapping_reads_attribute_columns_and_bool_words(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(CSV, encoding="utf-8")
    items = load_items(tmp_path / "c.csv").items
    assert items[0].attributes == {"skin_type": "dry|oily", "vegan": True}  # untyped: only true/false convert
    assert items[1].attributes == {"vegan": False}


def test_every_bad_csv_row_is_reported_with_line_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "item_id,title,price,cost,currency\n"
        "a,Good,100,50,USD\n"          # 2 ok
        ",No id,100,,USD\n"            # 3 missing item_id
        "b,,100,,USD\n"                # 4 missing title
        "c,Neg,-100,,USD\n"            # 5 negative price
        "d,Float,1.5,,USD\n"           # 6 minor units must be whole
        "e,Cur,100,,dollars\n"         # 7 bad currency
        'f,"multi\nline",x100,,USD\n'  # 8-9 (record starts on 8) not a number
        "a,Dup,100,,USD\n"             # 10 duplicate of line 2
        "g,Short,100\n",               # 11 wrong cell count
        encoding="utf-8",
    )
    result = load_items(path, on_error="reject")
    got = [(e.line, e.field, e.value) for e in result.rejected]
    assert got == [
        (3, "item_id", None), (4, "title", None), (5, "price", "-100"), (6, "price", "1.5"),
        (7, "currency", "dollars"), (8, "price", "x100"), (10, "item_id", "a"), (11, "<row>", "3 cells"),
    ]
    assert "first seen on line 2" in result.rejected[6].reason
    assert result.items == () and result.valid == 1 and result.counts["rejected"] == 8
    skipped = load_items(path, on_error="skip")
    assert [i.item_id for i in skipped.items] == ["a"] and len(skipped.rejected) == 8


def test_non_utf8_bytes_and_huge_lines_are_row_errors_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "enc.csv"
    path.write_bytes(
        b"item_id,title\n"
        b"a,ok\n"
        b"b,caf\xe9\n"               # 3: latin-1 byte
        b"c," + b"x" * 2000 + b"\n"  # 4: longer than the limit below
        b"d,fine\n"
    )
    result = load_items(path, on_error="skip", max_line_bytes=1000)
    assert [(e.line, e.field) for e in result.rejected] == [(3, "<encoding>"), (4, "<line>")]
    assert "UTF-8" in result.rejected[0].reason and result.rejected[0].value == b"\xe9\n"
    assert "longer than 1000 bytes" in result.rejected[1].reason
    assert [i.item_id for i in result.items] == ["a", "d"]


def test_default_limit_refuses_lines_over_one_megabyte(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    big = json.dumps({"item_id": "big", "title": "x", "description": "y" * 1_100_000})
    path.write_text(json.dumps({"item_id": "a", "title": "A"}) + "\n" + big + "\n", encoding="utf-8")
    result = load_items(path, on_error="skip")
    assert [(e.line, e.field) for e in result.rejected] == [(2, "<line>")]
    assert [i.item_id for i in result.items] == ["a"]


def test_jsonl_malformed_lines_wrong_types_and_nan(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(
        '{"item_id": "a", "title": "A", "price": {"amount": 100, "currency": "USD"}}\n'
        '{"item_id": "b", "title": "B"\n'                                           # 2 malformed
        "\n"                                                                         # 3 blank: ignored
        '["not", "an", "object"]\n'                                                  # 4
        '{"item_id": "c", "title": "C", "image_vector": [0.5, NaN]}\n'               # 5 NaN
        '{"item_id": "d", "title": "D", "price": {"amount": 1, "currency": "USD"},'
        ' "cost": {"amount": 1, "currency": "EUR"}}\n'                               # 6 currency mismatch
        '{"item_id": "e", "title": "E", "rating_count": "many"}\n',                  # 7 wrong type
        encoding="utf-8",
    )
    result = load_items(path, on_error="skip")
    assert [(e.line, e.field) for e in result.rejected] == [
        (2, "<json>"), (4, "<json>"), (5, "image_vector[1]"), (6, "cost.currency"), (7, "rating_count")]
    assert "malformed JSON" in result.rejected[0].reason
    assert str(result.rejected[3]) == "line 6: cost.currency='EUR': must match the price currency USD"
    assert [i.item_id for i in result.items] == ["a"]


def test_mapping_files_in_toml_and_json_and_their_errors(tmp_path: Path) -> None:
    spec = {"fields": {"item_id": "SKU", "title": "Name", "price": "Price"}, "price_format": "major",
            "currency": "EUR", "attributes": [{"column": "Vegan", "type": "bool"}, "Shade"],
            "flags": {"skin_type": ["Dry", "Oily"]}}
    (tmp_path / "m.json").write_text(json.dumps(spec))
    (tmp_path / "m.toml").write_text(
        'price_format = "major"\ncurrency = "EUR"\nattributes = [{column = "Vegan", type = "bool"}, "Shade"]\n'
        '[fields]\nitem_id = "SKU"\ntitle = "Name"\nprice = "Price"\n[flags]\nskin_type = ["Dry", "Oily"]\n')
    assert load_mapping(tmp_path / "m.json") == load_mapping(tmp_path / "m.toml")
    (tmp_path / "c.csv").write_text("SKU,Name,Price,Vegan,Shade,Dry,Oily\nx,X,12.5,yes,Rose,1,0\ny,Y,3,no,,0,0\n")
    items = load_items(tmp_path / "c.csv", mapping=load_mapping(tmp_path / "m.toml")).items
    assert items[0].price == Money(1250, "EUR")
    assert items[0].attributes == {"vegan": True, "shade": "Rose", "skin_type": ("dry",)}
    assert items[1].attributes == {"vegan": False, "skin_type": ()}
    with pytest.raises(ValidationError) as exc:
        ColumnMapping.from_dict({"fields": {"colour": "C"}})
    assert exc.value.field == "mapping.fields.colour"
    with pytest.raises(ValidationError) as exc:
        ColumnMapping.from_dict({"price_format": "cents"})
    assert exc.value.field == "mapping.price_format" and exc.value.value == "cents"
    (tmp_path / "c2.csv").write_text("SKU,Name\nx,X\n")
    with pytest.raises(ValidationError) as exc:
        load_items(tmp_path / "c2.csv", mapping=load_mapping(tmp_path / "m.json"))
    assert exc.value.field == "columns" and exc.value.value == "Dry"


def test_major_prices_with_too_many_decimals_and_unknown_columns_are_refused(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("SKU,Name,Price\nx,X,12.505\n")
    mapping = ColumnMapping.from_dict({"fields": {"item_id": "SKU", "title": "Name", "price": "Price"},
                                       "price_format": "major"})
    [err] = load_items(tmp_path / "c.csv", mapping=mapping).rejected
    assert err == RowError(2, "price", "12.505", "has more decimal places than USD allows")
    with pytest.raises(ValidationError, match="unknown column"):
        load_items(tmp_path / "c.csv")


def test_sephora_cosmetics_loads_with_skin_type_lists(shared_data: Path) -> None:
    path = shared_data / "sephora-cosmetics" / "cosmetics.csv"
    result = load_items(path, mapping=load_mapping(MAPPINGS / "sephora_cosmetics.toml"))
    assert result.rejected == () and len(result.items) == 1472
    assert len({i.item_id for i in result.items}) == 1472
    counts = {t: sum(t in i.attributes["skin_type"] for i in result.items)  # type: ignore[operator]
              for t in ("combination", "dry", "normal", "oily", "sensitive")}
    assert counts == {"combination": 966, "dry": 904, "normal": 960, "oily": 894, "sensitive": 756}
    first = result.items[0]
    assert first.title == "Sleeping Mask - Pearl" and first.brand == "SEPHORA COLLECTION"
    assert first.category == ("Face Mask",) and first.price == Money(400, "USD") and first.rating_avg == 4.0
    assert all(i.price is not None and 300 <= i.price.amount <= 37000 for i in result.items)


def test_sephora_product_info_loads(shared_data: Path) -> None:
    path = shared_data / "sephora-cosmetics" / "product_info_skincare_subset.csv"
    result = load_items(path, mapping=load_mapping(MAPPINGS / "sephora_product_info.toml"))
    assert result.rejected == () and len(result.items) == 257
    first = result.items[0]
    assert first.item_id == "P311143" and first.category == ("Skincare", "Sunscreen")
    assert first.price == Money(2800, "USD") and first.rating_count == 508
    assert first.attributes["loves_count"] == 27278
    assert {i.category[1] for i in result.items} == {"Moisturizers", "Cleansers", "Sunscreen"}
