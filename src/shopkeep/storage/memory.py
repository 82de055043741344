"""In-process backends: :class:`MemoryStore` and :class:`MemoryOnlineState` (``memory://``).

Both are thread-safe (one lock per instance) and forget everything when the process ends. Documents
are stored as JSON text, so callers get fresh copies and cannot mutate stored state by accident.

>>> store = MemoryStore()
>>> store.append("events", [LogRecord("e1", 5, '{"a":1}')]).inserted
('e1',)
>>> [r.seq for r in store.read("events")]
[1]
"""

from __future__ import annotations

import json
import threading
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from shopkeep.errors import StorageError
from shopkeep.storage._common import (
    check_after,
    check_deltas,
    check_docs,
    check_k,
    check_keys,
    check_name,
    check_read,
    check_records,
    check_swap,
    check_values,
    format_number,
    parse_number,
    plan_append,
)
from shopkeep.storage.base import AppendResult, Document, LogRecord

__all__ = ["MemoryOnlineState", "MemoryStore"]


@dataclass
class _Collection:
    docs: dict[str, str] = field(default_factory=dict)
    sorted_keys: list[str] | None = None  # rebuilt lazily after writes

    def keys_in_order(self) -> list[str]:
        if self.sorted_keys is None:
            self.sorted_keys = sorted(self.docs)
        return self.sorted_keys


@dataclass
class _Log:
    records: list[LogRecord] = field(default_factory=list)  # records[i].seq == i + 1
    digests: dict[str, bytes] = field(default_factory=dict)
    by_partition: dict[str, list[int]] = field(default_factory=dict)


class MemoryStore:
    """A :class:`~shopkeep.storage.base.Store` held in process memory; log seqs are 1, 2, 3... per log."""

    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._lock = threading.Lock()
        self._collections: dict[str, _Collection] = {}
        self._logs: dict[str, _Log] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"store {self.uri} is closed", {"uri": self.uri})

    def put_many(self, collection: str, docs: Mapping[str, Document]) -> None:
        """Insert or replace documents by key."""
        check_name("collection", collection)
        rows = check_docs(collection, docs)
        with self._lock:
            self._check_open()
            coll = self._collections.setdefault(collection, _Collection())
            coll.docs.update(rows)
            coll.sorted_keys = None

    def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        """The documents that exist among ``keys`` (missing keys are absent from the result)."""
        check_name("collection", collection)
        wanted = check_keys("keys", keys)
        with self._lock:
            self._check_open()
            docs = self._collections.get(collection, _Collection()).docs
            found = {key: docs[key] for key in wanted if key in docs}
        return {key: json.loads(text) for key, text in found.items()}

    def scan(self, collection: str, *, after: str | None = None, k: int = 1000) -> list[tuple[str, Document]]:
        """Up to ``k`` documents in key order, strictly after key ``after``."""
        check_name("collection", collection)
        check_k("k", k)
        check_after(after)
        with self._lock:
            self._check_open()
            coll = self._collections.get(collection, _Collection())
            keys = coll.keys_in_order()
            start = 0 if after is None else bisect_right(keys, after)
            page = [(key, coll.docs[key]) for key in keys[start : start + k]]
        return [(key, json.loads(text)) for key, text in page]

    def delete_many(self, collection: str, keys: Sequence[str]) -> int:
        """Delete documents; returns how many existed."""
        check_name("collection", collection)
        wanted = check_keys("keys", keys)
        with self._lock:
            self._check_open()
            coll = self._collections.get(collection)
            if coll is None:
                return 0
            removed = sum(coll.docs.pop(key, None) is not None for key in wanted)
            if removed:
                coll.sorted_keys = None
            return removed

    def count(self, collection: str) -> int:
        """Number of documents in a collection."""
        check_name("collection", collection)
        with self._lock:
            self._check_open()
            coll = self._collections.get(collection)
            return 0 if coll is None else len(coll.docs)

    def append(self, log: str, records: Sequence[LogRecord]) -> AppendResult:
        """Append records atomically, skipping duplicates and refusing conflicts (neither is written).

        A key repeated inside ``records`` counts once; a second copy with another payload is a conflict.
        """
        check_name("log", log)
        digests = check_records(records)
        with self._lock:
            self._check_open()
            state = self._logs.setdefault(log, _Log())
            plan = plan_append(records, state.digests, digests)
            for i in plan.insert:
                rec = replace(records[i], seq=len(state.records) + 1)
                state.records.append(rec)
                state.digests[rec.key] = digests[i]
                if rec.partition is not None:
                    state.by_partition.setdefault(rec.partition, []).append(rec.seq)
        return plan.result

    def read(
        self, log: str, *, after_seq: int = 0, k: int = 1000, partition: str | None = None
    ) -> list[LogRecord]:
        """Up to ``k`` records with ``seq > after_seq`` in append order, optionally of one partition."""
        check_name("log", log)
        check_read(after_seq, k, partition)
        with self._lock:
            self._check_open()
            state = self._logs.get(log)
            if state is None:
                return []
            if partition is None:
                return state.records[after_seq : after_seq + k]
            seqs = state.by_partition.get(partition, [])
            start = bisect_right(seqs, after_seq)
            return [state.records[s - 1] for s in seqs[start : start + k]]

    def log_count(self, log: str) -> int:
        """Number of records in a log."""
        check_name("log", log)
        with self._lock:
            self._check_open()
            state = self._logs.get(log)
            return 0 if state is None else len(state.records)

    def close(self) -> None:
        """Drop everything: a memory store keeps nothing after close."""
        with self._lock:
            self._closed = True
            self._collections.clear()
            self._logs.clear()


