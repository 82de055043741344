"""Returns-aware fit: the suggested size cuts size-driven returns on a small seeded synthetic store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopkeep.errors import NotFittedError
from shopkeep.evaluation.returns_fit import evaluate_fit, fit_store
from shopkeep.features.fit import FitModel
from shopkeep.types import Event, EventType, Item, ReturnReason

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_suggested_sizes_cut_size_driven_returns_on_a_seeded_store() -> None:
    store = fit_store(n_items=600, n_shoppers=800, n_days=60, seed=3)
    ev = evaluate_fit(store, step_at=0.2)
    total = ev.row("all")
    assert total.cases > 100 and ev.train_size_returns > 20
    assert total.fit < total.usual  # fewer expected size returns than at the usual size
    assert total.drop > 0.03 and total.helped > total.hurt
    assert total.oracle <= total.fit


def _boots() -> dict[str, Item]:
    return {f"b-{n}": Item(f"b-{n}", f"Boot {n}", group_id="boot", brand="Ridge", attributes={"size": str(n)})
            for n in (8, 9, 10)}


def test_shopper_level_beats_brand_level_and_notes_quote_counts() -> None:
    evs = []
    for u in range(8):  # the brand fits most people: kept
        evs.append(Event(f"p{u}", EventType.PURCHASE, T, user_id=f"u{u}", item_id="b-9", order_id=f"o{u}", quantity=1))
    for k in range(3):  # one shopper keeps returning it as too large
        evs.append(Event(f"q{k}", EventType.PURCHASE, T, user_id="me", item_id="b-9", order_id=f"m{k}", quantity=1))
        evs.append(Event(f"r{k}", EventType.RETURN, T, user_id="me", item_id="b-9", order_id=f"m{k}",
                         reason=ReturnReason.TOO_LARGE))
    model = FitModel().fit(evs, _boots())
    mine = model.advise("me", "b-9", usual="9")
    other = model.advise("u1", "b-9", usual="9")
    assert mine is not None and other is not None
    assert (mine.suggested_size, mine.suggested_item_id, mine.level) == ("8", "b-8", "shopper_brand")
    assert "you returned 3 of 3 as too large" in mine.note and mine.note.endswith("your usual 9 → 8")
    assert other.steps == 0 and other.suggested_item_id == "b-9"
    assert model.advise("me", "not-sized") is None


def test_update_folds_new_returns_and_use_before_fit_is_an_error() -> None:
    with pytest.raises(NotFittedError):
        FitModel().advise("x", "b-9")
    model = FitModel().fit([], _boots())
    assert model.advise("x", "b-9", usual="9").steps == 0  # type: ignore[union-attr]
    for k in range(6):
        model.update([Event(f"p{k}", EventType.PURCHASE, T, anonymous_id=f"a{k}", item_id="b-9", order_id=f"o{k}",
                            quantity=1),
                      Event(f"r{k}", EventType.RETURN, T, anonymous_id=f"a{k}", item_id="b-9", order_id=f"o{k}",
                            reason=ReturnReason.TOO_SMALL)])
    advice = model.advise("x", "b-9", usual="9")
    assert advice is not None and advice.steps >= 1 and "Ridge runs small (6 of 6" in advice.note
