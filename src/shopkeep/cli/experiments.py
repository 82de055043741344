"""``shopkeep experiments``: ``report`` runs the simulated lift-of-1:1 experiment and prints its report.

``shopkeep experiments report --json`` prints one JSON object: exposures per arm, the sample-ratio
check, per-arm conversion and revenue per visit with 95% CIs (plain and CUPED), the revenue guardrail,
and the ground-truth expected values (see :mod:`shopkeep.evaluation.ab_sim`). ``--aa-runs N`` adds an
A/A validation on the same shoppers' pre-period revenue. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run_report"]


def register(sub: Any) -> None:
    """Add ``experiments`` and its sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser("experiments", help="A/B experiments: simulated report, A/A check")
    inner = p.add_subparsers(dest="experiments_command", required=True, metavar="SUBCOMMAND")
    r = inner.add_parser("report", help="report of a simulated A/B test (personalized vs segment vs popularity)")
    r.add_argument("--items", type=int, default=2000, help="catalog size (default 2000)")
    r.add_argument("--shoppers", type=int, default=3000, help="shoppers = randomization units (default 3000)")
    r.add_argument("--days", type=int, default=30, help="simulated history in days (default 30)")
    r.add_argument("--visits", type=int, default=4, help="test visits per shopper (default 4)")
    r.add_argument("--k", type=int, default=10, help="slate length (default 10)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    r.add_argument("--aa-runs", type=int, default=0, help="also run an A/A validation with this many re-splits")
    r.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    r.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Run the simulated experiment and print the report."""
    from rich.console import Console

    from shopkeep.evaluation.ab_sim import ABSimConfig, run_ab_sim

    err = Console(stderr=True)
    config = ABSimConfig(n_items=args.items, n_shoppers=args.shoppers, n_days=args.days, k=args.k,
                         visits=args.visits, seed=args.seed)
    with err.status("simulating") as status:
        result = run_ab_sim(config, progress=lambda msg: status.update(msg))
        doc = result.to_dict()
        if args.aa_runs > 0:
            status.update(f"A/A validation ({args.aa_runs} re-splits)")
            doc["aa"] = _aa(args, result.pre_period)
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"experiment {doc['experiment']} seed {args.seed}: exposures {doc['exposures']}, "
          f"SRM p={doc['srm']['p_value']:.3f}{' MISMATCH' if doc['srm']['mismatch'] else ''}")
    for m in doc["metrics"]:
        tag = " (CUPED)" if m["cuped"] else ""
        print(f"  {m['metric']}{tag:8s} {m['arm']:13s} n={m['n']:5d} {m['mean']:.4f} "
              f"[{m['ci_low']:.4f}, {m['ci_high']:.4f}]  lift {m['relative_lift']:+.1%}  p={m['p_value']:.4f}")
    for g in doc["guardrails"]:
        print(f"  guardrail {g['metric']} {g['arm']}: worst {g['worst_relative_change']:+.1%} "
              f"({'pass' if g['passed'] else 'FAIL'})")
    print(f"  expected (ground truth, all shoppers): {json.dumps(doc['expected'])}")
    if "aa" in doc:
        print(f"  A/A false-positive rate {doc['aa']['false_positive_rate']:.4f} over {doc['aa']['n_runs']} runs")
    return 0


def _aa(args: argparse.Namespace, pre: dict[str, float]) -> dict[str, Any]:
    from dataclasses import asdict

    from shopkeep.evaluation.experiments import aa_false_positive_rate

    ids = sorted(pre)
    return asdict(aa_false_positive_rate(ids, [pre[i] for i in ids], n_runs=args.aa_runs, seed=args.seed))
