"""Per-key token-bucket rate limits: 429 in the error envelope with Retry-After once a key's burst is spent,
other keys unaffected, refilled with time; shared through real Redis by two apps (two workers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from shopkeep.config import Config
from shopkeep.pipeline.engine import Engine
from shopkeep.serving.app import create_app
from shopkeep.serving.auth import MemoryBuckets, RedisBuckets, hash_entries
from shopkeep.storage import open_online_state, open_store

KEYS = {"a": "rate-key-a-0123456789", "b": "rate-key-b-0123456789"}
#: Hashed once: every worker of a deployment reads the same entries, so a key has one bucket name everywhere.
ENTRIES = hash_entries(",".join(f"{k}:read" for k in KEYS.values()))


def _app(engine: Engine, **serving: object) -> TestClient:
    config = Config(serving=replace(Config().serving, api_keys=ENTRIES, **serving))  # type: ignore[arg-type]
    return TestClient(create_app(config, engine, auth=True))


@pytest.fixture()
def engine() -> Iterator[Engine]:
    eng = Engine(open_store("memory://"), open_online_state("memory://"), Config())
    yield eng
    eng.close()


def _get(client: TestClient, key: str) -> tuple[int, dict[str, str], dict]:  # type: ignore[type-arg]
    r = client.get("/v1/policies", headers={"Authorization": f"Bearer {key}"})
    return r.status_code, dict(r.headers), r.json()


def test_burst_then_429_with_retry_after_per_key(engine: Engine) -> None:
    with _app(engine, rate_limit_per_s=2.0, rate_limit_burst=3, rate_limit_uri="memory://") as client:
        codes = [_get(client, KEYS["a"])[0] for _ in range(3)]
        status, headers, body = _get(client, KEYS["a"])
        assert codes == [200, 200, 200] and status == 429
        assert body["error"]["code"] == "rate_limited" and 0 < body["error"]["details"]["retry_after_s"] <= 0.5
        assert headers["retry-after"] == "1" and "rate-key" not in str(body)  # the key id, never the key
        assert _get(client, KEYS["b"])[0] == 200  # another key has its own bucket
        time.sleep(0.6)  # 2 tokens a second: one is back
        assert _get(client, KEYS["a"])[0] == 200
        assert client.get("/healthz").status_code in (200, 503)  # public routes are not limited


def test_memory_bucket_refill_and_cap() -> None:
    bucket = MemoryBuckets(rate=10.0, burst=2)
    assert [bucket.take("k") for _ in range(2)] == [0.0, 0.0]
    wait = bucket.take("k")
    assert 0.0 < wait <= 0.1
    time.sleep(0.25)  # would be 2.5 tokens, capped at the burst of 2
    assert [bucket.take("k") == 0.0 for _ in range(3)] == [True, True, False]


def test_redis_buckets_are_shared_by_two_workers(redis_uri: str, engine: Engine) -> None:
    import redis

    redis.Redis.from_url(redis_uri).flushdb()
    settings = {"rate_limit_per_s": 0.01, "rate_limit_burst": 4, "rate_limit_uri": redis_uri}  # ~no refill meanwhile
    with _app(engine, **settings) as one, _app(engine, **settings) as two:
        assert isinstance(one.app.state.rate_limiter, RedisBuckets)  # type: ignore[attr-defined]
        codes = [_get(client, KEYS["a"])[0] for client in (one, two, one, two, one, two)]
        assert codes == [200, 200, 200, 200, 429, 429]  # one budget of 4 across both "workers"
        status, headers, body = _get(two, KEYS["a"])
        assert status == 429 and int(headers["retry-after"]) > 60 and body["error"]["code"] == "rate_limited"
        assert _get(one, KEYS["b"])[0] == 200
    keys = redis.Redis.from_url(redis_uri).keys("shopkeep:ratelimit:*")
    assert len(keys) == 2 and all(b"rate-key" not in k for k in keys)  # named by hash prefix only
