"""Crash safety, small: 2 SIGKILLs of a real server during ingestion of 400 events (issue #8, item 2).

The full-size run and its table: benchmarks/reliability/crash_test.py and results.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def crash_module() -> ModuleType:
    """benchmarks/reliability/crash_test.py as a module (benchmarks/ is not a package)."""
    path = ROOT / "benchmarks" / "reliability" / "crash_test.py"
    spec = importlib.util.spec_from_file_location("shopkeep_crash_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.services
@pytest.mark.slow
def test_no_acknowledged_event_is_lost_or_stored_twice_across_sigkills(tmp_path: Path, redis_uri: str) -> None:
    """Every acknowledged event is in the log exactly once with the clean run's payload and sessions."""
    crash = crash_module()
    result = crash.run(tmp_path, n_events=400, kills=2, seed=5, batch=20, redis_url=redis_uri)
    print(result)
    assert result.kills == 2
    assert result.retried_batches >= 1  # at least one kill hit a batch in flight
    assert result.acknowledged == result.events == 400
    assert result.stored == result.acknowledged and result.missing == 0
    assert result.duplicate_keys == 0
    assert result.payload_diff == 0, "a stored payload or partition differs from the clean run's"
    assert result.sessions_diff == 0, "sessionization differs from the clean run's"
    assert result.online_keys > 0 and result.slates_compared == 20


@pytest.mark.services
def test_without_kills_the_comparison_finds_no_difference(tmp_path: Path, redis_uri: str) -> None:
    """The harness itself: a run without kills equals the clean run in every respect (so diffs mean crashes)."""
    crash = crash_module()
    result = crash.run(tmp_path, n_events=200, kills=0, seed=6, batch=20, redis_url=redis_uri)
    assert result.kills == 0 and result.retried_batches == 0
    assert result.ok, result
