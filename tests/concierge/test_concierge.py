"""Concierge: slots across turns, questions by information gain, the constraint guard, zero-party saves."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.concierge import Concierge, ConciergeMessage, Facet, QuestionSelector, expected_gain
from shopkeep.errors import ValidationError
from shopkeep.profiles.model import Profile
from shopkeep.profiles.repository import ProfileRepository
from shopkeep.search import ParsedQuery, SearchConfig, Searcher
from shopkeep.search.filters import constraints_mask
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import open_store


@pytest.fixture(scope="module")
def searcher() -> Searcher:
    shop = generate_store(StoreConfig(n_items=1500, n_shoppers=5, n_days=1, seed=3))
    return Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(shop.items))


def test_gain_is_entropy_reduction() -> None:
    half = np.array([True, True, False, False])
    assert expected_gain({"a": half, "b": ~half}, np.ones(4)) == pytest.approx(1.0)
    assert expected_gain({"a": np.ones(4, dtype=bool)}, np.ones(4)) == pytest.approx(0.0)
    quarter = [np.eye(4, dtype=bool)[i] for i in range(4)]
    assert expected_gain(dict(zip("abcd", quarter, strict=True)), np.ones(4)) == pytest.approx(2.0)


def test_selector_asks_only_when_informative() -> None:
    n = 40
    split = np.arange(n) < n // 2
    useless = Facet("same", "?", {"x": np.ones(n, dtype=bool), "y": np.zeros(n, dtype=bool)})
    good = Facet("split", "?", {"x": split, "y": ~split})
    sel = QuestionSelector(min_gain_bits=0.8, max_questions=3, k=5)
    q = sel.choose([useless, good], np.ones(n))
    assert q is not None and q.slot == "split" and q.gain_bits == pytest.approx(1.0)
    assert sel.choose([useless], np.ones(n)) is None  # the answer would not change the candidates
    assert sel.choose([good], np.ones(4)) is None  # already fits in one page
    assert sel.choose([good], np.ones(n), asked=["a", "b", "c"]) is None  # question budget spent


QUERIES = [
    "best fragrance-free moisturizer for sensitive skin under $30 available for same-day pickup",
    "fragrance free moisturizer under $60", "vegan lipstick", "sunscreen spf 50", "cheap shampoo",
    "red dress under $80", "running shoes between 50 and 120 dollars", "moisturizer for dry skin",
    "gluten free pasta", "cleanser for oily skin under 25 dollars", "waterproof hiking boots",
]


@pytest.mark.parametrize("policy", ["gain", "never", "always"])
def test_every_answered_product_satisfies_every_constraint(searcher: Searcher, policy: str) -> None:
    bot = Concierge(open_store("memory://"), lambda: (searcher, None), ask=policy)
    answered = 0
    for n, query in enumerate(QUERIES):
        for turn, text in enumerate([query, "no preference", "no preference", "no preference"]):
            reply = bot.reply(ConciergeMessage(f"c{n}", text, anonymous_id="a"))
            assert reply.automated and (("automated" in reply.reply) == (turn == 0))
            mask = constraints_mask(searcher.masks_, ParsedQuery("", "", reply.slots), searcher.snapshot_.active)
            for p in reply.products:
                assert mask[searcher.snapshot_.index[p.item_id]], (query, p.item_id, reply.slots)
                assert p.reasons
                answered += 1
            if reply.products or reply.question is None:
                break
    assert answered >= 20


def test_slots_persist_and_questions_end(searcher: Searcher, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    bot = Concierge(store, lambda: (searcher, None))
    first = bot.reply(ConciergeMessage("c", "I need a moisturizer", anonymous_id="a"))
    assert [c.label() for c in first.slots] == ["category=moisturizer"]
    assert first.question is not None and not first.products
    again = Concierge(store, lambda: (searcher, None))  # a new process sees the same conversation
    turns = [first]
    while turns[-1].question is not None:
        turns.append(again.reply(ConciergeMessage("c", turns[-1].question.options[0], anonymous_id="a")))
    assert 2 <= len(turns) <= 4 and turns[-1].products
    assert any(c.kind == "category" for c in turns[-1].slots) and len(turns[-1].slots) >= 2
    with pytest.raises(ValidationError, match="another shopper"):
        again.reply(ConciergeMessage("c", "hello", anonymous_id="b"))


def test_fragrance_free_product_reasons_quote_the_data(searcher: Searcher) -> None:
    bot = Concierge(open_store("memory://"), lambda: (searcher, None), ask="never")
    reply = bot.reply(ConciergeMessage("r", "fragrance-free moisturizer under $60", anonymous_id="a"))
    assert reply.products
    for p in reply.products:
        item = searcher.snapshot_.items[searcher.snapshot_.index[p.item_id]]
        assert item.attributes.get("fragrance_free") is True and item.price is not None
        assert "fragrance-free: yes" in p.reasons
        assert p.price_minor == item.price.amount <= 6000
        assert any(item.price.format() in r for r in p.reasons)


def test_preferences_saved_only_with_consent(searcher: Searcher) -> None:
    store = open_store("memory://")
    profiles = ProfileRepository(store)
    profiles.upsert(Profile("yes"))
    profiles.upsert(Profile("no"))
    profiles.set_consent("no", personalization=False)
    bot = Concierge(store, lambda: (searcher, None), profiles=profiles)
    text = "fragrance-free moisturizer for sensitive skin under $30"
    saved = bot.reply(ConciergeMessage("p1", text, user_id="yes")).saved_preferences
    assert saved["avoid"] == {"fragrance_free": ["false"]} and saved["preferences"] == {"skin_type": ["sensitive"]}
    got = profiles.get("yes")
    assert got.avoid["fragrance_free"] == ("false",) and got.preferences["skin_type"] == ("sensitive",)
    assert got.budget_max is not None and got.budget_max.amount == 3000
    assert bot.reply(ConciergeMessage("p2", text, user_id="no")).saved_preferences == {}
    assert profiles.get("no").preferences == {} and profiles.get("no").budget_max is None


def test_bad_input_names_the_field(searcher: Searcher) -> None:
    bot = Concierge(open_store("memory://"), lambda: (searcher, None))
    with pytest.raises(ValidationError, match="message"):
        bot.reply(ConciergeMessage("c", "  ", anonymous_id="a"))
    with pytest.raises(ValidationError, match="anonymous_id"):
        bot.reply(ConciergeMessage("c", "hi"))
    with pytest.raises(ValidationError, match="ask"):
        Concierge(open_store("memory://"), lambda: (searcher, None), ask="sometimes")
