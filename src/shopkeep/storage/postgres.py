"""The PostgreSQL :class:`~shopkeep.storage.base.Store` (``postgresql://...[?schema=NAME]``), psycopg 3.

Tables ``documents``, ``logs`` and ``log_records`` live in one schema (default ``public``), created if
missing. Keys use the "C" collation, so scans run in code-point order like the other backends.

An append runs in one transaction: it locks the log's row in ``logs`` (``FOR UPDATE``), so appends to
one log are serialized across processes and seq order is commit order; it looks up the digests of all
its keys in one query and writes the new records with one COPY.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from shopkeep.errors import ConfigError, StorageError
from shopkeep.storage._common import (
    NAME_RE,
    check_after,
    check_docs,
    check_k,
    check_keys,
    check_name,
    check_read,
    check_records,
    plan_append,
    redact,
)
from shopkeep.storage.base import AppendResult, Document, LogRecord

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.documents (
    collection text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    doc text NOT NULL,
    PRIMARY KEY (collection, key)
);
CREATE TABLE IF NOT EXISTS {s}.logs (
    log text PRIMARY KEY,
    last_seq bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.log_records (
    log text NOT NULL,
    seq bigint NOT NULL,
    key text NOT NULL,
    ts_ms bigint NOT NULL,
    partition text,
    payload text NOT NULL,
    digest bytea NOT NULL,
    PRIMARY KEY (log, seq),
    UNIQUE (log, key)
);
CREATE INDEX IF NOT EXISTS log_records_partition ON {s}.log_records (log, partition, seq);
"""

# Serializes concurrent schema creation (CREATE ... IF NOT EXISTS can race on the catalogs).
_DDL_LOCK = 0x5E0C_4EE9


