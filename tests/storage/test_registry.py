"""The URI registry: schemes, errors, and lazy imports of the optional drivers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shopkeep.errors import ConfigError
from shopkeep.storage import open_online_state, open_store
from shopkeep.storage.memory import MemoryOnlineState, MemoryStore
from shopkeep.storage.sqlite import SQLiteStore


def test_importing_storage_imports_no_driver() -> None:
    code = "import sys, shopkeep.storage; print(sorted(m for m in ('psycopg', 'redis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("uri", ["ftp://x", "no-scheme", "sqlite:///", "sqlite://rel/path", "redis://h:1/0"])
def test_bad_store_uri_is_a_config_error_naming_it(uri: str) -> None:
    with pytest.raises(ConfigError) as exc:
        open_store(uri)
    assert uri in exc.value.message


@pytest.mark.parametrize("uri", ["sqlite:///x.db", "postgresql://h/db", "nothing"])
def test_bad_online_uri_is_a_config_error_naming_it(uri: str) -> None:
    with pytest.raises(ConfigError) as exc:
        open_online_state(uri)
    assert uri in exc.value.message


def test_memory_uris_open_fresh_instances() -> None:
    a, b = open_store("memory://"), open_store("memory://")
    assert isinstance(a, MemoryStore) and a is not b
    assert isinstance(open_online_state("memory://"), MemoryOnlineState)


def test_sqlite_relative_and_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = open_store("sqlite:///a/b/rel.db")
    absolute = open_store(f"sqlite:///{tmp_path}/c/abs.db")
    try:
        assert isinstance(rel, SQLiteStore) and rel.uri == "sqlite:///a/b/rel.db"
        assert (tmp_path / "a" / "b" / "rel.db").is_file()
        assert (tmp_path / "c" / "abs.db").is_file()
    finally:
        rel.close()
        absolute.close()


def test_postgres_schema_name_is_validated() -> None:
    with pytest.raises(ConfigError, match="Robert'; DROP"):
        open_store("postgresql://postgres@127.0.0.1:1/test?schema=Robert'; DROP")


def test_unreachable_postgres_is_a_storage_error_without_password() -> None:
    from shopkeep.errors import StorageError

    with pytest.raises(StorageError) as exc:
        open_store("postgresql://app:hunter2@127.0.0.1:1/test?connect_timeout=2")
    assert "hunter2" not in exc.value.message and "***" in exc.value.message


def test_redis_replies_are_parsed_by_hiredis() -> None:
    """hiredis is a declared dependency: redis-py must pick its C reply parser (about a fifth less CPU per
    online-state call on the serving path than the pure-Python parser)."""
    import redis.utils

    assert redis.utils.HIREDIS_AVAILABLE
