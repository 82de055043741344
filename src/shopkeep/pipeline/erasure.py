"""Erasure of one shopper (right to be forgotten): ``erase_user(store, online_features, user_id=...)``.

What happens, exactly:

* **Profile** (collection ``profiles``, key = user_id) and **identity links** (``identity``: ``user:<id>``
  and ``anon:<id>`` of every linked anonymous id) are deleted.
* **Sessionization state** (``event_sessions``: ``u:<user_id>``, ``a:<anonymous_id>``) is deleted.
* **Other documents** (any collection but ``items`` and ``policies``: conversations, agent grants, offer
  decisions...): a key with an id as a ``:``-separated
  part is deleted; a document holding an id as a JSON string value is rewritten like a log payload.
* **Online state**: ``SessionFeatures.forget`` for the user and each anonymous id (long-term state and
  every session it lists).
* **Append-only logs** (every log in the store: ``events``, ``slates``, ``offer_decisions``...): each
  record that mentions one of the ids is *rewritten in place*, keeping its position (seq), time and
  count, so item popularity and log counts stay what they were. In its JSON payload ``user_id`` and
  ``session_id`` are removed (events log) or set to null (other logs), ``anonymous_id`` and any other
  string equal to one of the ids become a fresh random token per record (``erased-<16 hex>``) (an id
  inside a longer string, e.g. an order number, is cut out and replaced by ``erased``), so the
  erased events no longer link to each other nor to the person (they drop out of sequence training as
  one-event histories). The partition becomes ``erased``; a key (event_id) that contains one of the ids
  is replaced by ``erased-<blake2b of the old key>`` so a client retry of the same event is still told
  apart; the stored payload digest is recomputed (the old one would let a guess be confirmed).
* SQLite: the rewrite runs with ``PRAGMA secure_delete=ON`` (freed cells and pages are zeroed) and the
  WAL is checkpointed and truncated, so the file holds no old copy. PostgreSQL keeps dead row versions
  until ``VACUUM`` runs: :func:`erase_user` runs ``VACUUM`` on the log and document tables when it can.

Retention (:func:`purge_expired`, ``events.retention_days``): records of the ``events`` log (or the
logs named) whose event time is older than the time-to-live are *deleted* (SQLite with secure delete and
a WAL truncate, PostgreSQL with a VACUUM where allowed), and the count per log is returned. The
sessionization state of a shopper whose every event was purged is deleted too. Log
positions (seq) are kept, so ``log_count`` (the last position) still counts purged records; and the
Ingestor refuses events older than the retention period, so a purged event re-sent is not stored again.

Not covered here: copies outside the store (backups, server logs, trained model artifacts — the ids are
not in artifacts, which hold dense indices and item ids only, but a retrain is what removes the person's
influence), and Redis Streams (not used by this version).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any, Protocol

from shopkeep.errors import StorageError, ValidationError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.profiles.identity import COLLECTION as IDENTITY
from shopkeep.profiles.identity import IdentityGraph
from shopkeep.profiles.repository import COLLECTION as PROFILES
from shopkeep.storage._common import digest
from shopkeep.storage.base import LogRecord, Store
from shopkeep.types import to_epoch_ms

__all__ = ["ERASED_PARTITION", "ErasureReport", "Forgetter", "PurgeReport", "erase_user", "find_traces",
           "purge_expired", "user_data"]

#: The partition every rewritten log record is moved to.
ERASED_PARTITION = "erased"
_SESSIONS = "event_sessions"
_PERSON_FIELDS = ("user_id", "session_id")
#: Collections that hold no shopper data (never scanned for ids by erasure).
_NOT_PERSONAL = frozenset({"items", "policies"})


class Forgetter(Protocol):
    """What erasure needs of the online features (``SessionFeatures`` has it)."""

    def forget(self, *, user_id: str | None = None, anonymous_id: str | None = None) -> int:
        """Delete the shopper's online state; returns keys deleted."""


