"""Returns-aware fit on the synthetic store's apparel and footwear: size-driven returns, usual vs suggested size.

Validation store (seed + 1000) chooses ``step_at``; the test store (``--seed``) is scored once with it.
Each row: mean ground-truth probability that a purchase comes back too small/too large when the
shopper buys their usual size, the size the fit model suggests, and the best size (oracle).

    .venv/bin/python benchmarks/quality/returns_fit.py --shoppers 2000 --days 90 --seed 1
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from shopkeep import __version__
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.evaluation.returns_fit import choose_step, evaluate_fit, fit_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument("--shoppers", type=int, default=2000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    console = Console(width=150)
    t0 = time.perf_counter()
    with console.status("validation store: choosing step_at"):
        step = choose_step(fit_store(args.items, args.shoppers, args.days, args.seed + 1000))
    with console.status("test store: scoring"):
        ev = evaluate_fit(fit_store(args.items, args.shoppers, args.days, args.seed), step_at=step)
    table = Table(title=f"size-driven returns per purchase (seed {args.seed}, step_at {step} chosen on seed "
                        f"{args.seed + 1000}; trained on {ev.train_purchases} purchases, "
                        f"{ev.train_size_returns} size returns)")
    for col in ("department", "purchases scored", "usual size", "suggested size", "oracle size", "drop",
                "changed", "helped", "hurt"):
        table.add_column(col, justify="right")
    for r in ev.rows:
        table.add_row(r.department, str(r.cases), f"{r.usual:.4f}", f"{r.fit:.4f}", f"{r.oracle:.4f}",
                      f"{r.drop:.1%}", str(r.changed), str(r.helped), str(r.hurt))
    console.print(table)
    console.print(f"shopkeep {__version__}; {hardware_summary()}; {time.perf_counter() - t0:.0f} s; "
                  f"store {args.items} items, {args.shoppers} shoppers, {args.days} days")


if __name__ == "__main__":
    main()
