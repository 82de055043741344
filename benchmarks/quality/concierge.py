"""Concierge ask policies (never / always three / information gain) with simulated shoppers.

Run: .venv/bin/python benchmarks/quality/concierge.py [--items 5000] [--shoppers 300] [--seed 7]
Prints success (a shown product meets the hidden goal), mean turns, success per turn and the number
of answered products that broke a stated constraint (must be 0). Encoder: hashing (no ML extra needed).
"""

from __future__ import annotations

import argparse
import platform

from rich.console import Console
from rich.table import Table

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.concierge.evaluate import draw_goals, simulate
from shopkeep.search import SearchConfig, Searcher
from shopkeep.simulate import StoreConfig, generate_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--shoppers", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    console = Console()
    shop = generate_store(StoreConfig(n_items=args.items, n_shoppers=5, n_days=1, seed=args.seed))
    searcher = Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(shop.items))
    goals = draw_goals(searcher, args.shoppers, args.seed)
    table = Table(title=f"concierge ask policies: {args.items} items, {len(goals)} shoppers, seed {args.seed}, "
                        f"python {platform.python_version()}")
    for col in ("policy", "success", "mean turns", "success / turn", "constraint violations"):
        table.add_column(col)
    with console.status("simulating shoppers"):
        for policy in ("never", "always", "gain"):
            r = simulate(searcher, policy, goals)
            table.add_row(policy, f"{r.success:.3f}", f"{r.mean_turns:.2f}", f"{r.success_per_turn:.3f}",
                          str(r.violations))
    console.print(table)


if __name__ == "__main__":
    main()
