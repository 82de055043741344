"""Elasticity on the real Dominick's orange-juice panel, plus small synthetic checks of the estimator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shopkeep.cli.main import main
from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.offers.elasticity import (
    DemandModel,
    OJPanel,
    empirical_bayes,
    holdout_evaluation,
    load_orange_juice,
    naive_forecast,
)
from shopkeep.offers.priors import ElasticityPrior


def _synthetic(true_own: float = -2.5, stores: int = 12, weeks: int = 60, seed: int = 0) -> OJPanel:
    rng = np.random.default_rng(seed)
    n = stores * weeks * 2
    store = np.repeat(np.arange(stores), weeks * 2)
    brand = np.tile(np.repeat([1, 2], weeks), stores)
    week = np.tile(np.tile(np.arange(weeks), 2), stores)
    lp = np.log(rng.uniform(0.02, 0.06, size=(n, 11)))
    deal = (rng.random(n) < 0.2).astype(float)
    feat = (rng.random(n) < 0.1).astype(float)
    own = lp[np.arange(n), brand - 1]
    cross = lp[np.arange(n), np.where(brand == 1, 1, 0)]
    y = 5.0 + 0.3 * store + true_own * own + 0.4 * cross + 0.2 * deal + 0.5 * feat + rng.normal(0, 0.1, n)
    return OJPanel(store.astype(np.int64), brand.astype(np.int64), week.astype(np.int64), y, lp, deal, feat)


def test_recovers_known_own_and_cross_price_effects() -> None:
    model = DemandModel().fit(_synthetic())
    for e in model.elasticities_:
        assert abs(e.elasticity + 2.5) < 4 * e.se < 0.1
        assert e.ci_low < e.elasticity < e.ci_high
    assert abs(model.elasticities_[0].cross["price2"] - 0.4) < 0.05


def test_empirical_bayes_pulls_noisy_estimates_more() -> None:
    est = np.array([-1.0, -3.0, -2.0, -2.2, -1.8])
    se = np.array([2.0, 0.05, 0.1, 0.1, 0.1])
    shrunk, tau2, mu = empirical_bayes(est, se, mean=-2.0)
    assert tau2 > 0
    assert abs(shrunk[0] - mu) < abs(est[0] - mu) * 0.2  # the noisy one moves most of the way
    assert abs(shrunk[1] - est[1]) < 0.05  # the precise one barely moves


def test_naive_forecast_is_mean_of_previous_four_weeks() -> None:
    p = _synthetic(stores=1, weeks=6)
    fc = naive_forecast(p)
    rows = np.where(p.brand == 1)[0]
    assert np.isnan(fc[rows[0]])
    assert fc[rows[5]] == pytest.approx(np.mean(p.logmove[rows[1:5]]))


def test_predict_before_fit_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        DemandModel().predict(_synthetic(stores=1, weeks=3))
    bad = tmp_path / "orangeJuice_yx.csv"
    header = "store,brand,week,logmove," + ",".join(f"price{i}" for i in range(1, 12)) + ",deal,feat"
    bad.write_text(header + "\n" + "2,1,40,9.0," + ",".join(["0.03"] * 11) + ",1,0\n2,1,41,x,"
                   + ",".join(["0.03"] * 11) + ",0,0\n")
    with pytest.raises(ValidationError) as exc:
        load_orange_juice(tmp_path)
    assert exc.value.line == 3
    with pytest.raises(ValidationError, match="missing columns"):
        (tmp_path / "h.csv").write_text("store,brand\n1,1\n")
        load_orange_juice(tmp_path / "h.csv")


def test_orange_juice_elasticities_and_holdout(shared_data: Path) -> None:
    panel = load_orange_juice(shared_data / "dominicks-bayesm")
    model = DemandModel().fit(panel)
    assert len(model.elasticities_) == 11
    for e in model.elasticities_:
        # Outer band of published refrigerated-OJ own-price elasticities (issue #6).
        assert -5.5 <= e.elasticity <= -1.0, e
        assert e.ci_high < 0 and e.ci_low < e.elasticity < e.ci_high
    _, report = holdout_evaluation(panel, weeks=20)
    assert report.n_test > 15000
    assert report.rmse_model < report.rmse_naive


def test_cli_elasticity_json(shared_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["offers", "elasticity", "--data", str(shared_data / "dominicks-bayesm"), "--json",
                 "--save", str(tmp_path / "prior.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    prior = ElasticityPrior.load(tmp_path / "prior.json")
    assert prior.version == out["saved_prior"]["version"] and len(prior.elasticities) == 11
    assert prior.lookup("Tropicana Premium 64oz")[1] == "fitted: Tropicana Premium 64oz"
    assert all(-5.5 <= e < 0 for e in prior.elasticities.values())
    assert {"elasticity", "ci_low", "ci_high"} <= set(out["brands"][0])
    assert out["out_of_sample"]["rmse_model"] < out["out_of_sample"]["rmse_naive"]
