"""The shared aggregates: memory and real Redis agree with counts computed directly from the events,
whatever the delivery order and however many redeliveries (exactly once per event_id)."""

from __future__ import annotations

import math
import random
import secrets
from collections import defaultdict
from collections.abc import Iterator

import pytest

from shopkeep.events.bus_aggregates import (
    TREND_REF_MS,
    AggEvent,
    MemoryAggregates,
    RedisAggregates,
    SharedAggregates,
    open_aggregates,
)


@pytest.fixture(params=["memory", "redis"])
def aggregates(request: pytest.FixtureRequest) -> Iterator[SharedAggregates]:
    if request.param == "memory":
        yield MemoryAggregates()
        return
    import redis

    base = request.getfixturevalue("redis_uri")
    prefix = f"t-agg-{secrets.token_hex(4)}:"
    agg = open_aggregates(f"{base}?prefix={prefix}")
    assert isinstance(agg, RedisAggregates)
    try:
        yield agg
    finally:
        agg.close()
        client = redis.Redis.from_url(base)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def _events(rng: random.Random, n: int = 300) -> list[AggEvent]:
    items = [f"sku-{i}" for i in range(15)]
    weights = [1.0, 1.0, 3.0, 5.0, 0.0]
    t0 = TREND_REF_MS + 400 * 86_400_000
    return [AggEvent(f"e{i}", rng.choice(items) if rng.random() > 0.05 else None,
                     f"s{rng.randrange(20)}" if rng.random() > 0.1 else None, rng.choice(weights),
                     t0 + rng.randrange(3 * 86_400_000)) for i in range(n)]


def _expected(events: list[AggEvent]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    total: dict[str, float] = defaultdict(float)
    sessions: dict[str, list[str]] = defaultdict(list)
    cov: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        if e.item_id is None or e.weight <= 0:
            continue
        total[e.item_id] += e.weight
        if e.session_id is not None:
            sessions[e.session_id].append(e.item_id)
    for members in sessions.values():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if a != b:
                    cov[a][b] += 1
                    cov[b][a] += 1
    return total, cov


def test_redelivered_and_reordered_events_count_exactly_once(aggregates: SharedAggregates) -> None:
    rng = random.Random(7)
    events = _events(rng)
    deliveries = events + rng.sample(events, 120)  # at-least-once: 120 redeliveries
    rng.shuffle(deliveries)
    applied = sum(aggregates.apply(deliveries[i:i + 37]) for i in range(0, len(deliveries), 37))
    assert applied == len(events) == aggregates.applied_count()
    assert aggregates.apply(events[:50]) == 0  # a whole batch again: nothing changes
    total, cov = _expected(events)
    got_total = dict(aggregates.popular(100, trending=False))
    assert got_total.keys() == total.keys()
    for item, value in total.items():
        assert got_total[item] == pytest.approx(value)
    got_cov = aggregates.neighbors(sorted(total), 100)
    for item in total:
        assert dict(got_cov[item]) == pytest.approx(dict(cov[item])), item


def test_trend_decays_with_the_half_life(aggregates: SharedAggregates) -> None:
    t = TREND_REF_MS + 10 * 86_400_000
    aggregates.apply([AggEvent("old", "a", None, 1.0, t), AggEvent("new", "b", None, 1.0, t + 72 * 3_600_000)])
    now = t + 72 * 3_600_000
    trend = dict(aggregates.popular(2, now_ms=now))
    assert trend["b"] == pytest.approx(1.0, rel=1e-6)
    assert trend["a"] == pytest.approx(0.5, rel=1e-6)  # one half-life older
    assert list(trend) == ["b", "a"]


def test_memory_and_redis_agree_on_trend(redis_uri: str) -> None:
    events = _events(random.Random(3), 120)
    mem = MemoryAggregates()
    prefix = f"t-agg-{secrets.token_hex(4)}:"
    red = open_aggregates(f"{redis_uri}?prefix={prefix}")
    try:
        mem.apply(events)
        red.apply(events)
        now = TREND_REF_MS + 405 * 86_400_000
        a, b = dict(mem.popular(50, now_ms=now)), dict(red.popular(50, now_ms=now))
        assert a.keys() == b.keys()
        assert all(math.isclose(a[k], b[k], rel_tol=1e-9) for k in a)
    finally:
        import redis

        client = redis.Redis.from_url(redis_uri)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
        red.close()
