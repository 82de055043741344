"""``shopkeep worker``: consume an event bus at least once and apply what arrives idempotently.

Without ``--source`` it consumes shopkeep's own bus (``bus.uri``, where ``shopkeep serve`` publishes
accepted events) and folds the events into the shared aggregates beside the online state (trending
and all-time popularity, co-visitation). With ``--source redis-stream://host:port/db?stream=S&group=G``
or ``--source nats://host:port?stream=S&subject=X&durable=D`` it ingests the events another system
writes there into the store (validated, deduplicated by event_id; invalid ones are recorded in the
``bus_poison`` collection and acked). Run as many workers as you like: they share the consumer group
(or durable consumer), and a worker that dies leaves its unacked messages to the others.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
import time
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``worker`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("worker", help="consume the event bus (aggregates) or an event source")
    p.add_argument("--source", help="ingest another system's stream: redis-stream://... or nats://... (default: "
                                    "aggregate shopkeep's own bus, bus.uri)")
    p.add_argument("--bus", help="shopkeep's bus URI (default: bus.uri of the config)")
    p.add_argument("--store", help="storage URI (default: storage.uri of the config)")
    p.add_argument("--online", help="online state URI; the aggregates live beside it (default: storage.online_uri)")
    p.add_argument("--consumer", help="consumer name within the group (default: HOST-PID)")
    p.add_argument("--batch", type=int, default=500, help="messages per step")
    p.add_argument("--claim-idle-ms", type=int, default=30_000,
                   help="take over another consumer's pending messages after they were idle this long")
    p.add_argument("--max-deliveries", type=int, default=10, help="a message delivered more often is poison")
    p.add_argument("--max-messages", type=int, help="stop after receiving this many messages")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without a message")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Consume until SIGINT/SIGTERM (or the --max-messages / --idle-exit limits); print totals."""
    from shopkeep.config import load_config
    from shopkeep.errors import ValidationError
    from shopkeep.events.bus import open_bus
    from shopkeep.pipeline.worker import BusWorker

    config = load_config(args.config)
    online = args.online or config.storage.online_uri
    store_uri = args.store or config.storage.uri
    bus_uri = args.bus or config.bus.uri
    if args.source is None and not bus_uri:
        raise ValidationError("bus.uri", bus_uri, "no bus to consume: set [bus] uri in the config, pass --bus, "
                              "or --source for another system's stream")
    consumer = args.consumer or f"{socket.gethostname()}-{os.getpid()}"
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    closers: list[Any] = []
    try:
        applier, poison_store, source = _applier(args, config, online, store_uri, bus_uri, closers)
        bus = open_bus(source)
        closers.append(bus)
        worker = BusWorker(bus, applier, consumer=consumer, source=bus.uri, poison_store=poison_store, k=args.batch,
                           claim_idle_ms=args.claim_idle_ms, max_deliveries=args.max_deliveries)
        print(f"shopkeep worker {consumer}: {'ingesting' if args.source else 'aggregating'} {bus.uri}", flush=True)
        reporter = threading.Thread(target=_report, args=(worker, stop), daemon=True)
        reporter.start()
        totals = worker.run(stop, max_messages=args.max_messages, idle_exit_s=args.idle_exit)
        stop.set()
        print(f"received {totals.received}, applied {totals.applied}, poison {totals.poison}, "
              f"errors {totals.errors}", flush=True)
    finally:
        for closer in reversed(closers):
            closer.close()
    return 0


def _applier(args: argparse.Namespace, config: Any, online: str, store_uri: str, bus_uri: str,
             closers: list[Any]) -> tuple[Any, Any, str]:
    """The applier, the store for poison records, and the URI to consume."""
    from shopkeep.events.bus import open_bus
    from shopkeep.events.bus_aggregates import open_aggregates
    from shopkeep.pipeline.engine import Engine
    from shopkeep.pipeline.worker import AggregateApplier, IngestApplier, attach_publisher
    from shopkeep.storage import open_store

    if args.source is None:
        store = open_store(store_uri)
        closers.append(store)
        aggregates = open_aggregates(online)
        closers.append(aggregates)
        return AggregateApplier(aggregates), store, bus_uri
    from dataclasses import replace

    storage = replace(config.storage, uri=store_uri, online_uri=online)
    engine = Engine.open(replace(config, storage=storage), online_uri=online, log_slates=False)
    closers.append(engine)
    if bus_uri:
        publish_to = open_bus(bus_uri)
        closers.append(publish_to)
        attach_publisher(engine, publish_to)
    return IngestApplier(engine), engine.store, args.source


def _report(worker: Any, stop: threading.Event, every_s: float = 10.0) -> None:
    """A progress line every ``every_s`` while messages flow."""
    last = 0
    while not stop.wait(every_s):
        t = worker.totals
        if t.received != last:
            rate = t.received / max(time.monotonic() - t.started, 1e-9)
            print(f"  received {t.received} ({rate:.0f}/s), applied {t.applied}, poison {t.poison}, "
                  f"errors {t.errors}", flush=True)
            last = t.received
