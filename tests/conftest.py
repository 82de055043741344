"""Shared test fixtures: real services and research data, skipped with a reason when absent.

CI sets SHOPKEEP_REQUIRE_SERVICES=1 and SHOPKEEP_REQUIRE_DATA=1, which turn those skips into failures.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopkeep.storage import Store, open_store

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHOPKEEP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str, *, kind: str) -> None:
    """Skip the test with ``reason`` unless ``condition``; fail instead when CI requires ``kind``."""
    if condition:
        return
    if _flag(f"SHOPKEEP_REQUIRE_{kind.upper()}"):
        pytest.fail(f"required by SHOPKEEP_REQUIRE_{kind.upper()}=1 but unavailable: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_uri() -> str:
    """URI of the real PostgreSQL server (database ``test``), or skip/fail."""
    uri = os.environ.get("SHOPKEEP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432", kind="services")
    return uri


@pytest.fixture(scope="session")
def redis_uri() -> str:
    """URI of the real Redis server (db 15, flushed by tests that use it), or skip/fail."""
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379", kind="services")
    return os.environ.get("SHOPKEEP_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The research datasets folder ../shared/data, or skip/fail."""
    need(SHARED_DATA.is_dir(), f"research data folder {SHARED_DATA} is absent", kind="data")
    return SHARED_DATA


def store_uri(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """The URI for a fresh store of ``kind`` and, for PostgreSQL, the schema to drop afterwards."""
    if kind == "memory":
        return "memory://", None
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db", None
    base = request.getfixturevalue("postgres_uri")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    return f"{base}{'&' if '?' in base else '?'}schema={schema}", schema


def drop_schema(request: pytest.FixtureRequest, schema: str | None) -> None:
    """Remove a per-test PostgreSQL schema."""
    if schema is None:
        return
    import psycopg

    with psycopg.connect(request.getfixturevalue("postgres_uri"), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A real store per test, parametrized over memory, SQLite (a file) and PostgreSQL (a fresh schema)."""
    uri, schema = store_uri(request.param, request, tmp_path)
    opened = open_store(uri)
    try:
        yield opened
    finally:
        opened.close()
        drop_schema(request, schema)
