"""Storage backends chosen by URI through a lazy registry.

``open_store`` understands ``memory://``, ``sqlite:///relative/path`` (``sqlite:////abs/path``,
``sqlite:///:memory:``) and ``postgresql://...[?schema=NAME]``; ``open_online_state`` understands
``memory://`` and ``redis://host:port/db[?prefix=P]``. Backends are imported on first use, so
importing shopkeep.storage imports neither psycopg nor redis. Every ``memory://`` open is a new,
empty instance.

>>> store = open_store("memory://")
>>> store.put_many("items", {"sku1": {"title": "Mug"}})
>>> store.get_many("items", ["sku1", "nope"])
{'sku1': {'title': 'Mug'}}
>>> open_store("mongodb://x")
Traceback (most recent call last):
...
shopkeep.errors.ConfigError: unsupported storage URI 'mongodb://x': expected memory://, sqlite:///path or postgresql://...
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shopkeep.errors import ConfigError
from shopkeep.storage.base import AppendResult, DocumentStore, EventLog, LogRecord, OnlineState, Store, iter_collection

__all__ = [
    "AppendResult",
    "DocumentStore",
    "EventLog",
    "LogRecord",
    "OnlineState",
    "Store",
    "iter_collection",
    "open_online_state",
    "open_store",
    "split_query_param",
]


def split_query_param(uri: str, name: str) -> tuple[str, str | None]:
    """``uri`` without the query parameter ``name``, and that parameter's value (None if absent).

    >>> split_query_param("postgresql://h/db?schema=s1&sslmode=off", "schema")
    ('postgresql://h/db?sslmode=off', 's1')
    """
    parts = urlsplit(uri)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    values = [value for key, value in pairs if key == name]
    rest = urlencode([(key, value) for key, value in pairs if key != name])
    return urlunsplit(parts._replace(query=rest)), (values[-1] if values else None)


def _scheme(uri: object, what: str) -> str:
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError(f"{what} URI {uri!r} has no scheme (expected e.g. memory://)", {"key": "uri", "value": uri})
    return uri.split("://", 1)[0].lower()


def open_store(uri: str) -> Store:
    """The durable :class:`Store` for ``uri``; ConfigError names an unsupported or malformed URI."""
    scheme = _scheme(uri, "storage")
    if scheme == "memory":
        from shopkeep.storage.memory import MemoryStore

        return MemoryStore(uri)
    if scheme == "sqlite":
        from shopkeep.storage.sqlite import SQLiteStore

        if not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///"):
            raise ConfigError(
                f"storage URI {uri!r}: expected sqlite:///relative/path or sqlite:////absolute/path",
                {"key": "uri", "value": uri},
            )
        return SQLiteStore(uri[len("sqlite:///") :], uri=uri)
    if scheme in ("postgresql", "postgres"):
        from shopkeep.storage.postgres import PostgresStore

        dsn, schema = split_query_param(uri, "schema")
        return PostgresStore(dsn, schema=schema or "public", uri=uri)
    raise ConfigError(
        f"unsupported storage URI {uri!r}: expected memory://, sqlite:///path or postgresql://...",
        {"key": "uri", "value": uri},
    )


def open_online_state(uri: str) -> OnlineState:
    """The :class:`OnlineState` for ``uri``; ConfigError names an unsupported or malformed URI."""
    scheme = _scheme(uri, "online state")
    if scheme == "memory":
        from shopkeep.storage.memory import MemoryOnlineState

        return MemoryOnlineState(uri)
    if scheme in ("redis", "rediss", "unix"):
        from shopkeep.storage.redis_state import RedisOnlineState

        url, prefix = split_query_param(uri, "prefix")
        return RedisOnlineState(url, prefix=prefix or "", uri=uri)
    raise ConfigError(
        f"unsupported online state URI {uri!r}: expected memory:// or redis://host:port/db",
        {"key": "uri", "value": uri},
    )
