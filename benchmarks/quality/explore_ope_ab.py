"""Exploration figures: off-policy estimator validation and the simulated lift-of-1:1 A/B test.

Usage: nice .venv/bin/python benchmarks/quality/explore_ope_ab.py [--seed 0] [--datasets 500] [--shoppers 3000]

Prints (markdown) the bias/RMSE of IPS, SNIPS, DR and slate IPS against the simulator's true value
(:mod:`shopkeep.evaluation.ope_validation`), then per-arm conversion and revenue per visit with 95%
CIs and the ground-truth expectations (:mod:`shopkeep.evaluation.ab_sim`). CPU only; timings in seconds.
"""

from __future__ import annotations

import argparse
import platform

from shopkeep.evaluation.ab_sim import ABSimConfig, run_ab_sim
from shopkeep.evaluation.ope_validation import validate_ope


def main() -> int:
    """Run both and print the tables."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datasets", type=int, default=500)
    p.add_argument("--shoppers", type=int, default=3000)
    args = p.parse_args()
    print(f"seed {args.seed}; python {platform.python_version()} on {platform.machine()} ({platform.processor()})")
    ope = validate_ope(n_datasets=args.datasets, seed=args.seed)
    print(f"\n## Off-policy estimators ({args.datasets} datasets x 5000 decisions, {ope.config['seconds']} s)\n")
    print(f"true value {ope.true_value:.5f} (slate {ope.true_slate_value:.5f}); "
          f"logging policy's value {ope.config['logging_value']:.5f}\n")
    print("| estimator | mean | bias | relative bias | RMSE |\n|---|---|---|---|---|")
    for name, st in ope.estimators.items():
        print(f"| {name} | {st.mean:.5f} | {st.bias:+.5f} | {st.relative_bias:+.2%} | {st.rmse:.5f} |")
    ab = run_ab_sim(ABSimConfig(n_shoppers=args.shoppers, seed=args.seed))
    print(f"\n## Lift of 1:1 ({args.shoppers} shoppers, {ab.meta['seconds']} s; SRM p={ab.srm['p_value']:.3f})\n")
    print("| metric | arm | n | mean [95% CI] | lift vs popularity | p | expected (truth) |")
    print("|---|---|---|---|---|---|---|")
    for m in ab.metrics:
        if m["cuped"]:
            continue
        print(f"| {m['metric']} | {m['arm']} | {m['n']} | {m['mean']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}] "
              f"| {m['relative_lift']:+.1%} | {m['p_value']:.4f} | {ab.expected[m['arm']][m['metric']]:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
