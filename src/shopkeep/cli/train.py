"""``shopkeep train``: fit models on the stored event log and write a new artifact version.

A running ``shopkeep serve`` picks the new version up by itself (it polls the artifacts root) and
swaps to it without dropping a request.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``train`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("train", help="fit models on the event log into versioned artifacts")
    p.add_argument("--store", help="storage URI (default: storage.uri of the config)")
    p.add_argument("--artifacts", help="artifacts root (default: serving.artifacts_dir)")
    p.add_argument("--models", default="itemknn",
                   help="comma-separated models to fit (itemknn is fast; add sasrec for the transformer)")
    p.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Train and print the new version."""
    from rich.console import Console

    from shopkeep.config import load_config
    from shopkeep.errors import ValidationError
    from shopkeep.models.registry import available_models
    from shopkeep.pipeline.artifacts import train_artifacts
    from shopkeep.storage import open_store

    config = load_config(args.config)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in available_models()]
    if unknown or not names:
        raise ValidationError("--models", ",".join(unknown) or args.models,
                              f"unknown; available: {', '.join(available_models())}")
    console = Console(stderr=True)
    store = open_store(args.store or config.storage.uri)
    root = args.artifacts or config.serving.artifacts_dir
    try:
        with console.status("training ...") as status:
            manifest = train_artifacts(store, root, names, progress=lambda msg: status.update(msg))
    finally:
        store.close()
    summary = {"version": manifest.version, "path": f"{root}/{manifest.version}", "models": list(manifest.models),
               "items": len(manifest.item_ids), "sequences": manifest.n_sequences,
               "interactions": manifest.n_interactions, "fingerprint": manifest.fingerprint,
               "train_seconds": dict(manifest.train_seconds)}
    if args.json:
        print(json.dumps(summary))
    else:
        Console().print(f"[green]trained[/green] {', '.join(manifest.models)} -> {summary['path']} "
                        f"({summary['items']:,} items, {summary['sequences']:,} sequences, "
                        f"fingerprint {manifest.fingerprint})")
    return 0
