"""Event retention (``events.retention_days``): :func:`purge_expired` deletes events older than the
time-to-live from a real SQLite file and a real PostgreSQL schema and says how many; the Ingestor refuses
events older than the retention period; the purged event text is gone from the SQLite file's bytes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import drop_schema, store_uri

from shopkeep.config import Config, EventsConfig, load_config
from shopkeep.errors import ConfigError, StorageError, ValidationError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.pipeline.erasure import purge_expired
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.storage import open_store
from shopkeep.storage.base import Store

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    uri, schema = store_uri(request.param, request, tmp_path)
    opened = open_store(uri)
    try:
        yield opened
    finally:
        opened.close()
        drop_schema(request, schema)


def wire(i: int, age_days: float, anon: str = "ret-anon") -> dict[str, object]:
    at = (NOW - timedelta(days=age_days)).isoformat().replace("+00:00", "Z")
    return {"event_id": f"ret-{i}", "type": "view", "anonymous_id": anon, "item_id": f"sku-{i}", "timestamp": at}


def stored_ids(store: Store) -> set[str]:
    return {rec.key for rec in store.read(EVENTS_LOG, k=10_000)}


def test_purge_deletes_exactly_the_expired_events_and_counts_them(durable: Store) -> None:
    ages = [400, 200, 91, 89.5, 30, 1, 0]
    Ingestor(durable).ingest_batch([wire(i, a) for i, a in enumerate(ages)])
    report = purge_expired(durable, 90, now=NOW)
    assert report.deleted == {EVENTS_LOG: 3, "event_sessions": 0} and report.total == 3
    assert report.cutoff == NOW - timedelta(days=90)
    assert stored_ids(durable) == {"ret-3", "ret-4", "ret-5", "ret-6"}
    assert purge_expired(durable, 90, now=NOW).total == 0  # nothing left to purge
    assert purge_expired(durable, 0.5, now=NOW).deleted[EVENTS_LOG] == 3  # ages 89.5, 30, 1
    assert stored_ids(durable) == {"ret-6"}
    assert durable.read(EVENTS_LOG, after_seq=0, k=10)[0].key == "ret-6"  # reads skip the purged positions


def test_ingest_refuses_events_older_than_the_retention(durable: Store) -> None:
    ingestor = Ingestor(durable, Config(events=EventsConfig(retention_days=30)))
    report = ingestor.ingest_batch([wire(1, 45), wire(2, 10), wire(3, 31)])
    assert (report.accepted, report.rejected) == (1, 2)
    assert {e.line for e in report.errors} == {1, 3}
    assert all(e.field == "timestamp" and "retention" in e.reason for e in report.errors)
    assert stored_ids(durable) == {"ret-2"}


def test_purged_event_is_gone_from_the_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "ret.db"
    store = open_store(f"sqlite:///{db}")
    try:
        Ingestor(store).ingest_batch([wire(1, 120, anon="ret-secret-old-anon"), wire(2, 1, anon="ret-fresh-anon")])
        report = purge_expired(store, 90, now=NOW)
        assert report.deleted == {EVENTS_LOG: 1, "event_sessions": 1}  # the old shopper's session state too
        assert store.get_many("event_sessions", ["a:ret-fresh-anon"])
    finally:
        store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("ret.db"))
    assert b"ret-secret-old-anon" not in raw
    assert b"ret-fresh-anon" in raw


def test_bad_retention_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        purge_expired(open_store("memory://"), 0)
    assert exc.value.field == "retention_days"
    with pytest.raises(ValidationError):
        purge_expired(open_store("memory://"), 5, now=datetime(2026, 1, 1))  # naive time
    with pytest.raises(StorageError):  # memory:// keeps positions contiguous: no purge there
        purge_expired(open_store("memory://"), 5)
    with pytest.raises(ConfigError):
        load_config(env={"SHOPKEEP_EVENTS__RETENTION_DAYS": "-1"})
    assert load_config(env={"SHOPKEEP_EVENTS__RETENTION_DAYS": "30"}).events.retention_days == 30.0
