"""A real store per test, parametrized over memory, SQLite (a file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopkeep.storage import Store, open_store


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
    uri, schema = store_uri(request.param, request, tmp_path)
    opened = open_store(uri)
    try:
        yield opened
    finally:
        opened.close()
        drop_schema(request, schema)
