"""``shopkeep ingest catalog FILE``: validate a catalog file and upsert it into the store.

Exit code 0 when every row was accepted, 1 when rows were rejected (in ``reject`` mode nothing was
stored then; in ``skip`` mode the good rows were).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["MAX_SHOWN", "run"]

MAX_SHOWN = 20


def run(args: argparse.Namespace) -> int:
    """Run ``ingest catalog`` with the parsed arguments; returns the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from shopkeep.catalog.loaders import detect_format
    from shopkeep.catalog.mapping import load_mapping
    from shopkeep.catalog.repository import CatalogRepository
    from shopkeep.config import load_config
    from shopkeep.storage import open_store

    console = Console(highlight=False, soft_wrap=True)
    path = Path(args.file)
    fmt = detect_format(path, args.format)
    mapping = load_mapping(args.mapping) if args.mapping else None
    uri = args.store or load_config(getattr(args, "config", None)).storage.uri
    store = open_store(uri)
    try:
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn()]
        if fmt != "parquet":
            columns.insert(2, DownloadColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"reading {path.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = CatalogRepository(store).ingest_file(
                path, format=fmt, mapping=mapping, on_error=args.on_error, progress=progress
            )
    finally:
        store.close()
    load = result.load
    console.print(f"{path}: {load.rows} rows, {load.valid} valid, {len(load.rejected)} rejected ({args.on_error})")
    if result.upsert is not None:
        up = result.upsert
        console.print(f"stored in {uri}: {len(up.inserted)} new, {len(up.updated)} updated, "
                      f"{len(up.unchanged)} unchanged")
    else:
        console.print(f"nothing stored in {uri}: the file has rejected rows (use --on-error skip to keep the rest)")
    for err in load.rejected[:MAX_SHOWN]:
        console.print(str(err), markup=False)
    if len(load.rejected) > MAX_SHOWN:
        console.print(f"... and {len(load.rejected) - MAX_SHOWN} more rejected rows")
    return 1 if load.rejected else 0
