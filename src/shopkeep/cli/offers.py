"""``shopkeep offers``: elasticity from scanner data, the offer-policy simulation and what-if frontiers."""

from __future__ import annotations

import argparse
import json
import platform
from typing import Any

__all__ = ["register", "run_elasticity", "run_fit", "run_simulate", "run_whatif"]


def register(sub: Any) -> None:
    """Add the ``offers`` sub-command and its actions."""
    p: argparse.ArgumentParser = sub.add_parser("offers", help="offer decisions: elasticity, simulation, what-if")
    acts = p.add_subparsers(dest="offers_command", required=True, metavar="ACTION")
    e = acts.add_parser("elasticity", help="log-log demand elasticities on Dominick's orange juice")
    e.add_argument("--data", required=True, help="folder holding orangeJuice_yx.csv (or the file)")
    e.add_argument("--holdout-weeks", type=int, default=20, help="last weeks held out for the forecast test")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--save", help="write the brand elasticities as an elasticity-prior artifact (JSON) here")
    e.set_defaults(handler=run_elasticity)
    f = acts.add_parser("fit", help="fit the uplift model on the randomized exposures in the event log")
    f.add_argument("--store", help="storage URI (default: storage.uri of the config)")
    f.add_argument("--prior", help="elasticity-prior artifact (JSON); default: the Store's latest, else one "
                   "fitted on the exposures' price-only arms")
    f.add_argument("--horizon-days", type=float, default=30.0, help="later purchases counted (pull-forward)")
    f.add_argument("--out", help="also write the uplift model artifact (JSON) here")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(handler=run_fit)
    w = acts.add_parser("whatif", help="margin-versus-conversion frontier over margin weight and discount budget")
    w.add_argument("--config", default="responsive", help="frozen simulated world")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--margin-weights", default="0,0.5,0.8,1", help="comma-separated, each in [0, 1]")
    w.add_argument("--budgets", default="0,100,500,unlimited", help="comma-separated USD (or 'unlimited')")
    w.add_argument("--log-shoppers", type=int, default=4000)
    w.add_argument("--eval-shoppers", type=int, default=800)
    w.add_argument("--plot", help="write the frontier plot (SVG) here")
    w.add_argument("--json", action="store_true", help="print one JSON object")
    w.set_defaults(handler=run_whatif)
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
    saved = None
    if args.save:
        from shopkeep.offers.priors import prior_from_demand_model

        prior = prior_from_demand_model(model, source=f"Dominick's refrigerated OJ ({args.data})")
        saved = {"path": str(prior.save(args.save)), "version": prior.version}
    out = {
        "data": str(args.data), "rows": len(panel), "saved_prior": saved,
        "method": "per-brand log-log OLS, store fixed effects, "
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


def run_fit(args: argparse.Namespace) -> int:
    """Read randomized exposures from the Store, fit prior + uplift model, store the artifact."""
    from rich.console import Console

    from shopkeep.config import load_config
    from shopkeep.errors import NotFoundError, ValidationError
    from shopkeep.offers.exposures import read_exposures
    from shopkeep.offers.priors import ElasticityPrior, prior_from_exposures
    from shopkeep.offers.uplift import UpliftModel
    from shopkeep.storage import open_store

    uri = args.store or load_config(args.config).storage.uri
    store = open_store(uri)
    try:
        with Console(stderr=True).status("reading exposures from the event log ..."):
            exposures = read_exposures(store, horizon_days=args.horizon_days)
        if not exposures:
            raise ValidationError("store", uri, "holds no randomized-arm exposures (offer_shown + decision record)")
        prior: ElasticityPrior | None
        if args.prior:
            prior, how = ElasticityPrior.load(args.prior), f"file {args.prior}"
        else:
            try:
                prior, how = ElasticityPrior.latest(store), "the Store's latest"
            except NotFoundError:
                try:
                    prior, how = prior_from_exposures(exposures), "fitted on the price-only exposures"
                    prior.put(store)
                except ValidationError as exc:
                    prior, how = None, f"none ({exc.reason}): constant -2.5"
        model = UpliftModel(prior=prior).fit(exposures)
        version = model.put(store)
        if args.out:
            from pathlib import Path

            Path(args.out).write_text(json.dumps(model.to_dict()))
    finally:
        store.close()
    out = {"store": uri, "exposures": len(exposures), "uplift_version": version,
           "actions": {a: f.n for a, f in model.fits_.items()}, "base_rate": round(model.base_rate_, 4),
           "prior": {"source": how, "version": prior.version if prior else None,
                     "elasticities": dict(prior.elasticities) if prior else {}}}
    if args.json:
        print(json.dumps(out))
    else:
        Console().print(out)
    return 0


def run_whatif(args: argparse.Namespace) -> int:
    """Print the frontier (and write its SVG with --plot)."""
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from shopkeep.errors import ValidationError
    from shopkeep.offers.whatif import frontier_svg
    from shopkeep.offers.whatif import run_whatif as whatif

    try:
        weights = [float(x) for x in args.margin_weights.split(",") if x.strip()]
        budgets = [None if x.strip() == "unlimited" else float(x) for x in args.budgets.split(",") if x.strip()]
    except ValueError:
        raise ValidationError("--margin-weights/--budgets", f"{args.margin_weights} / {args.budgets}",
                              "must be comma-separated numbers ('unlimited' allowed for budgets)") from None
    with Console(stderr=True).status("learning from the randomized log and playing every setting ..."):
        report = whatif(args.config, args.seed, margin_weights=weights, budgets_usd=budgets,
                        n_log=args.log_shoppers, n_eval=args.eval_shoppers)
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        Path(args.plot).write_text(frontier_svg(report))
        report["plot"] = args.plot
    report["python"] = platform.python_version()
    if args.json:
        print(json.dumps(report))
        return 0
    table = Table("margin weight", "budget", "margin (USD)", "conversion", "spend (USD)", "violations", "frontier")
    for p in report["points"]:
        table.add_row(str(p["margin_weight"]), "unlimited" if p["budget"] is None else f"{p['budget']:,.0f}",
                      f"{p['contribution_margin']:,.2f}", f"{p['conversion']:.4f}", f"{p['discount_spend']:,.2f}",
                      str(p["violations"]), "*" if p["on_frontier"] else "")
    Console().print(table)
    return 0
