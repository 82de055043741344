"""``shopkeep purge`` on a real SQLite file and a real PostgreSQL schema: ``--dry-run`` counts exactly what
the purge then deletes and deletes nothing; the configured TTL applies without ``--older-than``; bad ages
and a TTL of 0 are refused with the field and value named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import drop_schema, store_uri

from shopkeep.cli.main import main
from shopkeep.cli.purge import parse_age
from shopkeep.errors import ValidationError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.pipeline.ingest import Ingestor
from shopkeep.storage import open_store

NOW = datetime.now(UTC).replace(microsecond=0)
AGES = [400, 200, 91, 89, 30, 1, 0]  # days; the shopper "old" has only the first two


def wire(i: int, age_days: float) -> dict[str, object]:
    at = (NOW - timedelta(days=age_days)).isoformat().replace("+00:00", "Z")
    anon = "purge-old" if age_days >= 200 else "purge-fresh"
    return {"event_id": f"p-{i}", "type": "view", "anonymous_id": anon, "item_id": f"sku-{i}", "timestamp": at}


@pytest.fixture(params=["sqlite", "postgresql"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store of each durable kind holding the events of ``AGES``."""
    found, schema = store_uri(request.param, request, tmp_path)
    store = open_store(found)
    try:
        Ingestor(store).ingest_batch([wire(i, a) for i, a in enumerate(AGES)])
    finally:
        store.close()
    yield found
    drop_schema(request, schema)


def stored(uri: str) -> set[str]:
    store = open_store(uri)
    try:
        return {r.key for r in store.read(EVENTS_LOG, k=100)}
    finally:
        store.close()


def purge(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["purge", *args, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_dry_run_counts_what_the_purge_deletes(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    dry = purge(capsys, "--store", uri, "--older-than", "90", "--dry-run")
    assert dry["dry_run"] is True
    assert dry["counts"] == {EVENTS_LOG: 3, "event_sessions": 1}  # 400, 200, 91 days; "old" has nothing left
    assert stored(uri) == {f"p-{i}" for i in range(7)}  # nothing deleted
    done = purge(capsys, "--store", uri, "--older-than", "90d")
    assert done["dry_run"] is False and done["counts"] == dry["counts"] and done["total"] == 4
    assert stored(uri) == {"p-3", "p-4", "p-5", "p-6"}
    again = purge(capsys, "--store", uri, "--older-than", "2160h", "--dry-run")  # 90 days in hours
    assert again["counts"] == {EVENTS_LOG: 0, "event_sessions": 0}


def test_configured_ttl_applies_and_text_output_names_each_table(
    uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPKEEP_EVENTS__RETENTION_DAYS", "20")
    assert main(["purge", "--store", uri]) == 0
    out = capsys.readouterr().out
    assert "older than 20 days" in out and f"{EVENTS_LOG}: 5" in out and "event_sessions: 1" in out
    assert stored(uri) == {"p-5", "p-6"}


def test_no_ttl_and_bad_ages_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOPKEEP_EVENTS__RETENTION_DAYS", raising=False)
    db = f"sqlite:///{tmp_path}/empty.db"
    assert main(["purge", "--store", db]) == 2
    assert "events.retention_days" in capsys.readouterr().err
    assert main(["purge", "--store", db, "--older-than", "soon"]) == 2
    err = capsys.readouterr().err
    assert "--older-than" in err and "soon" in err
    for bad in ("0", "-3", "inf", "nan", "12x"):
        with pytest.raises(ValidationError, match="older-than"):
            parse_age(bad)
    assert parse_age(" 1.5D ") == 1.5
