"""SessionFeatures against the in-memory state and a real Redis, with attributes, categories and items
drawn at random from a synthetic catalog (seeded per run; the seed is in every failure message)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shopkeep.catalog.snapshot import normalize_value
from shopkeep.errors import StorageError, ValidationError
from shopkeep.features import (
    ContextRequest,
    FeatureConfig,
    SessionFeatures,
    State,
    filter_key,
    purchase_suppression_mask,
)
from shopkeep.profiles.model import Consent, Profile
from shopkeep.types import Event, EventType, Money, to_epoch_ms

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DRAWS = 4


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def attribute_draws(catalog: Any, rng: random.Random, k: int) -> list[tuple[str, str, str]]:
    """``k`` random (attribute, wire value, affinity key) held by 5–30% of the items."""
    snap = catalog.snapshot
    seen: dict[tuple[str, str], object] = {}
    for item in catalog.items:
        for name, raw in item.attributes.items():
            for value in raw if isinstance(raw, tuple) else (raw,):
                seen.setdefault((name, normalize_value(value)), value)
    fitting = []
    for (name, norm), value in sorted(seen.items()):
        share = float(snap.attribute_mask(name, value).mean())
        if 0.05 <= share <= 0.30:
            wire = rng.choice(["true", "True"]) if value is True else rng.choice(["false", "FALSE"]) \
                if value is False else str(value) if not isinstance(value, str) else rng.choice([value, value.upper()])
            fitting.append((name, wire, f"attr:{name}={norm}"))
    assert len(fitting) >= k, "the synthetic catalog has too few attribute values held by 5-30% of items"
    return rng.sample(fitting, k)


def items_with_key(catalog: Any, key: str) -> set[int]:
    return {i for i in range(catalog.snapshot.n) if key in catalog.snapshot.affinity_keys(i)}


def category_draws(catalog: Any, rng: random.Random, k: int) -> list[str]:
    """``k`` random category names below the department level with at least 3 items."""
    counts: dict[str, int] = {}
    for path in catalog.snapshot.category_paths:
        for level in path[1:]:
            counts[level] = counts.get(level, 0) + 1
    return rng.sample(sorted(c for c, n in counts.items() if n >= 3), k)


def category_pair(catalog: Any, rng: random.Random) -> tuple[str, str]:
    """Two random categories (below the department level) of different departments."""
    while True:
        first, second = category_draws(catalog, rng, 2)
        dept = {path[0] for path in catalog.snapshot.category_paths if first in path[1:] or second in path[1:]}
        if len(dept) == 2:
            return first, second


def members(catalog: Any, category: str) -> list[int]:
    return [int(i) for i in np.flatnonzero(catalog.snapshot.category_mask(category))]


def reference_affinities(events: Sequence[Event], catalog: Any, cfg: FeatureConfig, now: datetime,
                         half_life_s: float) -> dict[str, float]:
    """The definition, computed naively: Σ weight · 2^(−(now − t)/half_life) over events and keys."""
    out: dict[str, float] = {}
    for e in events:
        w = cfg.weight(e.type)
        if not w:
            continue
        if e.type is EventType.FILTER:
            keys = [filter_key(e.attribute or "", e.value or "")]
        else:
            i = catalog.snapshot.index.get(e.item_id, -1)
            keys = [*(catalog.snapshot.affinity_keys(i) if i >= 0 else ()), f"item:{e.item_id}"]
        factor = 2.0 ** (-(now - e.timestamp).total_seconds() / half_life_s)
        for key in keys:
            out[key] = out.get(key, 0.0) + w * factor
    return out


def assert_close(got: dict[str, float], want: dict[str, float], note: str, rel: float = 1e-9) -> None:
    assert set(got) == set(want), f"{note}: keys differ {sorted(set(got) ^ set(want))[:5]}"
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=rel, abs=1e-12), f"{note}: {key}"


def test_three_filters_put_the_attribute_on_top(features: SessionFeatures, catalog: Any, rng: random.Random,
                                                ev: Any, seed_note: str) -> None:
    for d, (name, wire, key) in enumerate(attribute_draws(catalog, rng, DRAWS)):
        sid = f"filters-{d}"
        noise = [catalog.items[i].item_id for i in rng.sample(range(catalog.snapshot.n), 2)]
        events = [ev("view", at(0), session=sid, item=noise[0]), ev("view", at(30), session=sid, item=noise[1])]
        events += [ev("filter", at(60 + 30 * j), session=sid, attribute=name, value=wire) for j in range(3)]
        features.update(events)
        ctx = features.context(ContextRequest(session_id=sid, now=at(125)))
        top = max(ctx.affinities, key=lambda k: ctx.affinities[k])
        assert top == key, f"{name}={wire!r}: top {top} ({seed_note})"
        # The key selects exactly the items holding that value: the affinity -> retrieval link.
        assert items_with_key(catalog, key) == set(np.flatnonzero(catalog.snapshot.attribute_mask(name, wire)))
        want = reference_affinities(events, catalog, features.config, at(125), features.config.half_life_s)
        assert_close(dict(ctx.affinities), want, seed_note)
        assert ctx.recent_items == tuple(dict.fromkeys(noise))


def test_three_clicks_make_the_category_top(features: SessionFeatures, catalog: Any, rng: random.Random,
                                            ev: Any, seed_note: str) -> None:
    for d, category in enumerate(category_draws(catalog, rng, DRAWS)):
        sid = f"clicks-{d}"
        chosen = members(catalog, category)
        department = catalog.snapshot.category_paths[chosen[0]][0]
        elsewhere = [i for i in range(catalog.snapshot.n) if catalog.snapshot.category_paths[i][0] != department]
        noise = rng.sample(elsewhere, 2)
        events = [ev("view", at(j), session=sid, item=catalog.items[i].item_id) for j, i in enumerate(noise)]
        events += [ev("click", at(100 + j), session=sid, item=catalog.items[i].item_id)
                   for j, i in enumerate(rng.sample(chosen, 3))]
        features.update(events)
        ctx = features.context(ContextRequest(session_id=sid, now=at(110)))
        cats = {k: v for k, v in ctx.affinities.items() if k.startswith("cat:")}
        mine = cats[f"cat:{category.lower()}"]
        assert mine == pytest.approx(max(cats.values())), f"{category}: {cats} ({seed_note})"
        assert mine > cats[f"cat:{catalog.snapshot.category_paths[noise[0]][0].lower()}"]


def test_half_life_halves_then_fades(features: SessionFeatures, catalog: Any, rng: random.Random, ev: Any,
                                     seed_note: str) -> None:
    h = features.config.half_life_s
    for d, (name, wire, key) in enumerate(attribute_draws(catalog, rng, DRAWS)):
        sid = f"decay-{d}"
        features.update([ev("filter", at(10 * j), session=sid, attribute=name, value=wire) for j in range(3)])
        values = [features.context(ContextRequest(session_id=sid, now=at(20 + n * h))).affinities[key]
                  for n in range(4)]
        for n in range(1, 4):
            assert values[n] == pytest.approx(values[0] / 2**n, rel=1e-9), f"{key} after {n} half-lives ({seed_note})"
        holders = items_with_key(catalog, key)
        other = catalog.items[rng.choice([i for i in range(catalog.snapshot.n) if i not in holders])].item_id
        features.update([ev("view", at(20 + 24 * h), session=sid, item=other)])
        aff = features.context(ContextRequest(session_id=sid, now=at(20 + 24 * h))).affinities
        assert aff.get(key, 0.0) < min(aff[f"item:{other}"], *(v for k, v in aff.items() if k != key))


def test_long_term_state_uses_its_own_half_life(features: SessionFeatures, catalog: Any, rng: random.Random,
                                                ev: Any) -> None:
    item = catalog.items[rng.randrange(catalog.snapshot.n)].item_id
    features.update([ev("add_to_cart", at(0), session="lt", anon="anon-lt", item=item)])
    h = features.config.user_half_life_s
    first = features.context(ContextRequest(anonymous_id="anon-lt", now=at(0))).affinities[f"item:{item}"]
    later = features.context(ContextRequest(anonymous_id="anon-lt", now=at(h))).affinities[f"item:{item}"]
    assert first == pytest.approx(3.0) and later == pytest.approx(1.5)


def random_events(catalog: Any, rng: random.Random, ev: Any, tag: str, n: int = 120) -> list[Event]:
    pool = [catalog.items[i].item_id for i in rng.sample(range(catalog.snapshot.n), 12)] + ["not-in-catalog"]
    name, wire, _ = attribute_draws(catalog, rng, 1)[0]
    kinds = ["view", "click", "dwell", "filter", "add_to_cart", "remove_from_cart", "wishlist", "purchase",
             "impression", "search"]
    times = sorted(rng.sample(range(0, 3 * 3600 * 1000), n))
    out = []
    for ms in times:
        kind = rng.choice(kinds)
        session, anon = rng.choice([(f"{tag}s1", f"{tag}a1"), (f"{tag}s2", f"{tag}a1"), (f"{tag}s3", f"{tag}a2")])
        when = T0 + timedelta(milliseconds=ms)
        extra: dict[str, Any] = {}
        item: str | None = rng.choice(pool)
        if kind == "filter":
            item, extra = None, {"attribute": name, "value": wire}
        elif kind == "search":
            item, extra = None, {"query": "something"}
        elif kind == "dwell":
            extra = {"dwell_ms": 3000}
        elif kind == "impression":
            extra = {"trace_id": "tr-1", "position": 0}
        elif kind == "purchase":
            extra = {"order_id": f"o-{ms}", "quantity": 1, "price": Money(1000, "USD")}
        out.append(ev(kind, when, session=session, anon=anon, item=item, **extra))
    return out


def batches(events: list[Event], rng: random.Random) -> list[list[Event]]:
    cuts = sorted(rng.sample(range(1, len(events)), 5))
    return [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]


def renamed(events: list[Event], tag: str) -> list[Event]:
    from dataclasses import replace

    return [replace(e, session_id=e.session_id and e.session_id.replace("A-", tag),
                    anonymous_id=e.anonymous_id and e.anonymous_id.replace("A-", tag)) for e in events]


def test_late_and_shuffled_events_give_the_same_state(opener: Any, catalog: Any, rng: random.Random, ev: Any,
                                                      seed_note: str) -> None:
    cfg = FeatureConfig(max_affinities=10_000, max_user_affinities=10_000, min_weight=1e-300)
    features = SessionFeatures(opener(), lambda: catalog.snapshot, cfg)
    for d in range(3):
        events = random_events(catalog, rng, ev, "A-")
        shuffled = renamed(events, f"B{d}-")
        rng.shuffle(shuffled)
        in_order = renamed(events, f"C{d}-")
        for batch in batches(in_order, rng):
            features.update(batch)
        for batch in batches(shuffled, rng):
            features.update(batch)
        now = T0 + timedelta(hours=3, minutes=5)
        for sess, anon in (("s1", "a1"), ("s2", "a1"), ("s3", "a2")):
            a, b = (features.context(ContextRequest(session_id=f"{t}{sess}", anonymous_id=f"{t}{anon}", now=now))
                    for t in (f"C{d}-", f"B{d}-"))
            note = f"draw {d} {sess} ({seed_note})"
            assert_close(dict(b.affinities), dict(a.affinities), note)
            assert (b.recent_items, b.cart_items, dict(b.purchased)) == (a.recent_items, a.cart_items,
                                                                         dict(a.purchased)), note
            mine = [e for e in events if e.session_id == f"A-{sess}"]
            want = reference_affinities(mine, catalog, cfg, now, cfg.half_life_s)
            sess_only = features.context(ContextRequest(session_id=f"B{d}-{sess}", now=now))
            assert_close(dict(sess_only.affinities), want, note)
            viewed = [e.item_id for e in mine if e.type.value in
                      {"view", "click", "dwell", "add_to_cart", "wishlist", "purchase"}]
            assert sess_only.recent_items == tuple(x for j, x in enumerate(viewed) if j == 0 or viewed[j - 1] != x)


def test_purchases_recorded_with_time_and_group(features: SessionFeatures, catalog: Any, rng: random.Random,
                                                ev: Any, seed_note: str) -> None:
    snap, cfg = catalog.snapshot, features.config
    grouped = [i for i in range(snap.n) if snap.group[i] >= 0 and (snap.group == snap.group[i]).sum() >= 2
               and cfg.repurchase_interval_days(snap.category_paths[i]) is None]
    refill = [i for i in range(snap.n) if cfg.repurchase_interval_days(snap.category_paths[i]) is not None]
    for d in range(DRAWS):
        i, r = rng.choice(grouped), rng.choice(refill)
        ids = catalog.items[i].item_id, catalog.items[r].item_id
        user = f"buyer-{d}"
        events = [ev("add_to_cart", at(0), session=f"p{d}", user=user, item=ids[0]),
                  ev("add_to_cart", at(5), session=f"p{d}", user=user, item=ids[1]),
                  ev("purchase", at(60), session=f"p{d}", user=user, item=ids[0], order_id="o", quantity=1),
                  ev("purchase", at(61), session=f"p{d}", user=user, item=ids[1], order_id="o", quantity=1)]
        features.update(events)
        ctx = features.context(ContextRequest(user_id=user, now=at(120)))
        assert dict(ctx.purchased) == {ids[0]: to_epoch_ms(at(60)), ids[1]: to_epoch_ms(at(61))}, seed_note
        assert ctx.cart_items == ()
        stored = State.decode(features.online.get_many([f"user:{user}"])[f"user:{user}"])
        assert stored.g[catalog.items[i].group_id] == to_epoch_ms(at(60)) and stored.s == [f"p{d}"]
        hidden = purchase_suppression_mask(snap, ctx.purchased, ctx.now_ms, cfg)
        assert set(np.flatnonzero(hidden)) == set(np.flatnonzero(snap.group == snap.group[i])), seed_note
        assert not hidden[r]
        year_later = purchase_suppression_mask(snap, ctx.purchased, ctx.now_ms + 366 * 86_400_000, cfg)
        assert not year_later.any()


@pytest.mark.parametrize("opener", ["redis"], indirect=True)
def test_two_workers_on_one_redis_read_each_others_writes(opener: Any, catalog: Any, rng: random.Random,
                                                           ev: Any, seed_note: str) -> None:
    one = SessionFeatures(opener(), lambda: catalog.snapshot)
    two = SessionFeatures(opener(), lambda: catalog.snapshot)
    assert one.online is not two.online
    clock = 0
    for d in range(6):
        writer, reader = (one, two) if d % 2 == 0 else (two, one)
        item = catalog.items[rng.randrange(catalog.snapshot.n)].item_id
        clock += 7
        writer.update([ev(rng.choice(["view", "click", "add_to_cart"]), at(clock), session="shared", item=item)])
        ctx = reader.context(ContextRequest(session_id="shared", anonymous_id="a1", now=at(clock)))
        assert ctx.recent_items[-1] == item and f"item:{item}" in ctx.affinities, seed_note


def test_consent_withdrawn_turns_personalization_off(features: SessionFeatures, catalog: Any,
                                                     rng: random.Random, ev: Any) -> None:
    item = catalog.items[rng.randrange(catalog.snapshot.n)].item_id
    features.update([ev("click", at(0), session="c1", user="u-c", item=item),
                     ev("add_to_cart", at(1), session="c1", user="u-c", item=item)])
    base = dict(user_id="u-c", region="US-CA", age_verified=True, loyalty_tier="gold",
                preferences={"skin_type": ("dry",)}, avoid={"fragrance_free": ("false",)},
                budget_max=Money(5000, "USD"))
    request = ContextRequest(user_id="u-c", session_id="c1", now=at(2))
    on = features.context(request, Profile(**base))  # type: ignore[arg-type]
    off = features.context(request, Profile(consent=Consent(personalization=False), **base))  # type: ignore[arg-type]
    assert on.personalize and on.affinities and on.recent_items == (item,) and on.preferences == {"skin_type": ("dry",)}
    assert not off.personalize and not off.affinities and not off.recent_items and not off.purchased
    assert not off.preferences and off.avoid == {"fragrance_free": ("false",)} and off.cart_items == (item,)
    assert (off.region, off.age_verified, off.budget_max_minor, off.loyalty_tier) == ("US-CA", True, 5000, "gold")


def test_a_diverging_session_outweighs_long_term_history(features: SessionFeatures, catalog: Any,
                                                         rng: random.Random, ev: Any, seed_note: str) -> None:
    for d in range(DRAWS):
        old_cat, new_cat = category_pair(catalog, rng)
        user = f"div-{d}"
        past = [ev("purchase" if j % 3 == 0 else "view", at(-86400 * (1 + j % 5) - j), session=f"old-{d}-{j % 4}",
                   user=user, item=catalog.items[rng.choice(members(catalog, old_cat))].item_id, order_id="o",
                   quantity=1) for j in range(25)]
        features.update(past)
        features.update([ev("click", at(j), session=f"new-{d}", user=user,
                            item=catalog.items[rng.choice(members(catalog, new_cat))].item_id) for j in range(3)])
        both = features.context(ContextRequest(user_id=user, session_id=f"new-{d}", now=at(5))).affinities
        history = features.context(ContextRequest(user_id=user, now=at(5))).affinities
        new_key, old_key = f"cat:{new_cat.lower()}", f"cat:{old_cat.lower()}"
        assert history.get(old_key, 0) > history.get(new_key, 0), seed_note
        assert both[new_key] > both.get(old_key, 0.0), f"{new_cat} vs {old_cat} ({seed_note})"
        session_mass = sum(features.context(ContextRequest(session_id=f"new-{d}", now=at(5))).affinities.values())
        assert sum(both.values()) <= session_mass * (1 + features.config.session_dominance) + 1e-9


def test_forget_erases_the_shopper_and_their_sessions(features: SessionFeatures, catalog: Any, ev: Any) -> None:
    item = catalog.items[0].item_id
    features.update([ev("view", at(j), session=f"f{j % 2}", user="u-f", item=item) for j in range(4)])
    features.update([ev("view", at(9), session="other", user="u-other", item=item)])
    assert features.forget(user_id="u-f") == 3
    for request in (ContextRequest(user_id="u-f", now=at(10)), ContextRequest(session_id="f0", now=at(10))):
        assert not features.context(request).recent_items
    assert features.context(ContextRequest(session_id="other", now=at(10))).recent_items == (item,)
    with pytest.raises(ValidationError, match="user_id"):
        features.forget()


def test_bad_input_is_refused_and_nothing_is_written(features: SessionFeatures, catalog: Any, ev: Any) -> None:
    good = ev("view", at(0), session="bad", item=catalog.items[0].item_id)
    with pytest.raises(ValidationError, match=r"events\[1\]"):
        features.update([good, {"type": "view"}])  # type: ignore[list-item]
    assert not features.online.get_many(["sess:bad", "anon:a1"])
    features.online.set_many({"sess:broken": b"not json"})
    with pytest.raises(StorageError, match="unreadable"):
        features.context(ContextRequest(session_id="broken"))
    with pytest.raises(ValidationError, match="timezone"):
        features.context(ContextRequest(session_id="bad", now=datetime(2026, 11, 2, 9, 0)))
    with pytest.raises(ValidationError, match=r"weights\.bogus"):
        FeatureConfig(weights={"bogus": 1.0})
    with pytest.raises(ValidationError, match="max_recent"):
        FeatureConfig(max_recent=0)


def test_recent_items_are_capped_and_read_without_repeats(opener: Any, catalog: Any, ev: Any) -> None:
    features = SessionFeatures(opener(), lambda: catalog.snapshot, FeatureConfig(max_recent=5))
    ids = [catalog.items[i].item_id for i in range(8)]
    seq = [ids[0], ids[0], ids[1], ids[0], *ids[2:8]]
    features.update([ev("view", at(j), session="cap", item=x) for j, x in enumerate(seq)])
    features.update([ev("dwell", at(len(seq) - 0.5), session="cap", item=ids[7], dwell_ms=100)])
    ctx = features.context(ContextRequest(session_id="cap", now=at(20)))
    assert ctx.recent_items == tuple(ids[3:8])
