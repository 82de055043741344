"""The event write path against real stores (memory, a SQLite file, PostgreSQL with a schema per test)."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopkeep.config import Config, EventsConfig
from shopkeep.errors import ConflictError, ValidationError
from shopkeep.events.log import EVENTS_LOG, read_partition
from shopkeep.pipeline import Ingestor, IngestReport
from shopkeep.storage import Store, open_store

Opener = Callable[[], Store]
MIN = 60_000


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (again) one store of the parametrized kind; closes everything and drops the schema after."""
    yield from _opener(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Like ``opener``, for the backends that keep data across close/reopen."""
    yield from _opener(request, tmp_path)


def _opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[Store] = []
    schema = f"t_{uuid.uuid4().hex[:16]}"
    shared = open_store("memory://") if request.param == "memory" else None
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path}/events.db"
    elif request.param == "postgresql":
        base = request.getfixturevalue("postgres_uri")
        uri = f"{base}{'&' if '?' in base else '?'}schema={schema}"

    def make() -> Store:
        store = shared if shared is not None else open_store(uri)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if request.param == "postgresql":
        import psycopg

        with psycopg.connect(request.getfixturevalue("postgres_uri"), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def ts(minutes: float) -> str:
    total = int(minutes * 60)
    return f"2026-11-20T{10 + total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}Z"


def view(eid: str, minutes: float, anon: str = "a-1", item: str = "i-1", **extra: Any) -> dict[str, Any]:
    return {"event_id": eid, "type": "view", "timestamp": ts(minutes), "anonymous_id": anon, "item_id": item, **extra}


def login(eid: str, minutes: float, anon: str, user: str) -> dict[str, Any]:
    return {"event_id": eid, "type": "login", "timestamp": ts(minutes), "anonymous_id": anon, "user_id": user}


def stored_payloads(store: Store) -> dict[str, str]:
    out, after = {}, 0
    while page := store.read(EVENTS_LOG, after_seq=after, k=1000):
        out.update((r.key, r.payload) for r in page)
        after = page[-1].seq
    return out


def test_accepts_dedupes_and_reports(opener: Opener) -> None:
    ing = Ingestor(opener())
    batch = [view("e1", 0), view("e2", 5), view("e1", 0), {"event_id": "e3", "type": "view"}]
    report = ing.ingest_batch(batch)
    assert (report.accepted, report.duplicates, report.conflicts, report.rejected) == (2, 1, 0, 1)
    assert report.errors[0].line == 4 and report.errors[0].field == "timestamp"
    assert ing.store.log_count(EVENTS_LOG) == 2


def test_replay_is_idempotent(opener: Opener) -> None:
    ing = Ingestor(opener())
    batch = [view("e1", 0), view("e2", 50), view("e3", 25), login("e4", 60, "a-1", "u-1")]
    first = ing.ingest_batch(batch)
    before = stored_payloads(ing.store)
    again = ing.ingest_batch(list(reversed(batch)))
    assert first.accepted == 4 and (again.accepted, again.duplicates, again.conflicts) == (0, 4, 0)
    assert stored_payloads(ing.store) == before
    start_ms = int(ing.events_of_user("nobody") == [])  # reads of an unknown user are empty
    assert start_ms == 1
    sessions = ing.sessions_of("a-1")
    assert len(sessions) == 1 and [e.event_id for e in ing.events_of_session(sessions[0])] == ["e1", "e3", "e2", "e4"]


def test_conflict_is_refused_and_the_stored_payload_kept(opener: Opener) -> None:
    ing = Ingestor(opener())
    ing.ingest_batch([view("e1", 0, item="lipstick")])
    before = stored_payloads(ing.store)
    report = ing.ingest_batch([view("e1", 0, item="mascara"), view("e2", 1)])
    assert (report.accepted, report.conflicts) == (1, 1)
    (err,) = report.conflict_errors
    assert isinstance(err, ConflictError) and err.details["value"] == "e1" and err.details["line"] == 1
    assert stored_payloads(ing.store)["e1"] == before["e1"]
    assert [e.item_id for e in ing.events_of_session(ing.sessions_of("a-1")[0])] == ["lipstick", "i-1"]


def test_conflict_inside_a_batch(opener: Opener) -> None:
    ing = Ingestor(opener())
    report = ing.ingest_batch([view("e1", 0, item="x"), view("e1", 0, item="y")])
    assert (report.accepted, report.conflicts) == (1, 1)
    assert "line 1" in report.conflict_errors[0].message
    assert json.loads(stored_payloads(ing.store)["e1"])["item_id"] == "x"


def test_a_refused_conflict_leaves_no_trace_in_sessions(opener: Opener) -> None:
    ing = Ingestor(opener())
    ing.ingest_batch([view("e1", 0)])
    # e1 again with a later time would stretch the session to 25 min if its state were kept
    ing.ingest_batch([{**view("e1", 25), "item_id": "other"}])
    ing.ingest_batch([view("e2", 50)])
    assert len(ing.sessions_of("a-1")) == 2


def test_late_and_out_of_order_sessions(opener: Opener) -> None:
    ing = Ingestor(opener())
    ing.ingest_batch([view("e1", 0), view("e2", 10)])
    ing.ingest_batch([view("e3", 100)])  # new session: 90 min later
    assert len(ing.sessions_of("a-1")) == 2
    ing.ingest_batch([view("e4", 5)])  # late, inside the first session
    first, _second = ing.sessions_of("a-1")
    assert [e.event_id for e in ing.events_of_session(first)] == ["e1", "e4", "e2"]
    assert all(e.session_id == first for e in ing.events_of_session(first))
    ing.ingest_batch([view("e5", 40), view("e6", 70)])  # late events bridging both sessions
    (merged,) = ing.sessions_of("a-1")
    assert [e.event_id for e in ing.events_of_session(merged)] == ["e1", "e4", "e2", "e5", "e6", "e3"]


def test_client_session_ids_are_honoured(opener: Opener) -> None:
    ing = Ingestor(opener())
    ing.ingest_batch([view("e1", 0, session_id="s-9"), view("e2", 300, session_id="s-9")])
    assert [e.event_id for e in ing.events_of_session("s-9")] == ["e1", "e2"]
    assert [r.key for r in read_partition(ing.store, EVENTS_LOG, "s-9")] == ["e1", "e2"]


def test_login_stitches_earlier_anonymous_events(opener: Opener) -> None:
    ing = Ingestor(opener())
    ing.ingest_batch([view("e1", 0, anon="a-7"), view("e2", 3, anon="a-8")])
    assert ing.events_of_user("u-7") == []
    report = ing.ingest_batch([login("e3", 5, "a-7", "u-7"), view("e4", 6, anon="a-7", user_id="u-7")])
    assert report.logins_linked == 1
    assert [e.event_id for e in ing.events_of_user("u-7")] == ["e1", "e3", "e4"]
    ing.ingest_batch([view("e5", 1, anon="x-1", user_id="u-7")])  # signed in elsewhere, no login event
    assert [e.event_id for e in ing.events_of_user("u-7")] == ["e1", "e5", "e3", "e4"]
    ing.graph.unlink("a-7", "u-7")
    # events that carry user_id u-7 stay hers; the purely anonymous e1 goes with the link
    assert [e.event_id for e in ing.events_of_user("u-7")] == ["e5", "e3", "e4"]


def test_user_only_events_are_sessionized_by_user(opener: Opener) -> None:
    ing = Ingestor(opener())
    ing.ingest_batch([{"event_id": "e1", "type": "search", "timestamp": ts(0), "user_id": "u-1", "query": "serum"}])
    events = ing.events_of_user("u-1")
    assert [e.session_id for e in events] == ["u-1:" + str(int(events[0].timestamp.timestamp() * 1000))]


def test_state_survives_a_reopened_store(durable: Opener) -> None:
    ing = Ingestor(durable())
    ing.ingest_batch([view("e1", 0), login("e2", 1, "a-1", "u-1")])
    ing.store.close()
    ing = Ingestor(durable())
    report = ing.ingest_batch([view("e3", 20), view("e1", 0)])
    assert (report.accepted, report.duplicates) == (1, 1)
    (session,) = ing.sessions_of("a-1")
    assert [e.event_id for e in ing.events_of_session(session)] == ["e1", "e2", "e3"]
    assert [e.event_id for e in ing.events_of_user("u-1")] == ["e1", "e2", "e3"]


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines) + b"\n")
    return path


def test_jsonl_skip_mode_stores_the_good_lines(opener: Opener, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [view("e1", 0), b"{oops", view("e2", 1), b"\xff\xfe",
                                               {**view("e3", 2), "quantity": -1}, view("e1", 0)])
    config = Config(events=EventsConfig(batch_size=2))
    report = Ingestor(opener(), config).ingest_jsonl(path, progress=False)
    assert (report.accepted, report.duplicates, report.rejected) == (2, 1, 3)
    assert [e.line for e in report.errors] == [2, 4, 5]
    assert report.errors[2].field == "quantity" and report.errors[2].value == -1


def test_jsonl_reject_mode_stores_nothing(opener: Opener, tmp_path: Path) -> None:
    store = opener()
    lines = [view(f"e{i}", i) for i in range(10)]
    path = write_jsonl(tmp_path / "e.jsonl", [*lines, {**view("e3", 3), "item_id": "changed"}])
    config = Config(events=EventsConfig(batch_size=3))
    report = Ingestor(store, config).ingest_jsonl(path, on_error="reject", progress=False)
    assert not report.stored and report.accepted == 0 and report.rejected == 1
    assert "line 11" in report.conflict_errors[0].message
    assert store.log_count(EVENTS_LOG) == 0
    ok = Ingestor(store, config).ingest_jsonl(write_jsonl(tmp_path / "ok.jsonl", lines), on_error="reject",
                                              progress=False)
    assert ok.stored and ok.accepted == 10 and store.log_count(EVENTS_LOG) == 10


def test_jsonl_huge_line_is_reported_not_loaded(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [view("e1", 0), b'{"x": "' + b"y" * 5000 + b'"}', view("e2", 1)])
    config = Config(events=EventsConfig(max_line_bytes=1000))
    report = Ingestor(open_store("memory://"), config).ingest_jsonl(path, progress=False)
    assert report.accepted == 2 and report.errors[0].line == 2 and "longer than 1000" in report.errors[0].reason


def test_jsonl_progress_callback(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [view(f"e{i}", i) for i in range(7)])
    seen: list[tuple[int, int]] = []
    Ingestor(open_store("memory://"), Config(events=EventsConfig(batch_size=2))).ingest_jsonl(
        path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (path.stat().st_size, path.stat().st_size) and len(seen) >= 3


def test_bad_arguments() -> None:
    ing = Ingestor(open_store("memory://"))
    with pytest.raises(ValidationError):
        ing.ingest_jsonl("/nonexistent/file.jsonl")
    with pytest.raises(ValidationError):
        ing.ingest_jsonl(__file__, on_error="ignore")  # type: ignore[arg-type]


def test_report_adds_up() -> None:
    total = IngestReport(accepted=1, rejected=2) + IngestReport(duplicates=3, stored=False)
    assert (total.seen, total.stored) == (6, False)


EVENTS = [view(f"e{i}", m, anon=a) for i, (m, a) in enumerate(
    [(0, "a"), (10, "a"), (45, "a"), (80, "a"), (20, "a"), (5, "b"), (200, "b"), (170, "b"), (60, "a"), (239, "a")])]
EVENTS.append(login("e-login", 100, "b", "u"))


def snapshot(ing: Ingestor) -> tuple[dict[str, str], dict[str, list[str]]]:
    sessions = {sid: [e.event_id for e in ing.events_of_session(sid)]
                for anon in ("a", "b") for sid in ing.sessions_of(anon)}
    return stored_payloads(ing.store), sessions


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(EVENTS))), cuts=st.lists(st.integers(1, len(EVENTS) - 1), max_size=4))
def test_any_arrival_order_gives_the_same_log_and_sessions(order: list[int], cuts: list[int]) -> None:
    reference = Ingestor(open_store("memory://"))
    reference.ingest_batch(EVENTS)
    expected = snapshot(reference)
    ing = Ingestor(open_store("memory://"))
    shuffled = [EVENTS[i] for i in order]
    bounds = [0, *sorted(set(cuts)), len(shuffled)]
    for lo, hi in itertools.pairwise(bounds):  # arbitrary batch boundaries, too
        ing.ingest_batch(shuffled[lo:hi])
    assert snapshot(ing) == expected
    assert [e.event_id for e in ing.events_of_user("u")] == ["e5", "e-login", "e7", "e6"]


def test_permutation_on_sqlite(tmp_path: Path) -> None:
    rng = random.Random(3)
    results = []
    for run in range(3):
        events = EVENTS[:]
        rng.shuffle(events)
        store = open_store(f"sqlite:///{tmp_path}/p{run}.db")
        ing = Ingestor(store)
        for ev in events:
            ing.ingest_batch([ev])
        results.append(snapshot(ing))
        store.close()
    assert results[0] == results[1] == results[2]


def test_a_crash_before_the_state_write_is_repaired(durable: Opener) -> None:
    first = Ingestor(durable())
    first.sessionizer.flush_every = 10**9
    crashed = first.sessionizer.deferred()
    crashed.__enter__()  # a bulk load that dies before writing its session state
    first.ingest_batch([view("e1", 0), view("e2", 10)])
    first.ingest_batch([view("e3", 100)])
    assert first.store.get_many("event_sessions", ["a:a-1"]) == {}
    first.sessionizer._cache = None  # the process dies: its memory is gone, nothing more is written
    first.store.close()
    again = Ingestor(durable())
    report = again.ingest_batch([view("e2", 10), view("e4", 20)])  # replays keep their label
    assert (report.accepted, report.duplicates) == (1, 1)
    assert [[e.event_id for e in again.events_of_session(s)] for s in again.sessions_of("a-1")] == [
        ["e1", "e2", "e4"], ["e3"]]
    assert again.sessionizer.recover() == 0  # once per instance, and the marker moved on


def test_parallel_parsing_gives_the_same_result(tmp_path: Path) -> None:
    lines: list[Any] = [view(f"e{i}", i % 300, anon=f"a-{i % 7}") for i in range(400)]
    lines[50] = b"{broken"
    lines[60] = {**view("e-dup", 1), "item_id": "x"}
    lines[70] = {**view("e-dup", 1), "item_id": "y"}
    path = write_jsonl(tmp_path / "e.jsonl", lines)
    config = Config(events=EventsConfig(batch_size=64))
    results = []
    for workers in (0, 1):
        ing = Ingestor(open_store("memory://"), config)
        ing.parse_workers, ing.parallel_min_bytes = workers, 0
        report = ing.ingest_jsonl(path, progress=False)
        results.append(((report.accepted, report.rejected, report.conflicts), stored_payloads(ing.store),
                        [s for a in range(7) for s in ing.sessions_of(f"a-{a}")],
                        [str(e) for e in report.errors], [str(e) for e in report.conflict_errors]))
    assert results[0] == results[1]
    assert results[0][0] == (398, 1, 1) and len(results[0][3]) == 1
    assert results[0][3][0].startswith("line 51: line='{broken': is not valid JSON: ")


def test_report_names_each_events_session(opener: Opener) -> None:
    ing = Ingestor(opener())
    first = ing.ingest_batch([view("e1", 0), view("e2", 100), view("e3", 5, session_id="s-1")])
    s1, s2 = ing.sessions_of("a-1")
    assert first.sessions == {"e1": s1, "e2": s2, "e3": "s-1"}
    bridged = ing.ingest_batch([view("e4", 25), view("e5", 50), view("e6", 75), view("e1", 0),
                                {**view("e2", 100), "item_id": "other"}])
    (merged,) = ing.sessions_of("a-1")
    assert merged == s1  # the conflicting e2 is not named:
    assert bridged.sessions == {"e4": merged, "e5": merged, "e6": merged, "e1": merged}
