"""Idempotent and concurrent feature updates: a batch re-sent after a crash is folded exactly once per
record, and two workers updating one session at once converge to what one worker reaches — against
the in-memory state and a real Redis (separate clients per worker)."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from shopkeep.features import FeatureConfig, SessionFeatures, State
from shopkeep.storage import OnlineState
from shopkeep.types import Event, EventType, to_epoch_ms

from .conftest import Catalog, Opener

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KINDS = (EventType.VIEW, EventType.VIEW, EventType.CLICK, EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART,
         EventType.PURCHASE, EventType.WISHLIST)


def events_for(catalog: Catalog, rng: random.Random, n: int, *, sessions: Sequence[str] = ("s1",),
               prefix: str = "e") -> list[Event]:
    """``n`` random item events of one shopper (user u1, anonymous a1) spread over ``sessions``."""
    items = [it.item_id for it in catalog.items]
    return [Event(f"{prefix}-{i}", rng.choice(KINDS), T0 + timedelta(seconds=7 * i + rng.randint(0, 5)),
                  anonymous_id="a1", user_id="u1", session_id=rng.choice(list(sessions)), item_id=rng.choice(items))
            for i in range(n)]


def dump(online: OnlineState, keys: Sequence[str]) -> dict[str, bytes]:
    return online.get_many(list(keys))


KEYS = ("sess:s1", "sess:s2", "user:u1")


def test_batch_resent_after_a_crash_before_the_features_is_folded_once(
        opener: Opener, catalog: Catalog, rng: random.Random, seed_note: str) -> None:
    events = events_for(catalog, rng, 60, sessions=("s1", "s2"))
    batches = [events[i:i + 10] for i in range(0, 60, 10)]
    clean = SessionFeatures(opener(), lambda: catalog.snapshot)
    for batch in batches:
        clean.update(batch)
    want = dump(clean.online, KEYS)
    for key in KEYS:
        clean.online.delete_many([key])
    crashed = SessionFeatures(opener(), lambda: catalog.snapshot)
    for i, batch in enumerate(batches):
        if i == 3:  # stored durably, then the process died before the features were written: re-sent
            crashed.update(batch, retried={e.event_id for e in batch})
            continue
        crashed.update(batch)
    assert dump(crashed.online, KEYS) == want, seed_note


def test_batch_resent_after_the_features_were_written_changes_nothing(
        opener: Opener, catalog: Catalog, rng: random.Random, seed_note: str) -> None:
    features = SessionFeatures(opener(), lambda: catalog.snapshot)
    events = events_for(catalog, rng, 30, sessions=("s1", "s2"))
    features.update(events)
    before = dump(features.online, KEYS)
    features.update(events[5:25], retried={e.event_id for e in events})
    assert dump(features.online, KEYS) == before, seed_note


def test_crash_between_session_and_user_write_repairs_only_the_missing_record(
        opener: Opener, catalog: Catalog, rng: random.Random, seed_note: str) -> None:
    """The session record got the batch, the shopper record did not: the retry folds it into the latter only."""
    events = events_for(catalog, rng, 40)
    first, second = events[:20], events[20:]
    reference = SessionFeatures(opener(), lambda: catalog.snapshot)
    reference.update(first)
    user_after_first = dump(reference.online, ["user:u1"])["user:u1"]
    reference.update(second)
    want = dump(reference.online, ["sess:s1", "user:u1"])
    reference.online.set_many({"user:u1": user_after_first})  # the user write of `second` never happened
    reference.update(second, retried={e.event_id for e in second})
    assert dump(reference.online, ["sess:s1", "user:u1"]) == want, seed_note


def test_window_decides_old_resent_events_but_never_drops_new_ones(
        opener: Opener, catalog: Catalog, rng: random.Random) -> None:
    cfg = FeatureConfig(max_applied=8)
    features = SessionFeatures(opener(), lambda: catalog.snapshot, cfg)
    events = events_for(catalog, rng, 20)
    features.update(events[:10])
    features.update(events[10:])
    state = State.decode(dump(features.online, ["sess:s1"])["sess:s1"])
    assert len(state.e) == 8
    before = state.encode()
    features.update(events[:4], retried={e.event_id for e in events[:4]})  # older than a full window: folded
    assert dump(features.online, ["sess:s1"])["sess:s1"] == before
    late = Event("late-new", EventType.ADD_TO_CART, T0 - timedelta(hours=1), anonymous_id="a1", user_id="u1",
                 session_id="s1", item_id=catalog.items[0].item_id)
    features.update([late])  # a new event older than the window is still folded (and then cut from it)
    state = State.decode(dump(features.online, ["sess:s1"])["sess:s1"])
    assert catalog.items[0].item_id in state.c and len(state.e) == 8


class _RaceOnce:
    """A real online state that lets another worker finish a whole update between this worker's read and
    write (once): the race that last-write-wins loses."""

    def __init__(self, inner: OnlineState, other: SessionFeatures, batch: Sequence[Event]) -> None:
        self.inner, self.other, self.batch = inner, other, batch
        self.fired = False

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found = self.inner.get_many(keys)
        if not self.fired:
            self.fired = True
            self.other.update(self.batch)
        return found

    def swap_many(self, expected: Mapping[str, bytes | None], values: Mapping[str, bytes], *,
                  ttl_s: int | None = None) -> list[str]:
        return self.inner.swap_many(expected, values, ttl_s=ttl_s)


def test_update_that_loses_a_race_is_refolded_on_the_winner(
        opener: Opener, catalog: Catalog, rng: random.Random, seed_note: str) -> None:
    events = events_for(catalog, rng, 24)
    mine, theirs = events[0::2], events[1::2]
    single = SessionFeatures(opener(), lambda: catalog.snapshot)
    single.update(theirs)
    single.update(mine)
    want = dump(single.online, ["sess:s1", "user:u1"])
    single.online.delete_many(["sess:s1", "user:u1"])
    other = SessionFeatures(opener(), lambda: catalog.snapshot)
    racing = SessionFeatures(_RaceOnce(opener(), other, theirs), lambda: catalog.snapshot)  # type: ignore[arg-type]
    racing.update(mine)
    assert racing.conflicts == 2  # both records changed under it, both re-read and re-folded
    assert dump(single.online, ["sess:s1", "user:u1"]) == want, seed_note  # the same two batches, same order


def assert_same_state(got: State, want: State, half_life_s: float, now: datetime, note: str) -> None:
    """Equal up to arrival order: float rounding of affinity sums and the order of the session list."""
    assert (got.r, got.c, got.p, got.g, sorted(got.s), got.e) == (want.r, want.c, want.p, want.g, sorted(want.s),
                                                                   want.e), note
    ms = to_epoch_ms(now)
    assert got.affinities_at(ms, half_life_s) == pytest.approx(want.affinities_at(ms, half_life_s), rel=1e-9), note


def test_two_threads_with_own_clients_converge_to_one_worker(
        opener: Opener, catalog: Catalog, rng: random.Random, seed_note: str) -> None:
    """Two workers fold interleaved small batches of one shopper's two sessions at the same time (on Redis each
    with its own connection pool). Caps are raised so that no weak affinity key is pruned: which keys a cut
    keeps depends on arrival order, by design (``State.settle``)."""
    cfg = FeatureConfig(max_affinities=10_000, max_user_affinities=10_000)
    events = events_for(catalog, rng, 400, sessions=("s1", "s2"))
    chunks = [events[i:i + 5] for i in range(0, 400, 5)]
    single = SessionFeatures(opener(), lambda: catalog.snapshot, cfg)
    for chunk in chunks:
        single.update(chunk)
    want = {k: State.decode(v) for k, v in dump(single.online, KEYS).items()}
    single.online.delete_many(list(KEYS))
    workers = [SessionFeatures(opener(), lambda: catalog.snapshot, cfg) for _ in range(2)]
    start = threading.Barrier(2)

    def run(n: int) -> None:
        start.wait()
        for chunk in chunks[n::2]:
            workers[n].update(chunk)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = {k: State.decode(v) for k, v in dump(workers[0].online, KEYS).items()}
    assert got.keys() == want.keys() == set(KEYS)
    end = max(e.timestamp for e in events)
    for key, state in got.items():
        half_life = cfg.half_life_s if key.startswith("sess:") else cfg.user_half_life_s
        assert_same_state(state, want[key], half_life, end, f"{key}: {seed_note}")
