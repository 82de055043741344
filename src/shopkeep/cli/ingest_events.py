"""``shopkeep ingest events FILE``: stream a JSONL event file into the store's event log.

Exit code 0 when every line was stored or was a replay, 1 when lines were rejected or refused as
conflicts (in ``reject`` mode nothing from the file was stored then; in ``skip`` mode the good lines
were).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["MAX_SHOWN", "run"]

MAX_SHOWN = 20


def run(args: argparse.Namespace) -> int:
    """Run ``ingest events`` with the parsed arguments; returns the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

    from shopkeep.config import load_config
    from shopkeep.pipeline.ingest import Ingestor, default_parse_workers
    from shopkeep.storage import open_store

    console = Console(highlight=False, soft_wrap=True)
    config = load_config(getattr(args, "config", None))
    store = open_store(args.store or config.storage.uri)
    try:
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"ingesting {args.file}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            ingestor = Ingestor(store, config, parse_workers=default_parse_workers())
            report = ingestor.ingest_jsonl(args.file, on_error=args.on_error, progress=tick)
    finally:
        store.close()
    _summary(console, report, args)
    return 0 if report.rejected == 0 and report.conflicts == 0 else 1


def _summary(console: Any, report: Any, args: argparse.Namespace) -> None:
    from rich.table import Table

    table = Table(title=f"ingest events {args.file} (--on-error {args.on_error})")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    rate = report.seen / report.seconds if report.seconds > 0 else 0.0
    for name, value in (("stored", report.accepted), ("duplicates (replays, unchanged)", report.duplicates),
                        ("conflicts (refused)", report.conflicts), ("rejected lines", report.rejected),
                        ("logins linked", report.logins_linked)):
        table.add_row(name, f"{value:,}")
    table.add_row("seconds", f"{report.seconds:.2f} ({rate:,.0f} events/s)")
    console.print(table)
    if not report.stored:
        console.print("[bold red]nothing was stored[/]: --on-error reject and the file has bad lines")
    problems = [*report.errors, *report.conflict_errors]
    problems.sort(key=lambda e: e.details.get("line") or 0)
    for err in problems[:MAX_SHOWN]:
        console.print(err.message, markup=False)
    hidden = report.rejected + report.conflicts - min(len(problems), MAX_SHOWN)
    if hidden > 0:
        console.print(f"... and {hidden:,} more")
