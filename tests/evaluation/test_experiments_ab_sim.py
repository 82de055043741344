"""The simulated lift-of-1:1 experiment and ``shopkeep experiments report --json``."""

from __future__ import annotations

import json

import pytest

from shopkeep.cli.main import main
from shopkeep.errors import ValidationError
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


def test_click_models_and_the_session_ablation() -> None:
    """The first version's intent-free click model is kept for comparison; under the mission model the
    1:1 arm reads the visit's first click and earns more than the segment arm in ground truth, and
    taking the session away from it (the ablation) costs it most of that lead."""
    small = dict(n_items=400, n_shoppers=600, n_days=10, visits=3, seed=2)
    mission = run_ab_sim(ABSimConfig(**small)).to_dict()  # type: ignore[arg-type]
    blind = run_ab_sim(ABSimConfig(**small, personal_session=False)).to_dict()  # type: ignore[arg-type]
    free = run_ab_sim(ABSimConfig(**small, click_model="intent_free")).to_dict()  # type: ignore[arg-type]
    rev = {name: {a: d["expected"][a]["revenue_per_visit"] for a in d["expected"]}
           for name, d in (("mission", mission), ("blind", blind), ("free", free))}
    assert rev["mission"]["personalized"] > 1.2 * rev["mission"]["segment"], rev
    assert rev["blind"]["personalized"] < rev["mission"]["personalized"], rev
    assert rev["blind"]["segment"] == pytest.approx(rev["mission"]["segment"]), "segment arms never read sessions"
    for d in (mission, free):
        o = d["oracle"]
        assert o["one_to_one"]["revenue_per_visit"] >= o["true_segment"]["revenue_per_visit"] \
            >= o["one_for_all"]["revenue_per_visit"], o
    with pytest.raises(ValidationError):
        ABSimConfig(click_model="telepathy")