class PostgresStore:
    """A durable :class:`~shopkeep.storage.base.Store` in PostgreSQL; one connection shared behind a lock."""

    def __init__(self, dsn: str, *, schema: str = "public", uri: str | None = None,
                 connect_timeout_s: int = 10) -> None:
        if not isinstance(schema, str) or NAME_RE.fullmatch(schema) is None:
            raise ConfigError(f"storage schema {schema!r}: must match ^[a-z][a-z0-9_]{{0,62}}$",
                              {"key": "schema", "value": schema})
        self.dsn = dsn
        self.schema = schema
        self.uri = uri if uri is not None else dsn
        self.connect_timeout_s = connect_timeout_s
        self._q = f'"{schema}"'
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._closed = False
        with self._lock, self._guard():
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                for statement in _SCHEMA.format(s=self._q).split(";"):
                    if statement.strip():
                        conn.execute(statement)

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """The open connection, (re)connecting if it is missing or broken."""
        import psycopg

        if self._closed:
            raise StorageError(f"store {redact(self.uri)} is closed", {"uri": redact(self.uri)})
        if self._conn is None or self._conn.broken or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout_s)
        return self._conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn driver failures into StorageError (ValidationError passes through)."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise StorageError(f"postgresql {redact(self.uri)}: {exc}", {"uri": redact(self.uri)}) from exc

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        """A cursor inside one transaction: committed if the block succeeds, rolled back otherwise."""
        with self._lock, self._guard():
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur

    def put_many(self, collection: str, docs: Mapping[str, Document]) -> None:
        """Insert or replace documents by key."""
        check_name("collection", collection)
        rows = check_docs(collection, docs)
        if not rows:
            return
        with self._tx() as cur:
            cur.executemany(
                f"INSERT INTO {self._q}.documents (collection, key, doc) VALUES (%s, %s, %s) "
                "ON CONFLICT (collection, key) DO UPDATE SET doc = EXCLUDED.doc",
                [(collection, key, text) for key, text in rows],
            )

    def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, Document]:
        """The documents that exist among ``keys`` (missing keys are absent from the result)."""
        check_name("collection", collection)
        wanted = check_keys("keys", keys)
        with self._tx() as cur:
            cur.execute(f"SELECT key, doc FROM {self._q}.documents WHERE collection = %s AND key = ANY(%s)",
                        (collection, wanted))
            found = {str(key): str(doc) for key, doc in cur.fetchall()}
        return {key: json.loads(found[key]) for key in wanted if key in found}

    def scan(self, collection: str, *, after: str | None = None, k: int = 1000) -> list[tuple[str, Document]]:
        """Up to ``k`` documents in key order, strictly after key ``after``."""
        check_name("collection", collection)
        check_k("k", k)
        check_after(after)
        with self._tx() as cur:
            cur.execute(f"SELECT key, doc FROM {self._q}.documents WHERE collection = %s AND key > %s "
                        "ORDER BY key LIMIT %s", (collection, after or "", k))
            rows = cur.fetchall()
        return [(str(key), json.loads(str(doc))) for key, doc in rows]

    def delete_many(self, collection: str, keys: Sequence[str]) -> int:
        """Delete documents; returns how many existed."""
        check_name("collection", collection)
        wanted = check_keys("keys", keys)
        with self._tx() as cur:
            cur.execute(f"DELETE FROM {self._q}.documents WHERE collection = %s AND key = ANY(%s)",
                        (collection, wanted))
            return max(cur.rowcount, 0)

    def count(self, collection: str) -> int:
        """Number of documents in a collection."""
        check_name("collection", collection)
        with self._tx() as cur:
            cur.execute(f"SELECT count(*) FROM {self._q}.documents WHERE collection = %s", (collection,))
            row = cur.fetchone()
        return 0 if row is None else int(str(row[0]))

    def append(self, log: str, records: Sequence[LogRecord]) -> AppendResult:
        """Append records atomically, skipping duplicates and refusing conflicts (neither is written).

        A key repeated inside ``records`` counts once; a second copy with another payload is a conflict.
        """
        check_name("log", log)
        digests = check_records(records)
        keys = list(dict.fromkeys(rec.key for rec in records))
        q = self._q
        with self._tx() as cur:
            cur.execute(f"INSERT INTO {q}.logs (log, last_seq) VALUES (%s, 0) ON CONFLICT (log) DO NOTHING", (log,))
            cur.execute(f"SELECT last_seq FROM {q}.logs WHERE log = %s FOR UPDATE", (log,))
            row = cur.fetchone()
            base = 0 if row is None else int(str(row[0]))
            cur.execute(f"SELECT key, digest FROM {q}.log_records WHERE log = %s AND key = ANY(%s)", (log, keys))
            existing = {str(key): bytes(value) for key, value in cur.fetchall()}  # type: ignore[call-overload]
            plan = plan_append(records, existing, digests)
            if plan.insert:
                copy_sql = f"COPY {q}.log_records (log, seq, key, ts_ms, partition, payload, digest) FROM STDIN"
                with cur.copy(copy_sql) as copy:
                    for n, i in enumerate(plan.insert, start=1):
                        r = records[i]
                        copy.write_row((log, base + n, r.key, r.ts_ms, r.partition, r.payload, digests[i]))
                cur.execute(f"UPDATE {q}.logs SET last_seq = %s WHERE log = %s", (base + len(plan.insert), log))
        return plan.result

    def read(
        self, log: str, *, after_seq: int = 0, k: int = 1000, partition: str | None = None
    ) -> list[LogRecord]:
        """Up to ``k`` records with ``seq > after_seq`` in append order, optionally of one partition."""
        check_name("log", log)
        check_read(after_seq, k, partition)
        sql = f"SELECT key, ts_ms, payload, partition, seq FROM {self._q}.log_records WHERE log = %s AND seq > %s"
        with self._tx() as cur:
            if partition is None:
                cur.execute(sql + " ORDER BY seq LIMIT %s", (log, after_seq, k))
            else:
                cur.execute(sql + " AND partition = %s ORDER BY seq LIMIT %s", (log, after_seq, partition, k))
            rows = cur.fetchall()
        return [LogRecord(*row) for row in rows]  # type: ignore[arg-type]

    def log_count(self, log: str) -> int:
        """Number of records in a log (its last seq: logs are append-only and seqs have no gaps)."""
        check_name("log", log)
        with self._tx() as cur:
            cur.execute(f"SELECT last_seq FROM {self._q}.logs WHERE log = %s", (log,))
            row = cur.fetchone()
        return 0 if row is None else int(str(row[0]))

    def close(self) -> None:
        """Close the connection; the data stays. Later calls raise StorageError."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with self._guard():
                    conn.close()
