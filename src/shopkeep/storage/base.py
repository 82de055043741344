"""The two storage interfaces: the durable :class:`Store` and the hot :class:`OnlineState`.

A Store holds JSON documents in named collections (items, profiles, sessions...) and append-only,
idempotent logs (events, served slates). Backends: ``memory://``, ``sqlite:///path`` (default),
``postgresql://...``. Every backend passes tests/storage/test_store_conformance.py.

An OnlineState holds small hot values (session vectors, decayed affinities, counters) that the next
request on any worker must see. Backends: ``memory://`` (default), ``redis://host:port/db``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["AppendResult", "DocumentStore", "EventLog", "LogRecord", "OnlineState", "Store"]

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One entry of an append-only log.

    ``key`` is the idempotency key (the event_id); ``ts_ms`` the event time in epoch milliseconds;
    ``partition`` an optional grouping key that reads can filter on (a session or user id);
    ``payload`` the canonical JSON text; ``seq`` the store-assigned position (0 before append).
    """

    key: str
    ts_ms: int
    payload: str
    partition: str | None = None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: keys newly stored, keys already present with the same payload
    (replays: no change), and keys present with a *different* payload (conflicts: refused)."""

    inserted: tuple[str, ...]
    duplicates: tuple[str, ...]
    conflicts: tuple[str, ...]


@runtime_checkable
class DocumentStore(Protocol):
    """JSON documents by (collection, key). Each call is atomic: all of it happens or none."""

    def put_many(self, collection: str, docs: Mapping[str, Document]) -> None:
        """Insert or replace documents by key."""

    def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        """The documents that exist among ``keys`` (missing keys are absent from the result)."""

    def scan(self, collection: str, *, after: str | None = None, k: int = 1000) -> list[tuple[str, Document]]:
        """Up to ``k`` documents in key order, strictly after key ``after``."""

    def delete_many(self, collection: str, keys: Sequence[str]) -> int:
        """Delete documents; returns how many existed."""

    def count(self, collection: str) -> int:
        """Number of documents in a collection."""


@runtime_checkable
class EventLog(Protocol):
    """Append-only logs, idempotent by record key."""

    def append(self, log: str, records: Sequence[LogRecord]) -> AppendResult:
        """Append records atomically, skipping duplicates and refusing conflicts (neither is written).

        A key repeated inside ``records`` counts once; a second copy with another payload is a conflict.
        """

    def read(
        self, log: str, *, after_seq: int = 0, k: int = 1000, partition: str | None = None
    ) -> list[LogRecord]:
        """Up to ``k`` records with ``seq > after_seq`` in append order, optionally of one partition."""

    def log_count(self, log: str) -> int:
        """Number of records in a log."""


@runtime_checkable
class Store(DocumentStore, EventLog, Protocol):
    """The durable store: documents plus logs, chosen by URI."""

    uri: str

    def close(self) -> None:
        """Release connections; the data stays (except for ``memory://``)."""


@runtime_checkable
class OnlineState(Protocol):
    """Hot key/value state shared by all workers: the next request sees the last write."""

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Values of the keys that exist."""

    def set_many(self, values: Mapping[str, bytes], *, ttl_s: int | None = None) -> None:
        """Write values, optionally expiring after ``ttl_s`` seconds."""

    def incr_many(self, deltas: Mapping[str, float]) -> dict[str, float]:
        """Atomically add to numeric counters (missing = 0); returns the new values."""

    def swap_many(self, expected: Mapping[str, bytes | None], values: Mapping[str, bytes], *,
                  ttl_s: int | None = None) -> list[str]:
        """Compare and set, atomically: write ``values[key]`` where the key still holds ``expected[key]``
        (None: absent); returns the keys that did not match, which keep their value. Every key of
        ``values`` must be in ``expected``."""

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete keys; returns how many existed."""

    def close(self) -> None:
        """Release connections."""


def iter_collection(store: DocumentStore, collection: str, *, k: int = 1000) -> Iterator[tuple[str, Document]]:
    """Every document of a collection in key order, fetched ``k`` at a time."""
    after: str | None = None
    while True:
        page = store.scan(collection, after=after, k=k)
        yield from page
        if len(page) < k:
            return
        after = page[-1][0]
