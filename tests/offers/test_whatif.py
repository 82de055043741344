"""What-if frontier: deterministic per seed, budget and margin weight act, SVG from the command and the endpoint."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeep.cli.main import main
from shopkeep.config import load_config
from shopkeep.errors import ValidationError
from shopkeep.offers.whatif import WhatIfPoint, frontier, frontier_svg, run_whatif
from shopkeep.serving.app import create_app

SMALL = {"margin_weights": [0.0, 1.0], "budgets_usd": [0.0, None], "n_log": 1200, "n_eval": 200}


def test_frontier_flags_only_undominated_points() -> None:
    pts = [WhatIfPoint(1.0, None, 100.0, 0.20, 5.0, 0), WhatIfPoint(0.0, None, 90.0, 0.25, 9.0, 0),
           WhatIfPoint(0.5, 0, 80.0, 0.19, 0.0, 0)]
    assert [p.on_frontier for p in frontier(pts)] == [True, True, False]


def test_whatif_is_deterministic_and_budget_zero_spends_nothing() -> None:
    a = run_whatif("responsive", 3, **SMALL)  # type: ignore[arg-type]
    assert a == run_whatif("responsive", 3, **SMALL)  # type: ignore[arg-type]
    pts = {(p["margin_weight"], p["budget"]): p for p in a["points"]}
    assert len(pts) == 4 and all(p["violations"] == 0 for p in pts.values())
    assert pts[(1.0, 0.0)]["discount_spend"] == 0 and pts[(0.0, 0.0)]["discount_spend"] == 0
    # Ranking by revenue (weight 0) with money to spend buys conversion with margin.
    assert pts[(0.0, None)]["conversion"] > pts[(1.0, None)]["conversion"]
    assert pts[(0.0, None)]["discount_spend"] > pts[(1.0, None)]["discount_spend"]
    assert a["frontier"] and all(p["on_frontier"] for p in a["frontier"])
    svg = ET.fromstring(frontier_svg(a))
    assert svg.tag.endswith("svg") and len(svg.findall("{http://www.w3.org/2000/svg}circle")) >= 4
    with pytest.raises(ValidationError):
        run_whatif("responsive", 0, margin_weights=[1.5])
    with pytest.raises(ValidationError):
        run_whatif("nope", 0)


def test_whatif_command_writes_the_plot_and_the_endpoint_serves_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "frontier.svg"
    assert main(["offers", "whatif", "--seed", "3", "--margin-weights", "0,1", "--budgets", "0,unlimited",
                 "--log-shoppers", "1200", "--eval-shoppers", "200", "--plot", str(plot), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plot"] == str(plot) and ET.parse(plot).getroot().tag.endswith("svg")
    assert main(["offers", "whatif", "--budgets", "x"]) == 2
    config = load_config(None, env={"SHOPKEEP_STORAGE__URI": f"sqlite:///{tmp_path}/s.db"})
    body = {"seed": 3, "margin_weights": [0, 1], "budgets": [0, None], "n_log": 1200, "n_eval": 200}
    with TestClient(create_app(config, auth=False)) as client:
        r = client.post("/v1/offers/whatif", json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert [p["contribution_margin"] for p in got["points"]] == [p["contribution_margin"] for p in out["points"]]
        svg = client.post("/v1/offers/whatif", params={"format": "svg"}, json=body)
        assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text == got["svg"]
        bad = client.post("/v1/offers/whatif", json={**body, "n_eval": 10**6})
        assert bad.status_code in (400, 422) and bad.json()["error"]["code"] == "invalid_input"
