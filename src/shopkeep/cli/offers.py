"""``shopkeep offers``: elasticity from scanner data, the offer-policy simulation and what-if frontiers."""

from __future__ import annotations

import argparse
import json
import platform
from typing import Any

__all__ = ["register", "run_elasticity"]


def register(sub: Any) -> None:
    """Add the ``offers`` sub-command and its actions."""
    p: argparse.ArgumentParser = sub.add_parser("offers", help="offer decisions: elasticity, simulation, what-if")
    acts = p.add_subparsers(dest="offers_command", required=True, metavar="ACTION")
    e = acts.add_parser("elasticity", help="log-log demand elasticities on Dominick's orange juice")
    e.add_argument("--data", required=True, help="folder holding orangeJuice_yx.csv (or the file)")
    e.add_argument("--holdout-weeks", type=int, default=20, help="last weeks held out for the forecast test")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=run_elasticity)


def run_elasticity(args: argparse.Namespace) -> int:
    """Fit on all weeks for the elasticities, and on all but the last weeks for the forecast error."""
    from rich.console import Console
    from rich.table import Table

    from shopkeep.errors import ValidationError
    from shopkeep.offers.elasticity import DemandModel, brand_table, holdout_evaluation, load_orange_juice

    if args.holdout_weeks < 1:
        raise ValidationError("--holdout-weeks", args.holdout_weeks, "must be >= 1")
    console = Console(stderr=True)
    with console.status("reading and fitting ..."):
        panel = load_orange_juice(args.data)
        model = DemandModel().fit(panel)
        _, report = holdout_evaluation(panel, weeks=args.holdout_weeks)
    out = {
        "data": str(args.data), "rows": len(panel), "method": "per-brand log-log OLS, store fixed effects, "
        "11 log prices + deal + feat; cluster-robust (store) 95% CI; EB shrinkage of store slopes to brand "
        "and of brands to the category mean",
        "brands": brand_table(model),
        "out_of_sample": {"holdout_weeks": report.weeks, "n_test": report.n_test,
                          "rmse_model": round(report.rmse_model, 4), "rmse_naive": round(report.rmse_naive, 4),
                          "mae_model": round(report.mae_model, 4), "mae_naive": round(report.mae_naive, 4),
                          "naive": "mean of the store-brand's previous 4 observed weeks"},
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    table = Table("brand", "name", "elasticity", "95% CI", "shrunk", "store tau")
    brands: list[dict[str, Any]] = brand_table(model)
    for r in brands:
        table.add_row(str(r["brand"]), str(r["name"]), f"{r['elasticity']:.3f}",
                      f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]", f"{r['shrunk']:.3f}", f"{r['store_tau']:.3f}")
    Console().print(table)
    Console().print(f"holdout {report.weeks} weeks: RMSE model {report.rmse_model:.4f}"
                    f" vs naive {report.rmse_naive:.4f}")
    return 0
