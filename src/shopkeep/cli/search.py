"""``shopkeep search "query" [--store URI] [--json]``: search the stored catalog and show how the query was read.

Opens the configured store (or ``--store``), snapshots the catalog, builds the search index
(``--encoder``: MiniLM by default when installed, else hashing) and prints the hits, the parsed
constraints and any relaxed constraint.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``search`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("search", help="hybrid product search over the stored catalog")
    p.add_argument("query", help='what a shopper types, e.g. "fragrance-free moisturizer under $30"')
    p.add_argument("--store", help="storage URI (default: storage.uri of the config)")
    p.add_argument("--k", type=int, default=10, help="results to show (1-100)")
    p.add_argument("--encoder", choices=["all-MiniLM-L6-v2", "hashing"], help="dense encoder (default: auto)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Search and print; exit 0 with results, 1 when nothing matched even after relaxing."""
    from rich.console import Console
    from rich.table import Table

    from shopkeep.catalog import CatalogRepository
    from shopkeep.catalog.snapshot import CatalogSnapshot
    from shopkeep.config import load_config
    from shopkeep.search import SearchConfig, Searcher, SearchRequest
    from shopkeep.serving.routes_search import default_encoder, response_to_dict
    from shopkeep.storage import open_store

    config = load_config(args.config)
    store = open_store(args.store or config.storage.uri)
    try:
        snapshot = CatalogSnapshot.from_repository(CatalogRepository(store))
    finally:
        store.close()
    searcher = Searcher(SearchConfig(encoder=args.encoder or default_encoder())).fit(snapshot)
    res = searcher.search(SearchRequest(args.query, k=args.k))
    out = response_to_dict(res, snapshot, "cli")
    console = Console(highlight=False, soft_wrap=True)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0 if res.items else 1
    parsed = ", ".join(c["label"] for c in out["parsed"]["constraints"]) or "none"
    console.print(f"understood: {parsed}; text {out['parsed']['text']!r}; sort {out['parsed']['sort']}")
    if out["relaxed"]:
        dropped = ", ".join(r["label"] for r in out["relaxed"])
        console.print(f"[yellow]no product met every constraint; relaxed: {dropped}")
    table = Table("#", "item_id", "title", "price", "why")
    for it in out["items"]:
        price = f"{it['price']['amount'] / 100:.2f} {it['price']['currency']}" if it["price"] else "-"
        table.add_row(str(it["position"] + 1), it["item_id"], it["title"], price, "; ".join(it["reasons"][:2]))
    console.print(table)
    console.print(f"{out['matched']} products matched")
    return 0 if res.items else 1
