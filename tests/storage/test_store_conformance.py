"""The one conformance suite every Store backend passes: memory, SQLite (a real file), PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopkeep.errors import StorageError, ValidationError
from shopkeep.storage import LogRecord, Store, iter_collection, open_store

BACKENDS = ["memory", "sqlite", "postgresql"]
DURABLE = ["sqlite", "postgresql"]

Opener = Callable[[], Store]


def _pg_uri(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


@contextmanager
def _opener(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """A function that opens (again) the same store; every store it opened is closed afterwards."""
    opened: list[Store] = []
    schema = f"t_{uuid.uuid4().hex[:16]}"
    if kind == "memory":
        shared = open_store("memory://")

        def make() -> Store:
            return shared
    else:
        if kind == "sqlite":
            uri = f"sqlite:///{tmp_path}/nested/dir/store.db"
        else:
            uri = _pg_uri(request.getfixturevalue("postgres_uri"), schema)

        def make() -> Store:
            return open_store(uri)

    def tracked() -> Store:
        store = make()
        opened.append(store)
        return store

    try:
        yield tracked
    finally:
        for store in opened:
            store.close()
        if kind == "postgresql":
            import psycopg

            with psycopg.connect(request.getfixturevalue("postgres_uri"), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    with _opener(request.param, request, tmp_path) as make:
        yield make


@pytest.fixture(params=DURABLE)
def durable_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    with _opener(request.param, request, tmp_path) as make:
        yield make


@pytest.fixture
def store(opener: Opener) -> Store:
    return opener()


def rec(key: str, payload: str = "{}", partition: str | None = None, ts_ms: int = 1) -> LogRecord:
    return LogRecord(key=key, ts_ms=ts_ms, payload=payload, partition=partition)



def test_satisfies_protocol_and_keeps_uri(store: Store) -> None:
    assert isinstance(store, Store)
    assert "://" in store.uri


def test_put_get_replace_and_missing_keys(store: Store) -> None:
    store.put_many("items", {"b": {"n": 1, "tags": ["x"]}, "a": {"n": 2, "nested": {"é": None}}})
    store.put_many("items", {"b": {"n": 3}})
    assert store.get_many("items", ["a", "b", "zz"]) == {"a": {"n": 2, "nested": {"é": None}}, "b": {"n": 3}}
    assert store.get_many("other", ["a"]) == {}
    assert store.count("items") == 2 and store.count("other") == 0


def test_returned_documents_are_copies(store: Store) -> None:
    store.put_many("items", {"a": {"tags": ["x"]}})
    got = store.get_many("items", ["a"])["a"]
    got["tags"].append("mutated")
    assert store.get_many("items", ["a"])["a"] == {"tags": ["x"]}


def test_scan_orders_by_key_and_pages_with_after(store: Store) -> None:
    keys = [f"k{i:03d}" for i in range(25)] + ["B", "a", "é", "Z9"]
    store.put_many("items", {key: {"key": key} for key in reversed(keys)})
    expected = sorted(keys)
    assert [key for key, _ in store.scan("items", k=1000)] == expected
    pages, after = [], None
    while True:
        page = store.scan("items", after=after, k=7)
        pages.append([key for key, _ in page])
        if len(page) < 7:
            break
        after = page[-1][0]
    assert [key for page in pages for key in page] == expected
    assert store.scan("items", after="k010", k=2) == [("k011", {"key": "k011"}), ("k012", {"key": "k012"})]
    assert store.scan("items", after="\uffff") == []
    assert store.scan("items", k=0) == []
    assert [key for key, _ in iter_collection(store, "items", k=4)] == expected


def test_delete_counts_only_existing(store: Store) -> None:
    store.put_many("items", {"a": {}, "b": {}, "c": {}})
    assert store.delete_many("items", ["a", "c", "c", "missing"]) == 2
    assert store.count("items") == 1
    assert store.get_many("items", ["a", "b"]) == {"b": {}}
    assert store.delete_many("nothing_here", ["a"]) == 0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.put_many("Bad-Name", {"a": {}}), "collection"),
        (lambda s: s.put_many("items", {"": {}}), "items.key"),
        (lambda s: s.put_many("items", {"x" * 513: {}}), "items.key"),
        (lambda s: s.put_many("items", {"a": [1, 2]}), "items['a']"),
        (lambda s: s.put_many("items", {"a": {"v": float("nan")}}), "items['a']"),
        (lambda s: s.put_many("items", {"a": {"v": object()}}), "items['a']"),
        (lambda s: s.get_many("items", "abc"), "keys"),
        (lambda s: s.get_many("items", ["ok", 5]), "keys[1]"),
        (lambda s: s.scan("items", k=-1), "k"),
        (lambda s: s.append("1log", [rec("a")]), "log"),
        (lambda s: s.read("events", after_seq=-1), "after_seq"),
    ],
)
def test_bad_input_raises_validation_error_naming_field(store: Store, call: Callable[[Store], object],
                                                        field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        call(store)
    assert exc.value.field == field


def test_put_many_is_all_or_nothing(store: Store) -> None:
    store.put_many("items", {"keep": {"v": 1}})
    with pytest.raises(ValidationError) as exc:
        store.put_many("items", {"new1": {"v": 1}, "keep": {"v": 2}, "bad": {"v": {1, 2}}})
    assert exc.value.field == "items['bad']"
    assert store.count("items") == 1
    assert store.get_many("items", ["keep", "new1"]) == {"keep": {"v": 1}}


def test_append_is_idempotent_and_replay_adds_nothing(store: Store) -> None:
    batch = [rec(f"e{i}", f'{{"i":{i}}}', partition=f"s{i % 3}", ts_ms=1000 + i) for i in range(50)]
    first = store.append("events", batch)
    assert first.inserted == tuple(f"e{i}" for i in range(50))
    assert first.duplicates == () and first.conflicts == ()
    replay = store.append("events", batch)
    assert replay.inserted == () and replay.conflicts == ()
    assert replay.duplicates == first.inserted
    assert store.log_count("events") == 50
    got = store.read("events", k=1000)
    assert [r.key for r in got] == [r.key for r in batch]
    assert [(r.ts_ms, r.payload, r.partition) for r in got] == [(r.ts_ms, r.payload, r.partition) for r in batch]
    seqs = [r.seq for r in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50 and seqs[0] > 0


def test_conflicts_are_refused_and_reported(store: Store) -> None:
    store.append("events", [rec("a", '{"v":1}'), rec("b", '{"v":1}')])
    result = store.append("events", [rec("a", '{"v":2}'), rec("b", '{"v":1}'), rec("c", '{"v":1}')])
    assert result.inserted == ("c",)
    assert result.duplicates == ("b",)
    assert result.conflicts == ("a",)
    assert {r.key: r.payload for r in store.read("events")} == {"a": '{"v":1}', "b": '{"v":1}', "c": '{"v":1}'}
    assert store.log_count("events") == 3


def test_key_repeated_in_one_batch_counts_once(store: Store) -> None:
    result = store.append("events", [rec("x", "1"), rec("y", "1"), rec("x", "1"), rec("x", "2")])
    assert result.inserted == ("x", "y")
    assert result.duplicates == ("x",)
    assert result.conflicts == ("x",)
    assert [(r.key, r.payload) for r in store.read("events")] == [("x", "1"), ("y", "1")]


def test_logs_are_separate(store: Store) -> None:
    store.append("events", [rec("a")])
    assert store.append("slates", [rec("a", "[]")]).inserted == ("a",)
    assert store.log_count("events") == 1 and store.log_count("slates") == 1
    assert store.log_count("never_written") == 0
    assert store.read("never_written") == []


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (LogRecord("k", 1, {"not": "a str"}), "records[2].payload"),  # type: ignore[arg-type]
        (LogRecord("", 1, "{}"), "records[2].key"),
        (LogRecord("k", 1.5, "{}"), "records[2].ts_ms"),  # type: ignore[arg-type]
        (LogRecord("k", True, "{}"), "records[2].ts_ms"),
        (LogRecord("k", 1, "{}", partition=7), "records[2].partition"),  # type: ignore[arg-type]
        (LogRecord("k", 1, "a\x00b"), "records[2].payload"),
        (LogRecord("k\ud800", 1, "{}"), "records[2].key"),
        (("k", 1, "{}"), "records[2]"),
    ],
)
def test_append_is_all_or_nothing(store: Store, bad: object, field: str) -> None:
    store.append("events", [rec("old")])
    with pytest.raises(ValidationError) as exc:
        store.append("events", [rec("new1"), rec("old"), bad])  # type: ignore[list-item]
    assert exc.value.field == field
    assert [r.key for r in store.read("events")] == ["old"]
    assert store.log_count("events") == 1


def test_read_by_partition_and_after_seq_paging(store: Store) -> None:
    for start in range(0, 60, 20):  # several batches, so seqs come from several appends
        store.append("events", [rec(f"e{i}", str(i), partition=f"p{i % 4}") for i in range(start, start + 20)])
    store.append("events", [rec("np", "x")])
    everything = store.read("events", k=1000)
    assert len(everything) == 61
    paged, after = [], 0
    while page := store.read("events", after_seq=after, k=9):
        paged.extend(page)
        after = page[-1].seq
    assert paged == everything
    p1 = store.read("events", partition="p1", k=1000)
    assert [r.key for r in p1] == [f"e{i}" for i in range(1, 60, 4)]
    p1_paged, after = [], 0
    while page := store.read("events", partition="p1", after_seq=after, k=4):
        p1_paged.extend(page)
        after = page[-1].seq
    assert p1_paged == p1
    assert store.read("events", after_seq=everything[-1].seq) == []
    assert store.read("events", partition="nobody") == []
    assert store.read("events", k=0) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=8), max_size=6))
def test_any_appends_store_distinct_keys_in_first_seen_order(opener: Opener, batches: list[list[str]]) -> None:
    store = opener()
    log = f"prop_{uuid.uuid4().hex[:12]}"  # hypothesis reuses the fixture: one fresh log per example
    seen: list[str] = []
    for batch in batches:
        result = store.append(log, [rec(key, f'"{key}"') for key in batch])
        new = [key for key in dict.fromkeys(batch) if key not in seen]
        assert result.inserted == tuple(new)
        assert len(result.inserted) + len(result.duplicates) == len(batch) and result.conflicts == ()
        seen.extend(new)
    assert [r.key for r in store.read(log, k=100)] == seen
    assert store.log_count(log) == len(seen)


@pytest.mark.parametrize("separate", [False, True], ids=["one_instance", "two_instances"])
def test_concurrent_appends_with_overlapping_keys(opener: Opener, separate: bool) -> None:
    """Two threads share one store, or each opens its own (two connections to one file/schema)."""
    store = opener()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(offset: int) -> None:
        try:
            own = opener() if separate else store
            barrier.wait()
            for start in range(offset, offset + 300, 30):  # keys overlap: [0, 300) and [150, 450)
                batch = [rec(f"e{i:04d}", str(i), partition=f"p{i % 5}") for i in range(start, start + 30)]
                own.append("events", batch)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in (0, 150)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = store.read("events", k=10_000)
    assert store.log_count("events") == len(got) == 450
    assert sorted(r.key for r in got) == [f"e{i:04d}" for i in range(450)]
    assert [r.seq for r in got] == sorted(r.seq for r in got)


def test_data_survives_close_and_reopen(durable_opener: Opener) -> None:
    opener = durable_opener
    store = opener()
    store.put_many("items", {"a": {"v": 1}})
    store.append("events", [rec("e1", "1", partition="s"), rec("e2", "2")])
    store.close()
    with pytest.raises(StorageError):
        store.count("items")
    again = opener()
    assert again.get_many("items", ["a"]) == {"a": {"v": 1}}
    assert [(r.key, r.seq) for r in again.read("events")] == [("e1", 1), ("e2", 2)]
    assert again.append("events", [rec("e2", "2"), rec("e3", "3")]).inserted == ("e3",)
    assert [r.seq for r in again.read("events")] == [1, 2, 3]

