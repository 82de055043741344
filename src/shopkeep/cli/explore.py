"""``shopkeep explore``: exploration tools. ``validate-ope`` checks the off-policy estimators.

``shopkeep explore validate-ope --json`` prints one JSON object: the simulator's true value of the
target policy and, per estimator (``ips``, ``snips``, ``dr``, ``slate``), its ``bias`` and ``rmse``
over repeated logged datasets (see :mod:`shopkeep.evaluation.ope_validation`). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run_validate_ope"]


def register(sub: Any) -> None:
    """Add ``explore`` and its sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser("explore", help="exploration: off-policy estimator validation")
    inner = p.add_subparsers(dest="explore_command", required=True, metavar="SUBCOMMAND")
    v = inner.add_parser("validate-ope", help="bias and RMSE of IPS/SNIPS/DR/slate IPS against simulator truth")
    v.add_argument("--datasets", type=int, default=500, help="repeated logged datasets (default 500)")
    v.add_argument("--contexts", type=int, default=5000, help="logged decisions per dataset (default 5000)")
    v.add_argument("--arms", type=int, default=30, help="items the policies choose among (default 30)")
    v.add_argument("--shoppers", type=int, default=1000, help="simulated shoppers (default 1000)")
    v.add_argument("--epsilon", type=float, default=0.3, help="slate logging policy's exploration rate")
    v.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    v.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    v.set_defaults(handler=run_validate_ope)


def run_validate_ope(args: argparse.Namespace) -> int:
    """Run the validation and print the result."""
    from rich.console import Console
    from rich.progress import Progress

    from shopkeep.evaluation.ope_validation import validate_ope

    err = Console(stderr=True)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("logged datasets", total=args.datasets)
        result = validate_ope(n_datasets=args.datasets, n_contexts=args.contexts, n_arms=args.arms,
                              n_shoppers=args.shoppers, epsilon=args.epsilon, seed=args.seed,
                              progress=lambda done, _total: bar.update(task, completed=done))
    doc = result.to_dict()
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"true value {doc['true_value']:.5f} (slate {doc['true_slate_value']:.5f}); "
          f"{args.datasets} datasets x {args.contexts} decisions, seed {args.seed}")
    for name, st in doc["estimators"].items():
        print(f"  {name:6s} mean {st['mean']:.5f}  bias {st['bias']:+.5f} ({st['relative_bias']:+.2%})  "
              f"rmse {st['rmse']:.5f}")
    return 0
