"""The simulated lift-of-1:1 experiment and ``shopkeep experiments report --json``."""

from __future__ import annotations

import json

import pytest

from shopkeep.cli.main import main
from shopkeep.evaluation.ab_sim import ABSimConfig, run_ab_sim

SMALL = ABSimConfig(n_items=400, n_shoppers=600, n_days=10, visits=3, seed=2)


def test_ab_sim_report_is_consistent() -> None:
    doc = run_ab_sim(SMALL).to_dict()
    assert sum(doc["exposures"].values()) == 600 and not doc["srm"]["mismatch"]
    rows = {(m["metric"], m["arm"], m["cuped"]): m for m in doc["metrics"]}
    assert len(rows) == 2 * 3 * 2
    for m in doc["metrics"]:
        assert m["ci_low"] <= m["mean"] <= m["ci_high"]
        assert m["diff_ci_low"] <= m["diff"] <= m["diff_ci_high"]
        assert m["mean"] >= 0.0 and (m["metric"] == "revenue_per_visit" or m["mean"] <= 1.0)
    exp = doc["expected"]
    # Personalized slates (1:1 and segment) earn more than one slate for everyone, in ground truth.
    assert exp["personalized"]["revenue_per_visit"] > exp["popularity"]["revenue_per_visit"]
    assert exp["segment"]["revenue_per_visit"] > exp["popularity"]["revenue_per_visit"]
    # The measured means are noisy estimates of those expectations.
    for arm in ("personalized", "segment", "popularity"):
        m = rows[("conversion", arm, False)]
        half = (m["ci_high"] - m["ci_low"]) / 2
        assert abs(m["mean"] - exp[arm]["conversion"]) < 3 * half
    assert {g["arm"] for g in doc["guardrails"]} == {"personalized", "segment"}


def test_same_seed_same_report() -> None:
    a, b = run_ab_sim(SMALL).to_dict(), run_ab_sim(SMALL).to_dict()
    assert a["metrics"] == b["metrics"] and a["expected"] == b["expected"]


def test_experiments_report_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["experiments", "report", "--json", "--items", "300", "--shoppers", "300", "--days", "5",
                 "--aa-runs", "200"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"srm", "metrics", "guardrails", "expected", "exposures", "aa"} <= set(doc)
    assert 0.0 <= doc["aa"]["false_positive_rate"] <= 0.2
