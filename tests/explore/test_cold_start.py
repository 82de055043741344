"""Cold start for new shoppers: lookalike profiles, context priors, preference elicitation, their sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.explore import (
    NO_PREFERENCE,
    ContextPrior,
    LookalikeRecommender,
    PreferenceElicitor,
    answers_to_preferences,
    catalog_facets,
)
from shopkeep.features.context import Context, ContextRequest
from shopkeep.models.base import Interactions
from shopkeep.models.registry import create_model, load_model
from shopkeep.profiles import ProfileRepository
from shopkeep.retrieval import ModelBinding, SequentialSource
from shopkeep.retrieval.coldstart import PreferenceSource, ShortHistorySource
from shopkeep.storage.base import Store
from shopkeep.types import Item, Money


def _clustered(n_users: int = 300, n_items: int = 90, n_groups: int = 3, seed: int = 0) -> Interactions:
    """Each shopper draws 4-8 items from one of ``n_groups`` disjoint item groups."""
    rng = np.random.default_rng(seed)
    size = n_items // n_groups
    seqs = tuple(rng.choice(size, size=rng.integers(4, 9), replace=False) + size * (u % n_groups)
                 for u in range(n_users))
    return Interactions(seqs, n_items)


def test_lookalikes_of_one_click_come_from_its_group() -> None:
    model = LookalikeRecommender(n_components=6, n_neighbors=30).fit(_clustered())
    for item, group in ((3, 0), (35, 1), (70, 2)):
        top = np.argsort(-model.score([np.array([item])])[0])[:10]
        assert ((top // 30) == group).all(), (item, top)
        rows, weights = model.neighbors([np.array([item])])
        assert rows.shape == (1, 30) and (np.diff(weights[0]) <= 1e-12).all() and weights[0, 0] > 0


def test_lookalike_empty_history_is_popularity_and_contract() -> None:
    train = _clustered()
    model = create_model("lookalike", n_components=6, n_neighbors=10).fit(train)
    counts = np.bincount(np.concatenate(train.sequences), minlength=train.n_items)
    empty = model.score([np.zeros(0, dtype=np.int64)])[0]
    assert np.argmax(empty) == np.argmax(counts)
    batch = model.score([np.array([1]), np.array([40, 41])])
    assert np.allclose(batch[1], model.score([np.array([40, 41])])[0])
    with pytest.raises(NotFittedError):
        LookalikeRecommender().score([np.array([1])])
    with pytest.raises(ValidationError, match="n_neighbors"):
        LookalikeRecommender(n_neighbors=0).fit(train)


def test_lookalike_save_load_round_trip(tmp_path: Path) -> None:
    model = LookalikeRecommender(n_components=6, n_neighbors=10).fit(_clustered())
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    hist = [np.array([5]), np.array([61, 62])]
    assert np.array_equal(again.score(hist), model.score(hist)) and again.get_config() == model.get_config()


def test_context_prior_shrinks_to_global_popularity() -> None:
    rows = [({"referrer": "toys-campaign"}, 1)] * 30 + [({"referrer": "rare"}, 2)] + [({"device": "mobile"}, 0)] * 60
    prior = ContextPrior(shrinkage=10.0).fit(rows, n_items=3)
    toys, rare, unknown, none = prior.scores([{"referrer": "toys-campaign"}, {"referrer": "rare"},
                                              {"referrer": "never-seen"}, {}])
    assert np.argmax(toys) == 1 and toys[1] > 0.7
    assert np.argmax(rare) == 0, "one visit from a rare referrer must not outweigh global popularity"
    assert np.allclose(unknown, none) and np.isclose(none.sum(), 1.0)
    with pytest.raises(ValidationError, match="fields"):
        ContextPrior(fields=("weather",)).fit(rows, n_items=3)


def _catalog() -> CatalogSnapshot:
    items = []
    for i in range(120):
        dept = ("Beauty", "Skincare", "Serum") if i < 60 else ("Toys", "Puzzles", "Jigsaw")
        attrs: dict[str, Any] = {}
        if i < 60:
            attrs = {"skin_type": ("dry",) if i % 2 else ("oily",), "fragrance_free": i % 3 == 0}
        items.append(Item(f"i{i:03d}", f"item {i}", category=dept, price=Money(500 + 100 * (i % 30), "USD"),
                          attributes=attrs))
    return CatalogSnapshot.from_items(items)


def test_elicitation_asks_by_gain_and_stops() -> None:
    snap = _catalog()
    facets = catalog_facets(snap)
    assert {f.slot for f in facets} == {"department", "skin_type", "fragrance_free", "budget"}
    el = PreferenceElicitor(min_gain_bits=0.5, max_questions=3, k=10)
    first = el.next_question(facets, np.ones(snap.n), {})
    assert first is not None and first.gain_bits >= 0.5
    gains = el.selector.gains(facets, np.ones(snap.n))
    assert first.slot == max(gains, key=gains.__getitem__), gains
    by_slot = {f.slot: f for f in facets}
    truth = {"department": "beauty", "skin_type": "dry", "fragrance_free": "true",
             "budget": next(iter(by_slot["budget"].buckets))}
    answers, weights = el.elicit(facets, np.ones(snap.n), truth)
    assert 2 <= len(answers) <= 3 and all(truth[s] == a for s, a in answers.items())
    top = np.argsort(-weights, kind="stable")[:3]
    for slot, answer in answers.items():
        assert by_slot[slot].buckets[answer][top].all(), (slot, answer)
    # a prior already concentrated on a few items: no question is worth a turn
    sharp = np.zeros(snap.n)
    sharp[:5] = 1.0
    assert el.next_question(facets, sharp, {}) is None
    assert PreferenceElicitor(max_questions=0).next_question(facets, np.ones(snap.n), {}) is None
    # "no preference" changes no weight
    assert np.array_equal(el.reweight(facets, np.ones(snap.n), {"skin_type": NO_PREFERENCE}), np.ones(snap.n))


def test_answers_persist_as_zero_party_preferences(store: Store) -> None:
    snap = _catalog()
    repo = ProfileRepository(store)
    profile = PreferenceElicitor.save_answers(repo, "new-shopper", {"skin_type": "dry", "fragrance_free": "true",
                                                                    "department": NO_PREFERENCE,
                                                                    "budget": "under_13"}, snap)
    again = repo.get("new-shopper")
    assert again.preferences == {"skin_type": ("dry",), "fragrance_free": ("true",)} == profile.preferences
    assert again.budget_max is not None and again.budget_max.amount == answers_to_preferences(
        {"budget": "under_13"}, snap)[1].amount  # type: ignore[union-attr]


def _ctx(recent: tuple[str, ...] = (), prefs: dict[str, tuple[str, ...]] | None = None,
         personalize: bool = True) -> Context:
    return Context(ContextRequest(anonymous_id="a"), now_ms=0, recent_items=recent, preferences=prefs or {},
                   personalize=personalize)


def test_short_history_source_scope_and_contract() -> None:
    snap = _catalog()
    train = Interactions(tuple(np.arange(s, s + 6) % 120 for s in range(0, 120, 3)), 120)
    model = LookalikeRecommender(n_components=4, n_neighbors=5).fit(train)
    inner = SequentialSource(ModelBinding(model, tuple(snap.item_ids)), snap, name="lookalike", exclude_history=True)
    src = ShortHistorySource(inner, max_interactions=2)
    contexts = [_ctx(("i000",)), _ctx(("i000", "i001")), _ctx(("i000", "i001", "i002")),
                _ctx(("i000",), personalize=False)]
    masks = [np.ones(snap.n, dtype=bool)] * 4
    assert [src.context_weight(c) for c in contexts] == [1.0, 1.0, 0.0, 0.0]
    lists = src.retrieve(contexts, masks, 10)
    assert len(lists[0]) == 10 and len(lists[1]) == 10 and lists[2] == [] and lists[3] == []
    # the same candidates as the inner source alone; scores equal up to float32 rounding (a batch of two
    # queries goes through BLAS gemm, one query through gemv: the last bits may differ)
    alone = inner.retrieve(contexts[:1], masks[:1], 10)[0]
    assert [(c.item_id, c.rank, c.source) for c in lists[0]] == [(c.item_id, c.rank, c.source) for c in alone]
    assert [c.score for c in lists[0]] == pytest.approx([c.score for c in alone], rel=1e-5)
    arrays = src.retrieve_arrays(contexts, masks, 10)
    assert [snap.item_ids[i] for i in arrays[1][0]] == [c.item_id for c in lists[1]]
    with pytest.raises(ValidationError):
        ShortHistorySource(inner, max_interactions=-1)


def test_preference_source_matches_stated_preferences() -> None:
    snap = _catalog()
    src = PreferenceSource(snap, prior=np.linspace(0, 1, snap.n))
    ctx = _ctx(prefs={"skin_type": ("dry",), "fragrance_free": ("true",)})
    mask = np.ones(snap.n, dtype=bool)
    mask[1] = False
    (cands,) = src.retrieve([ctx], [mask], 5)
    idx = snap.indices([c.item_id for c in cands])
    assert all(snap.attribute_mask("skin_type", "dry")[i] and snap.attribute_mask("fragrance_free", True)[i]
               for i in idx), "items matching both preferences come first"
    assert 1 not in idx.tolist()
    assert src.retrieve([_ctx()], [mask], 5) == [[]] and src.context_weight(_ctx()) == 0.0
    assert src.context_weight(ctx) == 1.0 and src.context_weight(_ctx(prefs={"colour": ("teal",)})) == 0.0
