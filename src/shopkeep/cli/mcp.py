"""``shopkeep mcp [--api URL [--api-key K]] [--http --port P]``: the MCP server for AI shopping agents.

With ``--api`` every tool is a request to that running shopkeep service; without it the configured
store (or ``--store``) is opened here and the same routes run in-process. stdio by default (the
transport MCP clients launch); ``--http`` serves streamable HTTP on ``--host``/``--port`` at ``/mcp``.
Nothing but MCP messages is written to stdout.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``mcp`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("mcp", help="MCP server (stdio or streamable HTTP) for AI agents")
    p.add_argument("--api", help="base URL of a running shopkeep service, e.g. http://127.0.0.1:8000")
    p.add_argument("--api-key", help="API key (scopes read + search) for --api (default: $SHOPKEEP_API_KEY)")
    p.add_argument("--store", help="storage URI when serving in-process (default: storage.uri of the config)")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (with --http)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (with --http)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve the MCP tools until the client disconnects (stdio) or the process is stopped (HTTP)."""
    import logging
    import sys

    from shopkeep.config import load_config
    from shopkeep.serving.mcp_server import build_server, local_client, remote_client

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    engine = None
    if args.api:
        client = remote_client(args.api, args.api_key or os.environ.get("SHOPKEEP_API_KEY"))
    else:
        from dataclasses import replace

        from shopkeep.pipeline.engine import Engine

        config = load_config(args.config)
        if args.store:
            config = replace(config, storage=replace(config.storage, uri=args.store))
        engine = Engine.open(config)
        client = local_client(engine, config)
    server = build_server(client)
    try:
        if args.http:
            server.run("streamable-http", host=args.host, port=args.port)
        else:
            server.run("stdio")
    finally:
        if engine is not None:
            engine.close()
    return 0
