"""Attribute extraction: each extractor, placeholders as unknown, approval-only writes over a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.extract import apply_proposals, extract_item, ingredients_known, propose
from shopkeep.cli.main import main
from shopkeep.config import load_config
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.serving.app import create_app
from shopkeep.storage import open_store
from shopkeep.types import Item


def fields(item: Item) -> dict[str, object]:
    return {p.field: p.value for p in extract_item(item)}


@pytest.mark.parametrize(("ingredients", "expected"), [
    ("Water, Glycerin, Parfum (Fragrance), Xanthan Gum.", False),
    ("Aqua, Perfume, Linalool.", False),
    ("Water, Glycerin, Squalane, Tocopherol.", True),
    ("Water, Lavandula Angustifolia Oil, Linalool, Limonene.", True),
    ("Visit the Tata Harper boutique", None),
    ("No Info", None),
    ("#NAME?", None),
    ("*Certified Organic", None),
])
def test_fragrance_free_from_ingredients(ingredients: str, expected: bool | None) -> None:
    got = {p.field: p for p in extract_item(Item("a", "Cream", attributes={"ingredients": ingredients}))}
    if expected is None:
        assert "fragrance_free" not in got
    else:
        assert got["fragrance_free"].value is expected


def test_allergens_lower_the_confidence() -> None:
    plain = extract_item(Item("a", "C", attributes={"ingredients": "Water, Glycerin."}))[0]
    scented = extract_item(Item("a", "C", attributes={"ingredients": "Water, Rose Oil, Geraniol."}))[0]
    assert plain.confidence > 0.8 > scented.confidence and "geraniol" in scented.evidence


@pytest.mark.parametrize(("title", "spf", "size"), [
    ("Daily Fluid SPF 50 PA++++, 50 ml", 50, 50),
    ("Sun Stick SPF30 0.5 oz", 30, 14.8),
    ("Moisturizer Broad Spectrum spf 15 - 1.7 fl. oz", 15, 50.3),
    ("Night Cream", None, None),
    ("Fake SPF 500 cream 0 ml", None, None),
])
def test_spf_and_size_from_titles(title: str, spf: int | None, size: float | None) -> None:
    got = fields(Item("a", title))
    assert got.get("spf") == spf and got.get("size_ml") == size


@pytest.mark.parametrize(("text", "types"), [
    ("Gel Cleanser for Oily Skin", ("oily",)),
    ("Cream for dry to normal skin", ("dry", "normal")),
    ("Balm for dry, sensitive skin", ("dry", "sensitive")),
    ("Toner for combo/oily skin", ("combination", "oily")),
    ("Suitable for all skin types", ("combination", "dry", "normal", "oily", "sensitive")),
    ("Dry Oil Body Spray", None),
])
def test_skin_types_from_text(text: str, types: tuple[str, ...] | None) -> None:
    assert fields(Item("a", "Product", description=text)).get("skin_type") == types


def test_claims_and_existing_attributes_win() -> None:
    got = fields(Item("a", "Vegan Lip Balm", description="Cruelty-free and not tested on animals."))
    assert got["vegan"] is True and got["cruelty_free"] is True
    assert fields(Item("b", "Lip Balm", attributes={"ingredients": "Cera Alba (Beeswax), Oil."}))["vegan"] is False
    assert "vegan" not in fields(Item("c", "Non-vegan balm"))
    assert "spf" not in fields(Item("d", "Cream SPF 30", attributes={"spf": 25}))


def test_propose_validates() -> None:
    assert ingredients_known("Water, Glycerin.") and not ingredients_known("   ")
    with pytest.raises(ValidationError, match="min_confidence"):
        propose([Item("a", "x")], min_confidence=2.0)
    with pytest.raises(ValidationError):
        extract_item({"item_id": "a"})  # type: ignore[arg-type]


def test_written_only_on_approval(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    repo = CatalogRepository(store)
    repo.upsert_many([Item("a", "Day Cream SPF 30", attributes={"ingredients": "Water, Parfum."}),
                      Item("b", "Toner for oily skin")])
    found = propose(repo.iter_items())
    assert {(p.item_id, p.field) for p in found} == {("a", "fragrance_free"), ("a", "spf"), ("b", "skin_type")}
    assert repo.get("a").attributes == {"ingredients": "Water, Parfum."}  # proposing wrote nothing
    spf = next(p for p in found if p.field == "spf")
    with pytest.raises(NotFoundError):  # one unknown id: nothing is written
        apply_proposals(repo, [spf.proposal_id, "spf@a#0000000000"])
    with pytest.raises(ValidationError):
        apply_proposals(repo, ["garbage"])
    assert "spf" not in repo.get("a").attributes
    result = apply_proposals(repo, [spf.proposal_id])
    assert result.item_ids == ("a",) and repo.get("a").attributes["spf"] == 30
    assert "fragrance_free" not in repo.get("a").attributes
    with pytest.raises(NotFoundError):  # applied once: no longer a current proposal
        apply_proposals(repo, [spf.proposal_id])
    store.close()


def test_routes_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/s.db"
    store = open_store(uri)
    CatalogRepository(store).upsert_many([Item("a", "Sun Fluid SPF 50, 30 ml"), Item("b", "Balm for dry skin")])
    store.close()
    assert main(["catalog", "extract", "--store", uri, "--min-confidence", "0.8", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {p["field"] for p in listed["proposals"]} == {"spf", "size_ml"} and listed["applied"] == []
    config = load_config(None, env={"SHOPKEEP_STORAGE__URI": uri})
    with TestClient(create_app(config, auth=False)) as client:
        props = client.get("/v1/catalog/proposals").json()["proposals"]
        skin = next(p for p in props if p["field"] == "skin_type")
        r = client.post("/v1/catalog/proposals/approve", json={"ids": [skin["proposal_id"]]})
        assert r.status_code == 200 and r.json()["item_ids"] == ["b"]
        assert client.get("/v1/items/b").json()["attributes"]["skin_type"] == ["dry"]
        assert client.post("/v1/catalog/proposals/approve", json={"ids": []}).status_code in (400, 422)
        assert client.post("/v1/catalog/proposals/approve", json={"ids": ["spf@zz#1"]}).status_code == 404
    assert main(["catalog", "extract", "--store", uri, "--approve-all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["applied"]) == 2
