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
