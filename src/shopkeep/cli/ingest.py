"""``shopkeep ingest catalog|events FILE``: load a file into the configured store with a progress bar."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``ingest catalog`` and ``ingest events``."""
    p: argparse.ArgumentParser = sub.add_parser("ingest", help="load a catalog or an event file")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    cat = kinds.add_parser("catalog", help="load items from CSV, JSONL or Parquet (upsert)")
    cat.add_argument("file", help="path to a .csv, .jsonl/.ndjson or .parquet file")
    cat.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="default: from the file suffix")
    cat.add_argument("--mapping", help="JSON or TOML file mapping our field names to the file's column names")
    cat.add_argument("--on-error", choices=["reject", "skip"], default="reject",
                     help="reject: store nothing if any row is bad; skip: store the good rows")
    cat.add_argument("--store", help="storage URI (default: config storage.uri)")
    cat.set_defaults(handler=_catalog)

    ev = kinds.add_parser("events", help="load shopper events from JSONL (idempotent by event_id)")
    ev.add_argument("file", help="path to a .jsonl/.ndjson file, one event per line")
    ev.add_argument("--on-error", choices=["reject", "skip"], default="skip",
                    help="reject: store nothing if any line is bad; skip: store the good lines")
    ev.add_argument("--store", help="storage URI (default: config storage.uri)")
    ev.set_defaults(handler=_events)


def _catalog(args: argparse.Namespace) -> int:
    from shopkeep.cli.ingest_catalog import run

    return run(args)


def _events(args: argparse.Namespace) -> int:
    from shopkeep.cli.ingest_events import run

    return run(args)