@dataclass(frozen=True)
class ErasureReport:
    """What :func:`erase_user` removed or rewrote."""

    user_id: str | None
    anonymous_ids: tuple[str, ...]
    documents_deleted: int
    online_keys_deleted: int
    log_records_rewritten: dict[str, int]
    remaining: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of ``DELETE /v1/users/{id}``."""
        return {"user_id": self.user_id, "anonymous_ids": list(self.anonymous_ids),
                "documents_deleted": self.documents_deleted, "online_keys_deleted": self.online_keys_deleted,
                "log_records_rewritten": dict(self.log_records_rewritten), "remaining": list(self.remaining)}


def erase_user(store: Store, features: Forgetter | None, *, user_id: str | None = None,
               anonymous_ids: Sequence[str] = ()) -> ErasureReport:
    """Erase a shopper everywhere the store and online state hold them (see the module docstring).

    ``anonymous_ids`` adds device ids not (or no longer) linked to the user; linked ones are found in
    the identity graph. ``remaining`` lists what still mentions an id afterwards (empty when complete).
    """
    ids = _ids(store, user_id, anonymous_ids)
    anons = tuple(i for i in ids if i != user_id)
    docs = {PROFILES: [user_id] if user_id else [],
            IDENTITY: ([f"user:{user_id}"] if user_id else []) + [f"anon:{a}" for a in anons],
            _SESSIONS: ([f"u:{user_id}"] if user_id else []) + [f"a:{a}" for a in anons]}
    deleted = sum(store.delete_many(collection, keys) for collection, keys in docs.items() if keys)
    online = 0
    if features is not None:
        if user_id:
            online += features.forget(user_id=user_id)
        for anon in anons:
            online += features.forget(anonymous_id=anon)
    backend = _backend(store)
    deleted += _scrub_documents(store, backend, frozenset(ids))
    rewritten = {log: backend.rewrite(log, list(_scrubbed(backend.records(log), log, ids)))
                 for log in backend.logs()}
    backend.compact()
    return ErasureReport(user_id, anons, deleted, online, {k: v for k, v in rewritten.items() if v},
                         tuple(find_traces(store, ids)))


@dataclass(frozen=True)
class PurgeReport:
    """What :func:`purge_expired` deleted: records per log older than ``cutoff`` (UTC), and under
    ``event_sessions`` the sessionization documents of shoppers left without any event."""

    cutoff: datetime
    deleted: dict[str, int]

    @property
    def total(self) -> int:
        """Records deleted in all logs."""
        return sum(self.deleted.values())


def purge_expired(store: Store, retention_days: float, *, now: datetime | None = None,
                  logs: Sequence[str] = (EVENTS_LOG,)) -> PurgeReport:
    """Delete the records of ``logs`` whose event time is more than ``retention_days`` before ``now``
    (default: the wall clock); ValidationError for a retention that is not a positive number of days."""
    if isinstance(retention_days, bool) or not isinstance(retention_days, int | float) \
            or not 0 < retention_days < float("inf"):
        raise ValidationError("retention_days", retention_days, "must be a positive number of days")
    at = now if now is not None else datetime.now(UTC)
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValidationError("now", now, "must be timezone-aware (UTC)")
    cutoff = at - timedelta(days=retention_days)
    backend = _backend(store)
    cut = to_epoch_ms(cutoff)
    deleted = {log: backend.delete_before(log, cut) for log in logs}
    if deleted.get(EVENTS_LOG):
        deleted[_SESSIONS] = _purge_sessions(store, cut)
    if any(deleted.values()):
        backend.compact()
    return PurgeReport(cutoff, deleted)


def _purge_sessions(store: Store, cutoff_ms: int) -> int:
    """Delete the sessionization state of shoppers whose every run ended before ``cutoff_ms`` (all their
    events were purged; the document's key holds their id). Shoppers with a later run keep theirs."""
    from shopkeep.storage.base import iter_collection

    doomed = [key for key, doc in iter_collection(store, _SESSIONS)
              if key[:2] in ("a:", "u:") and doc.get("runs") and all(int(r[2]) < cutoff_ms for r in doc["runs"])]
    return sum(store.delete_many(_SESSIONS, doomed[i:i + 1000]) for i in range(0, len(doomed), 1000))


def _scrub_documents(store: Store, backend: _Backend, ids: frozenset[str]) -> int:
    """Other modules' documents (conversations, grants, ...): a document whose key has an id as a
    ``:``-separated part is deleted; one holding an id as a JSON string value is rewritten without it
    (person fields nulled, ids replaced by tokens). Returns the number deleted."""
    deleted = 0
    for collection in backend.collections():
        if collection in _NOT_PERSONAL:  # an item "sku:1" must survive erasing a shopper named "1"
            continue
        doomed: list[str] = []
        changed: dict[str, Any] = {}
        for key, text in backend.documents(collection):
            if any(part in ids for part in key.split(":")):
                doomed.append(key)
            elif any(i in text for i in ids) and _contains(json.loads(text), ids):
                changed[key] = _scrub(json.loads(text), ids, False)
        if doomed:
            deleted += store.delete_many(collection, doomed)
        if changed:
            store.put_many(collection, changed)
    return deleted


def _ids(store: Store, user_id: str | None, anonymous_ids: Sequence[str]) -> tuple[str, ...]:
    given = [user_id] if user_id is not None else []
    for value in [*given, *anonymous_ids]:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("user_id", value, "must be a non-empty string")
    if not given and not anonymous_ids:
        raise ValidationError("user_id", None, "erasure needs a user_id or an anonymous_id")
    linked = IdentityGraph(store).anonymous_ids(user_id) if user_id else ()
    return tuple(dict.fromkeys([*given, *linked, *anonymous_ids]))


def _mentions(text: str | None, ids: Sequence[str]) -> bool:
    return text is not None and any(i in text for i in ids)


def _scrub(value: Any, ids: frozenset[str], events: bool) -> Any:
    """A copy of a JSON value with person fields removed and id strings replaced by fresh tokens."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _PERSON_FIELDS:
                if not events:
                    out[key] = None
                continue
            out[key] = _token() if key == "anonymous_id" and isinstance(item, str) else _scrub(item, ids, events)
        return out
    if isinstance(value, list):
        return [_scrub(v, ids, events) for v in value]
    if isinstance(value, str):
        if value in ids:
            return _token()
        for i in ids:  # an id inside a longer string (an order number, free text): cut it out
            value = value.replace(i, "erased")
    return value


def _contains(value: Any, ids: frozenset[str]) -> bool:
    if isinstance(value, str):
        return value in ids
    if isinstance(value, dict):
        return any(_contains(v, ids) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, ids) for v in value)
    return False


def _matches(rec: LogRecord, ids: frozenset[str]) -> bool:
    """Whether a record belongs to the person: a JSON string value or its partition equals an id
    (a sessionization label ``<ms>:<shopper id>`` counts by its id part). Exact, so erasing ``u1``
    leaves ``u10`` alone."""
    part = rec.partition
    if part is not None and (part in ids or part.split(":", 1)[-1] in ids):
        return True
    if rec.key in ids:
        return True
    return any(i in rec.payload for i in ids) and _contains(json.loads(rec.payload), ids)


def _token() -> str:
    return f"erased-{secrets.token_hex(8)}"


def _scrubbed(records: Iterable[LogRecord], log: str, ids: Sequence[str]) -> Iterator[tuple[LogRecord, LogRecord]]:
    """(old, new) for each record that mentions an id."""
    idset = frozenset(ids)
    for rec in records:
        if not _matches(rec, idset):
            continue
        data = _scrub(json.loads(rec.payload), idset, log == EVENTS_LOG)
        key = rec.key
        if _mentions(key, ids):
            key = "erased-" + blake2b(key.encode("utf-8"), digest_size=12).hexdigest()
            if isinstance(data, dict) and "event_id" in data:
                data["event_id"] = key
        payload = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        yield rec, LogRecord(key=key, ts_ms=rec.ts_ms, payload=payload, partition=ERASED_PARTITION, seq=rec.seq)


def user_data(store: Store, user_id: str, *, k: int = 10_000) -> dict[str, Any]:
    """Everything the store holds about a user (right of access): profile, identity links, and up to
    ``k`` records per log that belong to the user or a linked anonymous id (exact id match)."""
    ids = _ids(store, user_id, ())
    ident = store.get_many(IDENTITY, [f"user:{user_id}", *(f"anon:{a}" for a in ids[1:])])
    profile = store.get_many(PROFILES, [user_id]).get(user_id)
    idset = frozenset(ids)
    logs: dict[str, list[Any]] = {}
    backend = _backend(store)
    for log in backend.logs():
        found = [json.loads(rec.payload) for rec in backend.records(log) if _matches(rec, idset)]
        if found:
            logs[log] = found[:k]
    return {"user_id": user_id, "anonymous_ids": list(ids[1:]), "profile": profile, "identity": ident, "logs": logs}


def find_traces(store: Store, ids: Sequence[str]) -> list[str]:
    """Where any of ``ids`` still occurs as a substring: ``collection/key`` and ``log#seq`` entries."""
    backend = _backend(store)
    found: list[str] = []
    for collection in backend.collections():
        for key, text in backend.documents(collection):
            if _mentions(key, ids) or _mentions(text, ids):
                found.append(f"{collection}/{key}")
    for log in backend.logs():
        for rec in backend.records(log):
            if _mentions(rec.key, ids) or _mentions(rec.partition, ids) or _mentions(rec.payload, ids):
                found.append(f"{log}#{rec.seq}")
    return found


def _backend(store: Store) -> _Backend:
    kind = type(store).__name__
    if kind == "SQLiteStore":
        return _SQLite(store)
    if kind == "PostgresStore":
        return _Postgres(store)
    if kind == "MemoryStore":
        return _Memory(store)
    raise StorageError(f"erasure does not support the {kind} backend", {"uri": store.uri})


# -- backends ---------------------------------------------------------------------------------------
# The Store protocol has no way to list collections and logs or to rewrite a log record (logs are
# append-only by design); erasure is the one exception, so it reaches into each backend here.


class _Backend:
    """Listing and in-place rewrite of log records for one store backend."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def records(self, log: str) -> Iterator[LogRecord]:
        """Every record of ``log`` in seq order."""
        after = 0
        while True:
            page = self.store.read(log, after_seq=after, k=5000)
            yield from page
            if len(page) < 5000:
                return
            after = page[-1].seq

    def documents(self, collection: str) -> Iterator[tuple[str, str]]:
        """(key, JSON text) of every document of ``collection``."""
        from shopkeep.storage.base import iter_collection

        for key, doc in iter_collection(self.store, collection):
            yield key, json.dumps(doc, ensure_ascii=False)

    def logs(self) -> list[str]:
        """Names of the logs in the store."""
        raise NotImplementedError

    def collections(self) -> list[str]:
        """Names of the document collections in the store."""
        raise NotImplementedError

    def rewrite(self, log: str, pairs: list[tuple[LogRecord, LogRecord]]) -> int:
        """Replace each old record by its new one (same seq) atomically; returns how many."""
        raise NotImplementedError

    def compact(self) -> None:
        """Make sure no old copy of rewritten data is left in the storage files."""

    def delete_before(self, log: str, cutoff_ms: int) -> int:
        """Delete the records of ``log`` with ``ts_ms < cutoff_ms``; returns how many."""
        raise StorageError(f"retention purge does not support the {type(self.store).__name__} backend "
                           "(it keeps log positions contiguous)", {"uri": self.store.uri})


class _SQLite(_Backend):
    def logs(self) -> list[str]:
        with self.store._read() as conn:
            return [row[0] for row in conn.execute("SELECT log FROM logs ORDER BY log")]

    def collections(self) -> list[str]:
        with self.store._read() as conn:
            return [row[0] for row in conn.execute("SELECT DISTINCT collection FROM documents ORDER BY 1")]

    def rewrite(self, log: str, pairs: list[tuple[LogRecord, LogRecord]]) -> int:
        if not pairs:
            return 0
        with self.store._read() as conn:
            conn.execute("PRAGMA secure_delete=ON")
        with self.store._write() as conn:
            conn.executemany("UPDATE log_records SET key = ?, partition = ?, payload = ?, digest = ? "
                             "WHERE log = ? AND seq = ?",
                             [(new.key, new.partition, new.payload, digest(new.payload), log, old.seq)
                              for old, new in pairs])
        return len(pairs)

    def compact(self) -> None:
        with self.store._read() as conn:
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def delete_before(self, log: str, cutoff_ms: int) -> int:
        with self.store._read() as conn:
            conn.execute("PRAGMA secure_delete=ON")
        with self.store._write() as conn:
            cur = conn.execute("DELETE FROM log_records WHERE log = ? AND ts_ms < ?", (log, cutoff_ms))
            return int(cur.rowcount)


class _Postgres(_Backend):
    def logs(self) -> list[str]:
        with self.store._tx() as cur:
            cur.execute(f"SELECT log FROM {self.store._q}.logs ORDER BY log")
            return [str(row[0]) for row in cur.fetchall()]

    def collections(self) -> list[str]:
        with self.store._tx() as cur:
            cur.execute(f"SELECT DISTINCT collection FROM {self.store._q}.documents ORDER BY 1")
            return [str(row[0]) for row in cur.fetchall()]

    def rewrite(self, log: str, pairs: list[tuple[LogRecord, LogRecord]]) -> int:
        if not pairs:
            return 0
        with self.store._tx() as cur:
            cur.executemany(f"UPDATE {self.store._q}.log_records SET key = %s, partition = %s, payload = %s, "
                            "digest = %s WHERE log = %s AND seq = %s",
                            [(new.key, new.partition, new.payload, digest(new.payload), log, old.seq)
                             for old, new in pairs])
        return len(pairs)

    def delete_before(self, log: str, cutoff_ms: int) -> int:
        with self.store._tx() as cur:
            cur.execute(f"DELETE FROM {self.store._q}.log_records WHERE log = %s AND ts_ms < %s", (log, cutoff_ms))
            return int(cur.rowcount)

    def compact(self) -> None:
        try:  # VACUUM cannot run inside a transaction; the store's connection is in autocommit mode
            with self.store._lock, self.store._guard():
                conn = self.store._connection()
                for table in ("log_records", "documents"):
                    conn.execute(f"VACUUM {self.store._q}.{table}")
        except StorageError:  # not the table owner: dead row versions stay until autovacuum
            pass


class _Memory(_Backend):
    def logs(self) -> list[str]:
        with self.store._lock:
            return sorted(self.store._logs)

    def collections(self) -> list[str]:
        with self.store._lock:
            return sorted(self.store._collections)

    def rewrite(self, log: str, pairs: list[tuple[LogRecord, LogRecord]]) -> int:
        with self.store._lock:
            state = self.store._logs[log]
            for old, new in pairs:
                state.records[old.seq - 1] = new
                state.digests.pop(old.key, None)
                state.digests[new.key] = digest(new.payload)
                if old.partition is not None:
                    state.by_partition[old.partition].remove(old.seq)
                state.by_partition.setdefault(ERASED_PARTITION, []).append(old.seq)
            state.by_partition[ERASED_PARTITION] = sorted(state.by_partition.get(ERASED_PARTITION, []))
        return len(pairs)
