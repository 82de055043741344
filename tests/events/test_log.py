"""The served-slate log, the impression join, canonical payloads and the ``ingest events`` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopkeep.cli.main import main
from shopkeep.errors import ValidationError
from shopkeep.events.log import (
    SLATES_LOG,
    SlateRecord,
    append_slates,
    event_payload,
    event_record,
    join_impressions,
    read_slates,
)
from shopkeep.events.schema import parse_event
from shopkeep.storage import open_store

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def slate(trace_id: str = "t-1", **kw: object) -> SlateRecord:
    fields: dict[str, object] = dict(
        trace_id=trace_id, surface="home", user_id=None, anonymous_id="a-1", session_id="a-1:0",
        items=("sku-1", "sku-2", "sku-3"), positions=(0, 1, 2), sources=("als", "popular", "als"),
        propensities=(0.9, 0.5, 0.25), features={"model": "als-v3", "scores": [1.5, 0.7, 0.2]}, ts=T0,
    )
    fields.update(kw)
    return SlateRecord(**fields)  # type: ignore[arg-type]


def event(eid: str, kind: str, item: str, trace: str | None, position: int | None = None) -> object:
    raw = {"event_id": eid, "type": kind, "timestamp": "2026-11-25T12:00:05Z", "anonymous_id": "a-1",
           "item_id": item}
    if trace is not None:
        raw["trace_id"] = trace
    if position is not None:
        raw["position"] = position
    return parse_event(raw)


def test_slates_round_trip_and_are_idempotent(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    assert append_slates(store, [slate("t-1"), slate("t-2")]).inserted == ("t-1", "t-2")
    assert append_slates(store, [slate("t-1")]).duplicates == ("t-1",)
    assert append_slates(store, [slate("t-1", surface="pdp")]).conflicts == ("t-1",)
    assert store.log_count(SLATES_LOG) == 2
    got = read_slates(store, ["t-2", "t-1", "nope"])
    assert got == {"t-1": slate("t-1"), "t-2": slate("t-2")}
    store.close()


@pytest.mark.parametrize(("kw", "field"), [
    ({"positions": (0, 1)}, "positions"), ({"propensities": (0.9, 1.5, 0.1)}, "propensities"),
    ({"ts": datetime(2026, 1, 1)}, "ts"), ({"trace_id": ""}, "trace_id"),
    ({"anonymous_id": None}, "anonymous_id"),
])
def test_slate_validation(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        slate(**kw)
    assert info.value.field == field


def test_join_impressions_to_their_slates() -> None:
    store = open_store("memory://")
    append_slates(store, [slate("t-1")])
    joined = join_impressions(store, [
        event("e1", "impression", "sku-2", "t-1", position=1),
        event("e2", "click", "sku-3", "t-1"),
        event("e3", "impression", "sku-9", "t-1", position=0),   # not in the slate
        event("e4", "click", "sku-1", "t-404"),                  # unknown trace
        event("e5", "view", "sku-1", None),                      # no trace: not joined
    ])
    assert [(j.event.event_id, j.slot, j.propensity) for j in joined] == [
        ("e1", 1, 0.5), ("e2", 2, 0.25), ("e3", None, None), ("e4", None, None)]
    assert joined[0].slate == slate("t-1") and joined[3].slate is None


def test_event_record_uses_the_canonical_payload() -> None:
    a = parse_event({"event_id": "e1", "type": "view", "timestamp": "2026-11-25T13:00:00+01:00",
                     "anonymous_id": "a", "item_id": "i"})
    rec = event_record(a, "a:1")
    assert rec.payload == event_payload(a) == (
        '{"anonymous_id":"a","event_id":"e1","item_id":"i","timestamp":"2026-11-25T12:00:00Z","type":"view"}')
    assert (rec.key, rec.partition, rec.ts_ms) == ("e1", "a:1", int(T0.timestamp() * 1000))


def test_cli_ingest_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    good = {"event_id": "e1", "type": "view", "timestamp": "2026-11-25T12:00:00Z", "anonymous_id": "a",
            "item_id": "i"}
    path.write_text("\n".join([json.dumps(good), "not json", json.dumps({**good, "event_id": "e2",
                                                                         "quantity": True})]) + "\n")
    uri = f"sqlite:///{tmp_path}/cli.db"
    assert main(["ingest", "events", str(path), "--store", uri, "--on-error", "reject"]) == 1
    out = capsys.readouterr().out
    assert "nothing was stored" in out and "line 2: line='not json'" in out and "line 3: quantity=True" in out
    assert main(["ingest", "events", str(path), "--store", uri]) == 1
    assert "stored" in capsys.readouterr().out
    store = open_store(uri)
    assert store.log_count("events") == 1
    store.close()
    path.write_text(json.dumps(good) + "\n")
    assert main(["ingest", "events", str(path), "--store", uri]) == 0
