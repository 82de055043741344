"""Real NATS JetStream: events another system publishes to a subject are stored exactly once even when
the worker is SIGKILLed holding unacked messages (JetStream redelivers them to the next worker after
``ack_wait_s``); poison messages are recorded and acked."""

from __future__ import annotations

import secrets
from pathlib import Path

import orjson
from tests.conftest import need, port_open
from tests.integration.test_bus_redis import POISON, kill_mid_batch, run_to_end, wire_events, worker_cmd

from shopkeep.events.bus import open_bus
from shopkeep.events.bus_nats import NatsJetStreamBus
from shopkeep.pipeline.worker import POISON_COLLECTION
from shopkeep.storage import open_store


def test_jetstream_source_is_stored_exactly_once_across_a_sigkill(tmp_path: Path) -> None:
    need(port_open("127.0.0.1", 4222), "NATS is not running on 127.0.0.1:4222", kind="services")
    name = secrets.token_hex(5)
    source = f"nats://127.0.0.1:4222?stream=T_SRC_{name}&subject=t.src.{name}&durable=w{name}&ack_wait_s=2"
    bus = open_bus(source)  # creates the stream and the durable consumer
    assert isinstance(bus, NatsJetStreamBus)
    n = 2000
    payloads = [orjson.dumps(e) for e in wire_events(n, "js")]
    payloads[300:300] = POISON
    for i in range(0, len(payloads), 250):
        bus.publish(payloads[i:i + 250])
    store_uri = f"sqlite:///{tmp_path}/store.db"
    common = ["--source", source, "--store", store_uri, "--online", "memory://", "--batch", "100"]
    try:
        left = kill_mid_batch(worker_cmd(*common, "--consumer", "doomed"), bus.pending, tmp_path / "a.log")
        assert left > 0
        # idle-exit longer than ack_wait_s, so the dead worker's messages come back before it stops
        run_to_end(worker_cmd(*common, "--consumer", "heir", "--idle-exit", "5"), tmp_path / "b.log")
        assert bus.pending() == 0
        info = bus._run(bus._js.consumer_info(bus.stream, bus.durable))
        assert info.num_pending == 0  # nothing left undelivered either
        store = open_store(store_uri)
        try:
            assert store.log_count("events") == n
            assert {r.key for r in store.read("events", k=n + 10)} == {f"js-{i}" for i in range(n)}
            poison = [doc for _, doc in store.scan(POISON_COLLECTION, k=100)]
            assert len(poison) == 3 and all(doc["error"] for doc in poison)
        finally:
            store.close()
    finally:
        bus._run(bus._js.delete_stream(bus.stream))
        bus.close()
