"""ExperimentBook over every store backend: definitions, first exposures, outcomes and the report."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.evaluation.experiments import ExperimentBook, assign
from shopkeep.storage.base import Store


def test_book_report_matches_the_recorded_outcomes(store: Store) -> None:
    book = ExperimentBook(store)
    book.define("exp-a", ["control", "treat"], "control", guardrails={"revenue": 0.05})
    book.define("exp-b", ["control", "treat"], "control")  # a second experiment shares the collection
    units = [f"u{i}" for i in range(300)]
    now = datetime.now(UTC)
    arms = book.expose("exp-a", units, now, covariates={u: float(i % 7) for i, u in enumerate(units)})
    assert arms == assign(units, "exp-a", ["control", "treat"])
    assert book.expose("exp-a", units[:10], now) == arms[:10], "a unit keeps its first arm"
    book.expose("exp-b", units[:50], now)
    rng = np.random.default_rng(0)
    values = {u: float(rng.normal(1.0 if a == "treat" else 0.0, 1.0)) for u, a in zip(units, arms, strict=True)}
    book.record("exp-a", {u: {"revenue": v} for u, v in values.items()})
    doc = book.report("exp-a")
    counts = {a: arms.count(a) for a in ("control", "treat")}
    assert doc["exposures"] == counts and doc["srm"]["counts"] == counts
    rows = {(m["arm"], m["cuped"]): m for m in doc["metrics"]}
    for arm in ("control", "treat"):
        mine = [values[u] for u, a in zip(units, arms, strict=True) if a == arm]
        assert rows[(arm, False)]["mean"] == pytest.approx(float(np.mean(mine)))
    assert (("treat", True) in rows) and rows[("treat", False)]["diff_ci_low"] > 0
    assert [g["metric"] for g in doc["guardrails"]] == ["revenue"] and doc["guardrails"][0]["passed"]
    assert sum(book.report("exp-b")["exposures"].values()) == 50


def test_book_errors(store: Store) -> None:
    book = ExperimentBook(store)
    with pytest.raises(NotFoundError):
        book.report("missing")
    with pytest.raises(ValidationError, match="arms"):
        book.define("x", ["a"], "a")
    book.define("x", ["a", "b"], "a")
    with pytest.raises(ValidationError, match="unit_id"):
        book.record("x", {"never-seen": {"m": 1.0}})
    with pytest.raises(ValidationError, match="at"):
        book.expose("x", ["u"], datetime(2026, 1, 1))
    assert book.report("x")["srm"] is None
