"""``shopkeep offers``: elasticity from scanner data, the offer-policy simulation and what-if frontiers."""

from __future__ import annotations

import argparse
import json
import platform
from typing import Any

__all__ = ["register", "run_elasticity", "run_simulate"]


def register(sub: Any) -> None:
    """Add the ``offers`` sub-command and its actions."""
    p: argparse.ArgumentParser = sub.add_parser("offers", help="offer decisions: elasticity, simulation, what-if")
    acts = p.add_subparsers(dest="offers_command", required=True, metavar="ACTION")
    e = acts.add_parser("elasticity", help="log-log demand elasticities on Dominick's orange juice")
    e.add_argument("--data", required=True, help="folder holding orangeJuice_yx.csv (or the file)")
    e.add_argument("--holdout-weeks", type=int, default=20, help="last weeks held out for the forecast test")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=run_elasticity)
    m = acts.add_parser("simulate", help="compare offer policies on frozen simulated worlds")
    m.add_argument("--configs", default="responsive,thin_margin,fatigued", help="comma-separated configurations")
    m.add_argument("--seeds", type=int, default=10, help="seeds per configuration")
    m.add_argument("--log-shoppers", type=int, default=4000, help="shoppers in each randomized logging world")
    m.add_argument("--eval-shoppers", type=int, default=1500, help="fresh shoppers each policy is judged on")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(handler=run_simulate)


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


def run_simulate(args: argparse.Namespace) -> int:
    """Run every policy on every configuration and seed; print the report."""
    import time

    from rich.console import Console
    from rich.progress import Progress

    from shopkeep.errors import ValidationError
    from shopkeep.offers.simulation import POLICIES, run_simulation
    from shopkeep.simulate.pricing import CONFIGS

    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in names if c not in CONFIGS]
    if bad or not names:
        raise ValidationError("--configs", ",".join(bad) or args.configs, f"known: {', '.join(CONFIGS)}")
    for flag, value in (("--seeds", args.seeds), ("--log-shoppers", args.log_shoppers),
                        ("--eval-shoppers", args.eval_shoppers)):
        if value < 1:
            raise ValidationError(flag, value, "must be >= 1")
    started = time.perf_counter()
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("simulating", total=len(names) * args.seeds * len(POLICIES))
        report = run_simulation(names, tuple(range(args.seeds)), n_log=args.log_shoppers, n_eval=args.eval_shoppers,
                                progress=lambda msg: bar.update(task, advance=1, description=msg))
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["python"] = platform.python_version()
    if args.json:
        print(json.dumps(report))
        return 0
    console = Console()
    for name, res in report["configs"].items():
        console.print(f"[bold]{name}[/bold]: stack beats all non-oracle = {res['beats_all_non_oracle']}, "
                      f"oracle gain captured = {res['oracle_gain_captured']}")
        for pol, r in res["policies"].items():
            console.print(f"  {pol:15s} margin {r['contribution_margin']:10.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                          f"  conv {r['conversion']:.4f}  spend {r['discount_spend']:.2f}"
                          f"  violations {r['violations']}")
    return 0
