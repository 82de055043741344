"""``shopkeep catalog audit|extract|feed``: catalog hygiene and the answer-engine product feed.

* ``audit`` — findings of :func:`~shopkeep.catalog.audit.audit_catalog`; exit 1 when any is an error.
* ``extract`` — attribute proposals; nothing is written unless ``--approve ID ...`` or
  ``--approve-all`` (then only proposals at or above ``--min-confidence``).
* ``feed`` — schema.org Product JSON lines to ``--out`` (or stdout), then ``check_feed`` on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "run_audit", "run_extract", "run_feed"]


def register(sub: Any) -> None:
    """Add the ``catalog`` sub-command and its actions."""
    p: argparse.ArgumentParser = sub.add_parser("catalog", help="catalog hygiene: audit, extraction, product feed")
    acts = p.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    a = acts.add_parser("audit", help="missing/inconsistent attributes, duplicates, price floors, ranges")
    a.add_argument("--store", help="store URI (default: storage.uri of the config)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--max-shown", type=int, default=30, help="findings listed in the table")
    a.set_defaults(handler=run_audit)
    e = acts.add_parser("extract", help="propose attributes from titles/descriptions/ingredients")
    e.add_argument("--store", help="store URI (default: storage.uri of the config)")
    e.add_argument("--min-confidence", type=float, default=0.0, help="drop proposals below this confidence")
    e.add_argument("--approve", nargs="+", metavar="ID", help="write these proposal ids")
    e.add_argument("--approve-all", action="store_true", help="write every shown proposal")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=run_extract)
    f = acts.add_parser("feed", help="write the schema.org Product feed (JSON lines) and check it")
    f.add_argument("--store", help="store URI (default: storage.uri of the config)")
    f.add_argument("--out", help="output file (default: stdout)")
    f.add_argument("--base-url", default="", help="product page URL prefix, e.g. https://shop.example/products/")
    f.set_defaults(handler=run_feed)


def _store(args: argparse.Namespace) -> Any:
    from shopkeep.config import load_config
    from shopkeep.storage import open_store

    return open_store(args.store or load_config(getattr(args, "config", None)).storage.uri)


def run_audit(args: argparse.Namespace) -> int:
    """Audit the stored catalog."""
    from rich.console import Console
    from rich.table import Table

    from shopkeep.catalog.audit import audit_catalog
    from shopkeep.catalog.repository import CatalogRepository

    store = _store(args)
    try:
        with Console(stderr=True).status("auditing the catalog ..."):
            report = audit_catalog(CatalogRepository(store).iter_items())
    finally:
        store.close()
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        console = Console(highlight=False, soft_wrap=True)
        console.print(f"{report.n_items} active items, {len(report.findings)} findings: {report.counts}")
        table = Table("severity", "kind", "items", "field", "message")
        for f in report.findings[:args.max_shown]:
            table.add_row(f.severity, f.kind, ", ".join(f.item_ids), f.field, f.message)
        console.print(table)
    return 1 if any(f.severity == "error" for f in report.findings) else 0


def run_extract(args: argparse.Namespace) -> int:
    """List proposals; write the approved ones."""
    from rich.console import Console
    from rich.table import Table

    from shopkeep.catalog.extract import apply_proposals, propose
    from shopkeep.catalog.repository import CatalogRepository

    store = _store(args)
    try:
        repo = CatalogRepository(store)
        found = propose(repo.iter_items(), min_confidence=args.min_confidence)
        ids = [p.proposal_id for p in found] if args.approve_all else list(args.approve or [])
        applied = apply_proposals(repo, ids).applied if ids else ()
    finally:
        store.close()
    if args.json:
        print(json.dumps({"proposals": [p.to_dict() for p in found], "applied": [p.proposal_id for p in applied]}))
        return 0
    console = Console(highlight=False, soft_wrap=True)
    table = Table("id", "field", "value", "confidence", "source", "evidence")
    for p in found[:50]:
        table.add_row(p.proposal_id, p.field, str(p.value), f"{p.confidence:.2f}", p.source, p.evidence)
    console.print(table)
    console.print(f"{len(found)} proposals; {len(applied)} written" + ("" if applied else " (approve to write)"))
    return 0


def run_feed(args: argparse.Namespace) -> int:
    """Write the feed, then prove it matches the catalog; exit 1 on any mismatch."""
    from rich.console import Console

    from shopkeep.catalog.jsonld import check_feed, product_feed
    from shopkeep.catalog.repository import CatalogRepository

    store = _store(args)
    try:
        repo = CatalogRepository(store)
        docs = list(product_feed(repo.iter_items(), base_url=args.base_url))
        lines = "".join(json.dumps(d) + "\n" for d in docs)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(lines)
        else:
            sys.stdout.write(lines)
        mismatches = check_feed(docs, repo.iter_items(include_inactive=True))
    finally:
        store.close()
    console = Console(stderr=True, highlight=False)
    console.print(f"{len(docs)} products in the feed; {len(mismatches)} mismatches with the catalog")
    for m in mismatches[:20]:
        console.print(f"{m.item_id}: {m.field}: {m.message}", markup=False)
    return 1 if mismatches else 0
