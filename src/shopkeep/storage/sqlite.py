"""The SQLite :class:`~shopkeep.storage.base.Store` (``sqlite:///path``), the default durable backend.

One file, WAL journal, ``synchronous=NORMAL`` (a committed write survives a process crash; an OS
crash may lose the last commits). One connection shared by the threads of a process behind a lock;
other processes may open the same file (writes take ``BEGIN IMMEDIATE`` and wait up to ``timeout_s``).

Log seqs are 1, 2, 3... per log: a ``logs`` row holds the last seq, read and advanced inside the
write transaction, so seq order is commit order and a reader paging by ``after_seq`` misses nothing.

>>> store = SQLiteStore(":memory:")
>>> store.append("events", [LogRecord("e1", 5, "{}"), LogRecord("e1", 5, "{}")])
AppendResult(inserted=('e1',), duplicates=('e1',), conflicts=())
>>> store.close()
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from shopkeep.errors import StorageError
from shopkeep.storage._common import (
    check_after,
    check_docs,
    check_k,
    check_keys,
    check_name,
    check_read,
    check_records,
    plan_append,
)
from shopkeep.storage.base import AppendResult, Document, LogRecord

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    log TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_records (
    log TEXT NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    partition TEXT,
    payload TEXT NOT NULL,
    digest BLOB NOT NULL,
    UNIQUE (log, seq),
    UNIQUE (log, key)
);
CREATE INDEX IF NOT EXISTS log_records_partition ON log_records (log, partition, seq);
"""

# Stay well under SQLITE_MAX_VARIABLE_NUMBER (32766 since SQLite 3.32).
_CHUNK = 10_000


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SQLiteStore:
    """A durable :class:`~shopkeep.storage.base.Store` in one SQLite file (parent folders are created)."""

    def __init__(self, path: str | Path, *, uri: str | None = None, timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self.uri = uri if uri is not None else f"sqlite:///{self.path}"
        self.timeout_s = timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        with self._guard():
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: keeps the key index hot on big logs
            conn.executescript(_SCHEMA)
            self._conn = conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn driver failures into StorageError (ValidationError passes through)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite {self.path}: {exc}", {"uri": self.uri}) from exc
        except OSError as exc:
            raise StorageError(f"sqlite {self.path}: {exc}", {"uri": self.uri}) from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard():
            if self._conn is None:
                raise StorageError(f"store {self.uri} is closed", {"uri": self.uri})
            yield self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed if the block succeeds, rolled back otherwise."""
        with self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def put_many(self, collection: str, docs: Mapping[str, Document]) -> None:
        """Insert or replace documents by key."""
        check_name("collection", collection)
        rows = check_docs(collection, docs)
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO documents (collection, key, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (collection, key) DO UPDATE SET doc = excluded.doc",
                [(collection, key, text) for key, text in rows],
            )

    def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        """The documents that exist among ``keys`` (missing keys are absent from the result)."""
        check_name("collection", collection)
        wanted = check_keys("keys", keys)
        found: dict[str, str] = {}
        with self._read() as conn:
            for part in _chunks(wanted):
                sql = f"SELECT key, doc FROM documents WHERE collection = ? AND key IN ({_marks(len(part))})"
                found.update(conn.execute(sql, (collection, *part)).fetchall())
        return {key: json.loads(found[key]) for key in wanted if key in found}

    def scan(self, collection: str, *, after: str | None = None, k: int = 1000) -> list[tuple[str, Document]]:
        """Up to ``k`` documents in key order, strictly after key ``after``."""
        check_name("collection", collection)
        check_k("k", k)
        check_after(after)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT key, doc FROM documents WHERE collection = ? AND key > ? ORDER BY key LIMIT ?",
                (collection, after or "", k),
            ).fetchall()
        return [(key, json.loads(text)) for key, text in rows]

    def delete_many(self, collection: str, keys: Sequence[str]) -> int:
        """Delete documents; returns how many existed."""
        check_name("collection", collection)
        wanted = check_keys("keys", keys)
        removed = 0
        with self._write() as conn:
            for part in _chunks(wanted):
                sql = f"DELETE FROM documents WHERE collection = ? AND key IN ({_marks(len(part))})"
                removed += conn.execute(sql, (collection, *part)).rowcount
        return removed

    def count(self, collection: str) -> int:
        """Number of documents in a collection."""
        check_name("collection", collection)
        with self._read() as conn:
            row = conn.execute("SELECT COUNT(*) FROM documents WHERE collection = ?", (collection,)).fetchone()
        return int(row[0])

    def append(self, log: str, records: Sequence[LogRecord]) -> AppendResult:
        """Append records atomically, skipping duplicates and refusing conflicts (neither is written).

        A key repeated inside ``records`` counts once; a second copy with another payload is a conflict.
        One transaction: a batched digest lookup of the keys, then one executemany insert.
        """
        check_name("log", log)
        digests = check_records(records)
        keys = list(dict.fromkeys(rec.key for rec in records))
        with self._write() as conn:
            existing: dict[str, bytes] = {}
            for part in _chunks(keys):
                sql = f"SELECT key, digest FROM log_records WHERE log = ? AND key IN ({_marks(len(part))})"
                existing.update(conn.execute(sql, (log, *part)).fetchall())
            plan = plan_append(records, existing, digests)
            if plan.insert:
                row = conn.execute("SELECT last_seq FROM logs WHERE log = ?", (log,)).fetchone()
                base = 0 if row is None else int(row[0])
                conn.executemany(
                    "INSERT INTO log_records (log, seq, key, ts_ms, partition, payload, digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (log, base + n, records[i].key, records[i].ts_ms, records[i].partition,
                         records[i].payload, digests[i])
                        for n, i in enumerate(plan.insert, start=1)
                    ],
                )
                conn.execute(
                    "INSERT INTO logs (log, last_seq) VALUES (?, ?) "
                    "ON CONFLICT (log) DO UPDATE SET last_seq = excluded.last_seq",
                    (log, base + len(plan.insert)),
                )
        return plan.result

    def read(
        self, log: str, *, after_seq: int = 0, k: int = 1000, partition: str | None = None
    ) -> list[LogRecord]:
        """Up to ``k`` records with ``seq > after_seq`` in append order, optionally of one partition."""
        check_name("log", log)
        check_read(after_seq, k, partition)
        cols = "key, ts_ms, payload, partition, seq"
        with self._read() as conn:
            if partition is None:
                sql = f"SELECT {cols} FROM log_records WHERE log = ? AND seq > ? ORDER BY seq LIMIT ?"
                rows = conn.execute(sql, (log, after_seq, k)).fetchall()
            else:
                sql = (f"SELECT {cols} FROM log_records WHERE log = ? AND partition = ? AND seq > ? "
                       "ORDER BY seq LIMIT ?")
                rows = conn.execute(sql, (log, partition, after_seq, k)).fetchall()
        return [LogRecord(*row) for row in rows]

    def log_count(self, log: str) -> int:
        """Number of records in a log (its last seq: logs are append-only and seqs have no gaps)."""
        check_name("log", log)
        with self._read() as conn:
            row = conn.execute("SELECT last_seq FROM logs WHERE log = ?", (log,)).fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close the connection; the file keeps the data. Later calls raise StorageError."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with self._guard():
                    conn.close()
