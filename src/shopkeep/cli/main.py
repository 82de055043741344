"""The ``shopkeep`` command: one sub-command per module in this package.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (a function taking the parsed namespace and returning an exit code). Heavy imports happen
inside handlers, so ``shopkeep --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from shopkeep import __version__
from shopkeep.errors import ShopkeepError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    from shopkeep.cli import catalog, demo, evaluate, experiments, explore, ingest, mcp, offers, search, serve, train

    parser = argparse.ArgumentParser(prog="shopkeep", description="1:1 retail personalization engine")
    parser.add_argument("--version", action="version", version=f"shopkeep {__version__}")
    parser.add_argument("--config", help="TOML config file (SHOPKEEP_<SECTION>__<KEY> env vars override it)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from shopkeep.cli import (
        keys,  # shopkeep keys create: API keys, config holds hashes (cli/keys.py)
        operators,  # shopkeep operators run: watchers propose (cli/operators.py)
        purge,  # shopkeep purge: event retention (cli/purge.py)
        worker,  # shopkeep worker: bus consumers (cli/worker.py)
    )

    for module in (catalog, demo, evaluate, experiments, explore, ingest, mcp, offers, search, serve, train, worker,
                   operators, keys, purge):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the sub-command; shopkeep errors exit 2 with one line."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ShopkeepError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
