"""Complement quality on the Groceries baskets (shared/data/groceries-arules/groceries.csv).

Protocol: baskets are shuffled with ``--seed`` and 20% held out. Rules are mined from the other 80%.
For each held-out basket with at least two distinct items, one item (chosen with the seed) is hidden
and ranked from the rest, which form the cart: ``complements`` (association rules alone),
``complements+popular`` (the cart Retriever: complements, backfilled by popularity) and ``popular``
(training-basket counts). Cart items are never candidates. HR@10 and MRR (over the whole ranking; an
item a list does not contain counts 0) are fractions in [0, 1].

    .venv/bin/python benchmarks/quality/complements.py [--data PATH] [--seed 0] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features.context import Context, ContextRequest
from shopkeep.retrieval import AssociationRules, ComplementsSource, PopularSource, Retriever
from shopkeep.types import Event, EventType, Item

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "groceries-arules" / "groceries.csv"


#: Rule-mining settings compared (support count >= 2 in both).
RULE_SETTINGS: dict[str, dict[str, Any]] = {
    "count>=2, lift>=1.2": {"min_count": 2, "min_lift": 1.2},
    "count>=2, lift>=1.0": {"min_count": 2, "min_lift": 1.0},
    "count>=2, any lift": {"min_count": 2, "min_lift": 0.0},
}


def read_baskets(path: Path) -> list[list[str]]:
    """One basket per CSV line; item names stripped, duplicates inside a basket dropped."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [list(dict.fromkeys(x.strip() for x in row if x.strip())) for row in csv.reader(fh)]


def split(baskets: Sequence[list[str]], seed: int, holdout: float = 0.2) -> tuple[list[list[str]], list[list[str]]]:
    """Seeded shuffle, then the last ``holdout`` share is the test part."""
    order = list(range(len(baskets)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * (1.0 - holdout))
    return [baskets[i] for i in order[:cut]], [baskets[i] for i in order[cut:]]


def _popular(snap: CatalogSnapshot, train: Sequence[list[str]]) -> PopularSource:
    t = datetime(2020, 1, 1, tzinfo=UTC)
    events = [Event(f"e{n}", EventType.PURCHASE, t, item_id=i) for n, b in enumerate(train) for i in b]
    # no time decay (one timestamp): plain purchase counts
    return PopularSource(snap, global_weight=0.0).fit(events)


def evaluate(
    baskets: Sequence[list[str]], seed: int = 0, k: int = 10, **rule_params: Any
) -> dict[str, dict[str, float]]:
    """HR@k and MRR of each method on the held-out baskets (see the module docstring)."""
    train, test = split(baskets, seed)
    names = sorted({i for b in baskets for i in b})
    snap = CatalogSnapshot.from_items([Item(n, n) for n in names])
    rules = AssociationRules(**{"min_count": 2, "min_confidence": 0.0, "min_lift": 1.0, **rule_params}).fit(train)
    comp = ComplementsSource(rules, snap)
    pop = _popular(snap, train)
    methods = {"complements": comp, "complements+popular": Retriever([comp], fallback=pop), "popular": pop}
    rng = random.Random(seed + 1)
    hits: dict[str, list[float]] = {m: [] for m in methods}
    rr: dict[str, list[float]] = {m: [] for m in methods}
    for basket in test:
        if len(basket) < 2:
            continue
        target = basket[rng.randrange(len(basket))]
        cart = tuple(i for i in basket if i != target)
        ctx = Context(ContextRequest(surface="cart", cart_item_ids=cart), now_ms=0, cart_items=cart)
        mask = np.ones(snap.n, dtype=bool)
        mask[snap.indices(list(cart))] = False
        for name, method in methods.items():
            ranked = [c.item_id for c in method.retrieve([ctx], [mask], snap.n)[0]]
            pos = ranked.index(target) if target in ranked else -1
            hits[name].append(1.0 if 0 <= pos < k else 0.0)
            rr[name].append(1.0 / (pos + 1) if pos >= 0 else 0.0)
    return {m: {f"HR@{k}": float(np.mean(hits[m])), "MRR": float(np.mean(rr[m])), "n": float(len(hits[m]))}
            for m in methods}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N baskets (0: all)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    baskets = read_baskets(args.data)
    if args.limit:
        baskets = baskets[: args.limit]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Groceries complements, seed {args.seed}, {len(baskets)} baskets, 20% held out")
    for col in ("method", "rules", "HR@10", "MRR", "test baskets"):
        table.add_column(col)
    for label, params in RULE_SETTINGS.items():
        with Console(stderr=True).status(f"rules {label}: mining and ranking held-out items"):
            result = evaluate(baskets, seed=args.seed, **params)
        for name, row in result.items():
            if name != "popular" or label == next(iter(RULE_SETTINGS)):
                table.add_row(name, "-" if name == "popular" else label, f"{row['HR@10']:.4f}", f"{row['MRR']:.4f}",
                              str(int(row["n"])))
    Console().print(table)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()} {platform.system()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
