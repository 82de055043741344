"""``shopkeep demo``: build the synthetic store, ingest it, train, evaluate and show recommendations."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``demo`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("demo", help="run the end-to-end demo on a synthetic store")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo (grows as the engine lands)."""
    from rich.console import Console

    Console().print(f"[bold]shopkeep demo[/bold] (seed {args.seed})")
    return 0
