"""``shopkeep serve``: the HTTP service over the configured store (uvicorn, one or more workers).

API keys are required unless ``--no-auth`` is given on a loopback address: ``shopkeep keys create
--scopes read,ingest`` prints a key and its hashed entry for ``SHOPKEEP_SERVING__API_KEYS`` (or
``serving.api_keys`` / ``serving.api_keys_file`` in the config file). With ``--workers`` > 1 every
worker must see the same hot state, so the online state must be Redis (``--online redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["LOOPBACK", "check_serve_args", "register", "run", "serve"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Seconds a worker may go without answering uvicorn's supervisor ping (startup included) before it is restarted.
STARTUP_TIMEOUT_S = 300


def register(sub: Any) -> None:
    """Add the ``serve`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("serve", help="run the HTTP recommendation service")
    p.add_argument("--store", help="storage URI (default: storage.uri of the config)")
    p.add_argument("--online", help="online state URI: memory:// (one worker) or redis://host:port/db[?prefix=P]")
    p.add_argument("--host", help="address to bind (default: serving.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default: serving.port, 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (> 1 needs --online redis://...)")
    p.add_argument("--artifacts", help="artifacts root written by `shopkeep train` (default: serving.artifacts_dir)")
    p.add_argument("--watch", type=float, default=5.0,
                   help="seconds between checks for newer artifacts to hot-swap to (0: never)")
    p.add_argument("--retrieval-k", type=int, default=500, help="candidates fused per request (cost ~ linear)")
    p.add_argument("--no-auth", action="store_true", help="turn API keys off (loopback addresses only)")
    p.set_defaults(handler=run)


def check_serve_args(workers: int, online: str, host: str, auth: bool) -> None:
    """Refuse settings that cannot work: several workers on in-process state, no auth off loopback."""
    from shopkeep.errors import ValidationError

    if workers < 1:
        raise ValidationError("--workers", workers, "must be >= 1")
    if workers > 1 and not online.startswith(("redis://", "rediss://", "unix://")):
        raise ValidationError("--online", online, f"--workers {workers} needs a shared online state: the in-process "
                              "memory:// state is per worker, so an event posted to one worker would be invisible "
                              "to the others; pass --online redis://127.0.0.1:6379/0")
    if not auth and host not in LOOPBACK:
        raise ValidationError("--no-auth", host, "authentication may only be turned off on a loopback address")


def serve(*, config_file: str | None, store: str, online: str, host: str, port: int, workers: int,
          artifacts: str, auth: bool, watch_s: float, api_keys: str | None = None, retrieval_k: int = 500) -> None:
    """Run uvicorn until interrupted (the app is built per worker by shopkeep.serving.asgi)."""
    import uvicorn

    check_serve_args(workers, online, host, auth)
    os.environ.update({
        "SHOPKEEP_STORAGE__URI": store, "SHOPKEEP_ONLINE_URI": online,
        "SHOPKEEP_SERVING__AUTH": "true" if auth else "false", "SHOPKEEP_SERVING__ARTIFACTS_DIR": artifacts,
        "SHOPKEEP_WATCH_S": str(watch_s), "SHOPKEEP_RETRIEVAL_K": str(retrieval_k),
    })
    if config_file:
        os.environ["SHOPKEEP_CONFIG_FILE"] = config_file
    if api_keys is not None:
        os.environ["SHOPKEEP_SERVING__API_KEYS"] = api_keys
    # uvicorn kills a worker that does not answer its supervisor's ping within timeout_worker_healthcheck
    # (default 5 s): a worker loading a 100k-item catalog on a busy machine missed it and was killed and
    # restarted, again and again; the engine loads in the worker before it serves, so allow for that.
    uvicorn.run("shopkeep.serving.asgi:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, loop="uvloop", http="httptools",
                timeout_worker_healthcheck=STARTUP_TIMEOUT_S)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    from shopkeep.config import load_config

    config = load_config(args.config)
    host = args.host or config.serving.host
    port = args.port or config.serving.port
    online = args.online or config.storage.online_uri
    store = args.store or config.storage.uri
    auth = not args.no_auth
    check_serve_args(args.workers, online, host, auth)
    print(f"shopkeep serving {store} on http://{host}:{port} ({args.workers} worker(s), online state {online}, "
          f"API keys {'required' if auth else 'OFF'})", flush=True)
    serve(config_file=args.config, store=store, online=online, host=host, port=port, workers=args.workers,
          artifacts=args.artifacts or config.serving.artifacts_dir, auth=auth, watch_s=args.watch,
          retrieval_k=args.retrieval_k)
    return 0