class MemoryOnlineState:
    """An :class:`~shopkeep.storage.base.OnlineState` in process memory; TTLs expire lazily on access."""

    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._lock = threading.Lock()
        self._values: dict[str, tuple[bytes, float | None]] = {}  # key -> (value, monotonic deadline)

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= now:
            del self._values[key]
            return None
        return entry[0]

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Values of the keys that exist."""
        wanted = check_keys("keys", keys)
        now = time.monotonic()
        with self._lock:
            found = {key: self._live(key, now) for key in wanted}
        return {key: value for key, value in found.items() if value is not None}

    def set_many(self, values: Mapping[str, bytes], *, ttl_s: int | None = None) -> None:
        """Write values, optionally expiring after ``ttl_s`` seconds."""
        check_values(values, ttl_s)
        deadline = None if ttl_s is None else time.monotonic() + ttl_s
        with self._lock:
            for key, value in values.items():
                self._values[key] = (value, deadline)

    def incr_many(self, deltas: Mapping[str, float]) -> dict[str, float]:
        """Atomically add to numeric counters (missing = 0); returns the new values.

        A key that holds a non-number raises ValidationError and no counter changes. An existing TTL
        is kept.
        """
        check_deltas(deltas)
        now = time.monotonic()
        with self._lock:
            current = {key: self._live(key, now) for key in deltas}
            new = {}
            for key, delta in deltas.items():
                raw = current[key]
                new[key] = (0.0 if raw is None else parse_number(key, raw)) + float(delta)
            for key, value in new.items():
                deadline = self._values[key][1] if key in self._values else None
                self._values[key] = (format_number(value), deadline)
        return {key: parse_number(key, format_number(value)) for key, value in new.items()}

    def swap_many(self, expected: Mapping[str, bytes | None], values: Mapping[str, bytes], *,
                  ttl_s: int | None = None) -> list[str]:
        """Compare and set, atomically: write ``values[key]`` where the key still holds ``expected[key]``
        (None: absent); returns the keys that did not match, which keep their value."""
        check_swap(expected, values, ttl_s)
        now = time.monotonic()
        deadline = None if ttl_s is None else now + ttl_s
        lost: list[str] = []
        with self._lock:
            for key, value in values.items():
                if self._live(key, now) != expected[key]:
                    lost.append(key)
                else:
                    self._values[key] = (value, deadline)
        return lost

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete keys; returns how many existed."""
        wanted = check_keys("keys", keys)
        now = time.monotonic()
        with self._lock:
            live = [key for key in wanted if self._live(key, now) is not None]
            for key in live:
                del self._values[key]
        return len(live)

    def close(self) -> None:
        """Drop every value."""
        with self._lock:
            self._values.clear()

