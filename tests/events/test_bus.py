"""One conformance suite for every EventBus backend: in-process memory, real Redis Streams, real NATS
JetStream (house rule 2). Each test gets its own stream / consumer group and removes it afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from tests.conftest import need, port_open

from shopkeep.errors import ConfigError, ValidationError
from shopkeep.events.bus import BusMessage, EventBus, MemoryBus, open_bus


def _drop(bus: EventBus) -> None:
    from shopkeep.events.bus import RedisStreamBus
    from shopkeep.events.bus_nats import NatsJetStreamBus

    if isinstance(bus, RedisStreamBus):
        bus._client.delete(bus.stream)
    elif isinstance(bus, NatsJetStreamBus):
        bus._run(bus._js.delete_stream(bus.stream))


@pytest.fixture(params=["memory", "redis", "nats"])
def bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    """A fresh bus of each kind (NATS with a 1 s ack wait so redelivery is quick)."""
    name = uuid.uuid4().hex[:12]
    if request.param == "memory":
        opened: EventBus = MemoryBus(f"memory://{name}")
    elif request.param == "redis":
        base = request.getfixturevalue("redis_uri")
        opened = open_bus(f"{base}?stream=t:bus:{name}&group=g-{name}")
    else:
        need(port_open("127.0.0.1", 4222), "NATS is not running on 127.0.0.1:4222", kind="services")
        opened = open_bus(f"nats://127.0.0.1:4222?stream=T_{name}&subject=t.{name}&durable=d{name}&ack_wait_s=1")
    try:
        yield opened
    finally:
        _drop(opened)
        opened.close()


def _drain(bus: EventBus, consumer: str, want: int, timeout_s: float = 10.0) -> list[BusMessage]:
    out: list[BusMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < want and time.monotonic() < deadline:
        out += bus.consume(consumer, k=want - len(out), block_ms=200)
    return out


def test_publish_consume_ack_roundtrip(bus: EventBus) -> None:
    payloads = [f'{{"n": {i}}}'.encode() for i in range(25)] + [b"\x00\xffbinary"]
    ids = bus.publish(payloads)
    assert len(ids) == len(set(ids)) == 26
    got = _drain(bus, "c1", 26)
    assert [m.payload for m in got] == payloads  # order and bytes kept
    assert [m.message_id for m in got] == ids
    assert all(m.deliveries == 1 for m in got)
    assert bus.pending() == 26
    assert bus.ack([m.message_id for m in got[:10]]) == 10
    assert bus.pending() == 16
    assert bus.ack([m.message_id for m in got[10:]]) == 16
    assert bus.pending() == 0
    assert bus.consume("c1", k=10, block_ms=100) == []  # nothing is delivered twice once acked


def test_unacked_messages_go_to_another_consumer(bus: EventBus) -> None:
    bus.publish([b"a", b"b", b"c"])
    first = _drain(bus, "dies", 3)
    assert len(first) == 3
    bus.ack([first[0].message_id])  # the first consumer "dies" holding b and c
    time.sleep(1.3)  # idle longer than the claim threshold / NATS ack wait
    taken = bus.claim_stale("heir", min_idle_ms=1000, k=10)
    if not taken:  # JetStream redelivers by itself through consume
        taken = _drain(bus, "heir", 2, timeout_s=5.0)
    assert sorted(m.payload for m in taken) == [b"b", b"c"]
    assert all(m.deliveries == 2 for m in taken)
    assert bus.ack([m.message_id for m in taken]) == 2
    assert bus.pending() == 0


def test_claim_leaves_messages_that_are_not_idle_long_enough(bus: EventBus) -> None:
    bus.publish([b"x"])
    assert len(_drain(bus, "busy", 1)) == 1
    assert bus.claim_stale("other", min_idle_ms=60_000) == []
    assert bus.pending() == 1


def test_consume_waits_at_most_block_ms(bus: EventBus) -> None:
    start = time.monotonic()
    assert bus.consume("c", k=5, block_ms=300) == []
    assert time.monotonic() - start < 3.0


def test_bad_arguments_raise_clear_errors(bus: EventBus) -> None:
    with pytest.raises(ValidationError, match="k"):
        bus.consume("c", k=0)
    with pytest.raises(ValidationError, match=r"payloads\[1\]"):
        bus.publish([b"ok", b""])


def test_open_bus_refuses_unknown_schemes_and_parameters() -> None:
    with pytest.raises(ConfigError, match="unsupported bus URI"):
        open_bus("kafka://broker:9092")
    with pytest.raises(ConfigError, match="no scheme"):
        open_bus("redis-host")
    with pytest.raises(ConfigError, match="unknown redis bus URI parameter"):
        open_bus("redis://127.0.0.1:6379/15?stream=s&grup=g")
    with pytest.raises(ConfigError, match="maxlen"):
        open_bus("redis://127.0.0.1:6379/15?maxlen=-3")


def test_memory_bus_is_shared_by_name_within_a_process() -> None:
    name = uuid.uuid4().hex
    assert open_bus(f"memory://{name}") is open_bus(f"memory://{name}")
    assert open_bus(f"memory://{name}") is not open_bus(f"memory://{name}x")


def test_redis_stream_entry_without_the_payload_field_becomes_its_fields_as_json(redis_uri: str) -> None:
    import orjson
    import redis

    name = uuid.uuid4().hex[:12]
    bus = open_bus(f"{redis_uri}?stream=t:bus:{name}&group=g")
    client = redis.Redis.from_url(redis_uri)
    try:
        client.xadd(f"t:bus:{name}", {"type": "view", "item_id": "sku1"})  # a foreign writer's flat entry
        (msg,) = _drain(bus, "c", 1)
        assert orjson.loads(msg.payload) == {"type": "view", "item_id": "sku1"}
    finally:
        client.delete(f"t:bus:{name}")
        client.close()
        bus.close()
