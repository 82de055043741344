"""Query understanding on a small catalog: each constraint kind, typos, currency forms, negations."""

from __future__ import annotations

import pytest

from shopkeep.search import Searcher

CASES = [
    ("fragrance-free moisturizer for sensitive skin under $30",
     {"attribute": "fragrance_free=true;skin_type=sensitive", "category": "category=moisturizer",
      "price": "price<=3000"}),
    ("fragrance free moisturiser", {"attribute": "fragrance_free=true", "category": "category=moisturizer"}),
    ("unscented sunscreen", {"attribute": "fragrance_free=true", "category": "category=sunscreen"}),
    ("moisturizer without fragrance", {"attribute": "fragrance_free=true", "category": "category=moisturizer"}),
    ("cleanser without parabens", {"attribute": "paraben_free=true", "category": "category=cleanser"}),
    ("between 20 and 40 dollars moisturizer", {"price": "price<=4000;price>=2000"}),
    ("dress $50-$100", {"price": "price<=10000;price>=5000", "category": "category=dress"}),
    ("boots less than 130", {"price": "price<=13000"}),
    ("cheap moisturizer", {"price": "price=cheap"}),
    ("sunscreen spf 30+", {"numeric": "spf>=30", "category": "category=sunscreen"}),
    ("spf50 sunscreen over 60 ml", {"numeric": "size_ml>60;spf>=50"}),
    ("at least 100ml sunscreen", {"numeric": "size_ml>=100"}),
    ("waterproof hiking boots for wide feet size 9",
     {"attribute": "fit=wide;size=9;waterproof=true", "category": "category=hiking boot"}),
    ("red dress size m", {"attribute": "color=red;size=m", "category": "category=dress"}),
    ("clinique cleanser", {"brand": "brand=Clinique", "category": "category=cleanser"}),
    ("cliniqe cleanser", {"brand": "brand=Clinique"}),
    ("moisturizr for dry skin", {"category": "category=moisturizer", "attribute": "skin_type=dry"}),
    ("same-day pickup moisturizer", {"availability": "pickup=same_day"}),
    ("moisturizer in stock at store 2", {"availability": "store=store-02"}),
    ("best rated moisturizer", {"sort": "rating", "category": "category=moisturizer"}),
    ("cheapest dress", {"sort": "price_asc", "price": ""}),
    ("newest boots", {"sort": "newest"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parser_cases(tiny_searcher: Searcher, query: str, expected: dict[str, str]) -> None:
    parsed = tiny_searcher.parse([query])[0]
    for kind, want in expected.items():
        assert parsed.canonical(kind) == want, (kind, parsed.to_dict())


def test_exact_title_and_id_go_straight_to_the_product(tiny_searcher: Searcher) -> None:
    assert tiny_searcher.parse(["Rose Glow Moisturizer"])[0].exact_item_id == "m2"
    assert tiny_searcher.parse(["D1"])[0].exact_item_id == "d1"
    from shopkeep.search import SearchRequest

    res = tiny_searcher.search(SearchRequest("rose glow moisturizer"))
    assert [h.item_id for h in res.items] == ["m2"]


def test_free_text_keeps_content_words(tiny_searcher: Searcher) -> None:
    parsed = tiny_searcher.parse(["I need a crimson evening gown please"])[0]
    assert "crimson" in parsed.text and "please" not in parsed.text


def test_typo_corrections_are_reported(tiny_searcher: Searcher) -> None:
    parsed = tiny_searcher.parse(["sunscrean"])[0]
    assert parsed.canonical("category") == "category=sunscreen"
    assert parsed.corrections == (("sunscrean", "sunscreen"),)


@pytest.fixture(scope="module")
def qu_parser() -> Searcher:
    from pathlib import Path

    from shopkeep.catalog.loaders import load_items
    from shopkeep.catalog.snapshot import CatalogSnapshot
    from shopkeep.search import SearchConfig

    items = load_items(Path(__file__).parent / "data" / "qu_catalog.jsonl").items
    return Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(items))


@pytest.mark.parametrize(("query", "numeric", "price"), [
    ("moisturizer between 50 and 100 ml", "size_ml<=100;size_ml>=50", ""),
    ("50-100ml serum", "size_ml<=100;size_ml>=50", ""),
    ("cleanser 400 to 200 ml", "size_ml<=400;size_ml>=200", ""),
    ("moisturiser from 50ml to 100ml", "size_ml<=100;size_ml>=50", ""),
    ("oat milk 1-2 liters", "size_ml<=2000;size_ml>=1000", ""),
    ("oat milk 500 ml to 1 l", "size_ml<=1000;size_ml>=500", ""),
    ("shampoo under 200 ml", "size_ml<200", ""),
    ("cleanser no bigger than 200 ml", "size_ml<=200", ""),
    ("cleanser no more than 200 ml", "size_ml<=200", ""),
    ("serum between 15 and 30 ml under $40", "size_ml<=30;size_ml>=15", "price<=4000"),
    ("moisturizer between 20 and 40 dollars", "", "price<=4000;price>=2000"),
])
def test_ml_ranges_and_bounds(qu_parser: Searcher, query: str, numeric: str, price: str) -> None:
    parsed = qu_parser.parse([query])[0]
    assert (parsed.canonical("numeric"), parsed.canonical("price")) == (numeric, price), parsed.to_dict()


@pytest.mark.parametrize(("query", "brand", "correction"), [
    ("cetafil cleanser", "brand=Cetaphil", ("cetafil", "cetaphil")),  # two edits in 7 letters
    ("neutrogna sunscreen", "brand=Neutrogena", ("neutrogna", "neutrogena")),
    ("cervae moisturizer", "brand=CeraVe", ("cervae", "cerave")),  # an adjacent swap is one edit
    ("drunk elefant serum", "brand=Drunk Elephant", ("elefant", "elephant")),  # completes the phrase before it
    ("new balence sneakers", "brand=New Balance", ("balence", "balance")),
])
def test_brand_typos(qu_parser: Searcher, query: str, brand: str, correction: tuple[str, str]) -> None:
    parsed = qu_parser.parse([query])[0]
    assert parsed.canonical("brand") == brand and correction in parsed.corrections, parsed.to_dict()
    assert correction[0] not in parsed.text.split()


@pytest.mark.parametrize(("query", "text_word"), [
    ("i crave a snack bar", "crave"),  # one edit from CeraVe, but CeraVe sells no snack bars
    ("elegant evening dress", "elegant"),  # two edits from "elephant", which is no phrase on its own
    ("fancy dress for a party", "fancy"),  # two edits from "fenty" in 5 letters: too short for two
    ("kindle case", "kindle"),  # "kind" is two edits away and differs in length by two
    ("drunk elefant snack bar", "elefant"),  # the typo's brand has no snack bars: words stay free text
])
def test_ordinary_words_near_a_brand_stay_words(qu_parser: Searcher, query: str, text_word: str) -> None:
    parsed = qu_parser.parse([query])[0]
    assert parsed.canonical("brand") == "" and parsed.corrections == (), parsed.to_dict()
    assert text_word in parsed.text.split()
