"""The one conformance suite every OnlineState backend passes: memory and a real Redis."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from shopkeep.errors import StorageError, ValidationError
from shopkeep.storage import OnlineState, open_online_state

Opener = Callable[[], OnlineState]


@pytest.fixture(params=["memory", "redis"])
def opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens states that share data (same memory instance / same Redis prefix); cleans up after."""
    opened: list[OnlineState] = []
    if request.param == "memory":
        shared = open_online_state("memory://")

        def make() -> OnlineState:
            return shared
        prefix, base = "", ""
    else:
        base = request.getfixturevalue("redis_uri")
        prefix = f"t:{uuid.uuid4().hex[:12]}:"

        def make() -> OnlineState:
            return open_online_state(f"{base}?prefix={prefix}")

    def tracked() -> OnlineState:
        state = make()
        opened.append(state)
        return state

    yield tracked
    for state in opened:
        state.close()
    if request.param == "redis":
        import redis

        client = redis.Redis.from_url(base)
        stale = list(client.scan_iter(match=f"{prefix}*"))
        if stale:
            client.delete(*stale)
        client.close()


@pytest.fixture
def state(opener: Opener) -> OnlineState:
    return opener()


def test_satisfies_protocol(state: OnlineState) -> None:
    assert isinstance(state, OnlineState)


def test_set_get_overwrite_and_missing(state: OnlineState) -> None:
    state.set_many({"a": b"1", "b": b"\x00\xff binary"})
    state.set_many({"a": b"2"})
    assert state.get_many(["a", "b", "missing"]) == {"a": b"2", "b": b"\x00\xff binary"}
    assert state.get_many([]) == {}


def test_next_reader_sees_last_write(opener: Opener) -> None:
    writer, reader = opener(), opener()
    writer.set_many({"session:1": b"v1"})
    assert reader.get_many(["session:1"]) == {"session:1": b"v1"}
    writer.incr_many({"n": 2})
    assert reader.incr_many({"n": 1}) == {"n": 3.0}


def test_values_expire_after_ttl(state: OnlineState) -> None:
    state.set_many({"short": b"x"}, ttl_s=1)
    state.set_many({"long": b"y"})
    assert state.get_many(["short"]) == {"short": b"x"}
    time.sleep(1.2)
    assert state.get_many(["short", "long"]) == {"long": b"y"}


def test_incr_many_adds_and_returns_new_values(state: OnlineState) -> None:
    assert state.incr_many({"c1": 1, "c2": 0.5}) == {"c1": 1.0, "c2": 0.5}
    assert state.incr_many({"c1": 2, "c2": -1.25}) == {"c1": 3.0, "c2": -0.75}
    assert float(state.get_many(["c1"])["c1"]) == 3.0
    assert state.incr_many({}) == {}


def test_incr_many_on_a_non_number_changes_nothing(state: OnlineState) -> None:
    state.set_many({"word": b"hello", "n": b"5"})
    with pytest.raises(ValidationError) as exc:
        state.incr_many({"n": 1, "fresh": 1, "word": 1})
    assert exc.value.field == "word"
    assert state.get_many(["n", "fresh", "word"]) == {"n": b"5", "word": b"hello"}


def test_concurrent_increments_are_exact(opener: Opener) -> None:
    def worker() -> None:
        own = opener()
        for _ in range(100):
            own.incr_many({"hits": 1, "half": 0.5})

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert opener().incr_many({"hits": 0, "half": 0}) == {"hits": 200.0, "half": 100.0}


def test_swap_many_writes_only_keys_that_still_hold_the_expected_value(state: OnlineState) -> None:
    state.set_many({"a": b"old", "b": b"\x00\xff"})
    lost = state.swap_many({"a": b"old", "b": b"stale", "fresh": None, "gone": b"x"},
                           {"a": b"new", "b": b"nope", "fresh": b"f", "gone": b"y"})
    assert sorted(lost) == ["b", "gone"]
    assert state.get_many(["a", "b", "fresh", "gone"]) == {"a": b"new", "b": b"\x00\xff", "fresh": b"f"}
    assert state.swap_many({"fresh": None}, {"fresh": b"again"}) == ["fresh"]  # exists: not "absent"
    assert state.swap_many({}, {}) == []


def test_swap_many_sets_the_ttl(state: OnlineState) -> None:
    assert state.swap_many({"short": None}, {"short": b"x"}, ttl_s=1) == []
    assert state.get_many(["short"]) == {"short": b"x"}
    time.sleep(1.2)
    assert state.get_many(["short"]) == {}


def test_concurrent_swaps_lose_no_update(opener: Opener) -> None:
    """Read-modify-write with retry on two clients: every one of 2 × 60 appends survives."""
    def worker(tag: str) -> None:
        own = opener()
        for i in range(60):
            while True:
                old = own.get_many(["list"]).get("list")
                new = (old or b"") + f"{tag}{i},".encode()
                if not own.swap_many({"list": old}, {"list": new}):
                    break

    threads = [threading.Thread(target=worker, args=(tag,)) for tag in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parts = opener().get_many(["list"])["list"].decode().rstrip(",").split(",")
    assert sorted(parts) == sorted(f"{t}{i}" for t in "xy" for i in range(60))


def test_delete_counts_only_existing(state: OnlineState) -> None:
    state.set_many({"a": b"1", "b": b"2"})
    assert state.delete_many(["a", "a", "zz"]) == 1
    assert state.get_many(["a", "b"]) == {"b": b"2"}
    assert state.delete_many([]) == 0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.set_many({"a": "not bytes"}), "values['a']"),
        (lambda s: s.set_many({"": b"x"}), "values.key"),
        (lambda s: s.set_many({"a": b"x"}, ttl_s=0), "ttl_s"),
        (lambda s: s.incr_many({"a": "1"}), "deltas['a']"),
        (lambda s: s.incr_many({"a": float("inf")}), "deltas['a']"),
        (lambda s: s.get_many("abc"), "keys"),
        (lambda s: s.delete_many([1]), "keys[0]"),
        (lambda s: s.swap_many({}, {"a": b"x"}), "expected['a']"),
        (lambda s: s.swap_many({"a": "str"}, {"a": b"x"}), "expected['a']"),
        (lambda s: s.swap_many({"a": None}, {"a": b"x"}, ttl_s=-1), "ttl_s"),
    ],
)
def test_bad_input_raises_validation_error_naming_field(state: OnlineState, call: Callable[[OnlineState], object],
                                                        field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        call(state)
    assert exc.value.field == field


def test_set_many_is_all_or_nothing(state: OnlineState) -> None:
    with pytest.raises(ValidationError):
        state.set_many({"ok": b"1", "bad": 2})  # type: ignore[dict-item]
    assert state.get_many(["ok"]) == {}


def test_redis_prefixes_isolate_and_bad_server_is_storage_error(redis_uri: str) -> None:
    one = open_online_state(f"{redis_uri}?prefix=t:{uuid.uuid4().hex}:")
    two = open_online_state(f"{redis_uri}?prefix=t:{uuid.uuid4().hex}:")
    try:
        one.set_many({"k": b"1"}, ttl_s=30)
        assert two.get_many(["k"]) == {}
        assert one.delete_many(["k"]) == 1
    finally:
        one.close()
        two.close()
    with pytest.raises(StorageError):
        open_online_state("redis://127.0.0.1:1/0")
