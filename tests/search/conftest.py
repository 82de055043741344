"""Small catalogs for the search tests (hashing encoder, no disk cache)."""

from __future__ import annotations

import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.search import SearchConfig, Searcher
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.types import FulfillmentOption, Item, Money


def tiny_items() -> list[Item]:
    """A hand-written beauty/apparel catalog with every constraint kind represented."""
    def m(c: int) -> Money:
        return Money(c, "USD")

    pick = (FulfillmentOption("pickup", "store-01", sla_days=0, same_day=True),)
    return [
        Item("m1", "Hydra Fragrance-Free Moisturizer", brand="Lumen Skin",
             category=("Beauty", "Skincare", "Moisturizer"),
             price=m(2500), rating_avg=4.5, attributes={"fragrance_free": True, "skin_type": ("sensitive", "dry"),
                                                        "vegan": True}, inventory={"store-01": 3}, fulfillment=pick),
        Item("m2", "Rose Glow Moisturizer", brand="Petal & Co", category=("Beauty", "Skincare", "Moisturizer"),
             price=m(4200), rating_avg=4.8, attributes={"fragrance_free": False, "skin_type": ("oily",)},
             inventory={"warehouse": 5}),
        Item("m3", "Barrier Cream Moisturizer", brand="Lumen Skin", category=("Beauty", "Skincare", "Moisturizer"),
             price=m(1800), rating_avg=3.9, attributes={"ingredients": "Water, Glycerin, Squalane, Ceramide NP.",
                                                        "skin_type": ("sensitive",)}, inventory={"store-02": 1}),
        Item("s1", "Daily Sunscreen SPF 50, 100 ml", brand="Solen Labs", category=("Beauty", "Skincare", "Sunscreen"),
             price=m(2200), attributes={"spf": 50, "size_ml": 100, "fragrance_free": True}),
        Item("s2", "Light Sunscreen SPF 15, 50 ml", brand="Solen Labs", category=("Beauty", "Skincare", "Sunscreen"),
             price=m(1500), attributes={"spf": 15, "size_ml": 50, "fragrance_free": False}),
        Item("d1", "Crimson Silk Evening Dress - Size M", brand="Orla House", category=("Apparel", "Dresses", "Dress"),
             price=m(9900), attributes={"color": "red", "size": "M", "material": "silk"}),
        Item("d2", "Navy Cotton Shift Dress - Size S", brand="Orla House", category=("Apparel", "Dresses", "Dress"),
             price=m(5900), attributes={"color": "blue", "size": "S", "material": "cotton"}),
        Item("b1", "Trail Waterproof Hiking Boot, Wide Fit - Size 9", brand="Ridgeway Goods",
             category=("Footwear", "Boots", "Hiking Boot"), price=m(14000),
             attributes={"waterproof": True, "fit": "wide", "size": "9", "color": "brown"}),
        Item("b2", "Summit Hiking Boot - Size 10", brand="Ridgeway Goods",
             category=("Footwear", "Boots", "Hiking Boot"),
             price=m(12000), attributes={"waterproof": False, "fit": "regular", "size": "10", "color": "black"}),
        Item("c1", "Gentle Foam Cleanser", brand="Clinique", category=("Beauty", "Skincare", "Cleanser"), price=m(2100),
             attributes={"ingredients": "Water, Sodium Laureth Sulfate, Parfum (Fragrance).", "skin_type": ("oily",)}),
        Item("c2", "Milky Cleanser", brand="Clinique", category=("Beauty", "Skincare", "Cleanser"), price=m(2400),
             attributes={"ingredients": "Visit the Clinique boutique", "skin_type": ("dry",)}),
    ]


@pytest.fixture(scope="module")
def tiny_snapshot() -> CatalogSnapshot:
    return CatalogSnapshot.from_items(tiny_items())


@pytest.fixture(scope="module")
def tiny_searcher(tiny_snapshot: CatalogSnapshot) -> Searcher:
    return Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(tiny_snapshot)


@pytest.fixture(scope="module")
def synthetic_searcher() -> Searcher:
    store = generate_store(StoreConfig(n_items=1500, n_shoppers=10, n_days=1, seed=11))
    return Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(store.items))
