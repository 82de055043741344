"""The estimators against the synthetic store's ground truth over repeated logged datasets."""

from __future__ import annotations

import json

import pytest

from shopkeep.cli.main import main
from shopkeep.errors import ValidationError
from shopkeep.evaluation.ope_validation import validate_ope


def test_dr_within_five_percent_and_better_than_ips() -> None:
    result = validate_ope(n_datasets=300, n_contexts=5000, seed=0)
    est = result.estimators
    assert abs(est["dr"].relative_bias) < 0.05
    assert est["dr"].rmse < est["ips"].rmse
    assert abs(est["ips"].relative_bias) < 0.05 and abs(est["snips"].relative_bias) < 0.05
    assert abs(est["slate"].relative_bias) < 0.05
    # The problem is not trivial: the logging policy's own value is far from the target's.
    assert result.config["logging_value"] < 0.6 * result.true_value


def test_validate_ope_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "validate-ope", "--json", "--datasets", "20", "--contexts", "500", "--seed", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["estimators"]) == {"ips", "snips", "dr", "slate"}
    assert doc["true_value"] > 0 and all(v["rmse"] > 0 for v in doc["estimators"].values())
    assert doc["config"]["seed"] == 3


def test_bad_sizes_are_named() -> None:
    with pytest.raises(ValidationError, match="n_datasets"):
        validate_ope(n_datasets=1)
