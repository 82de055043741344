"""Core value types, the error tree and the config tree."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopkeep.config import load_config
from shopkeep.errors import ConfigError, ConflictError, ValidationError
from shopkeep.types import Money, parse_timestamp


def test_money_arithmetic_keeps_integer_minor_units() -> None:
    assert Money(1999, "USD") + Money(1, "USD") == Money(2000, "USD")
    assert Money(500, "EUR") * 3 == Money(1500, "EUR")
    assert Money.from_major("24.99", "usd") == Money(2499, "USD")
    assert Money.from_major(0.285, "USD") == Money(29, "USD")
    assert Money(1050, "JPY").format() == "1050 JPY"


def test_money_refuses_floats_mixed_currencies_and_bad_codes() -> None:
    with pytest.raises(ValidationError) as exc:
        Money.parse({"amount": 24.99, "currency": "USD"})
    assert exc.value.field == "price.amount" and exc.value.value == 24.99
    with pytest.raises(ValidationError, match="currency"):
        Money.parse({"amount": 5, "currency": "dollars"})
    with pytest.raises(ConflictError):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(ValidationError):
        Money(True, "USD")  # type: ignore[arg-type]


def test_timestamps_must_be_aware_and_become_utc() -> None:
    ts = parse_timestamp("2026-11-25T13:00:00+01:00")
    assert ts == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="UTC offset"):
        parse_timestamp("2026-11-25T12:00:00")
    with pytest.raises(ValidationError, match="ISO 8601"):
        parse_timestamp("yesterday")


def test_validation_error_truncates_huge_values() -> None:
    err = ValidationError("title", "x" * 10_000, "too long")
    assert len(err.message) < 300 and err.to_dict()["code"] == "invalid_input"


def test_config_file_then_env_override(tmp_path: Path) -> None:
    path = tmp_path / "shopkeep.toml"
    path.write_text('[storage]\nuri = "sqlite:///x.db"\n[serving]\nport = 9000\n')
    cfg = load_config(path, env={"SHOPKEEP_SERVING__PORT": "9100"})
    assert cfg.storage.uri == "sqlite:///x.db" and cfg.serving.port == 9100


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SHOPKEEP_SERVING__PORT": "eighty"}, "serving.port"),
        ({"SHOPKEEP_SERVING__NOPE": "1"}, "serving.nope"),
        ({"SHOPKEEP_BOGUS__X": "1"}, "bogus"),
        ({"SHOPKEEP_STORAGE__URI": "just-a-path"}, "storage.uri"),
    ],
)
def test_config_errors_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(env=env)
    assert exc.value.details["key"] == key


def test_import_shopkeep_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, shopkeep, shopkeep.cli.main;"
        "mods = ('torch', 'implicit', 'pyarrow', 'psycopg', 'redis', 'scipy');"
        "heavy = [m for m in mods if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
