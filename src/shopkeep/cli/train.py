"""``shopkeep train``: fit models on the stored event log and write a new artifact version.

The version also holds the learned re-ranker (LightGBM; see ``pipeline.ranker_training``: from served
slates joined to clicks when there are enough, else next-item requests on a later window than its
retrievers) unless ``--no-ranker`` or ``ranking.learned = false``; the summary says which, or why not.

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
    p.add_argument("--no-ranker", action="store_true", help="do not train the learned re-ranker")
    p.add_argument("--ranker-trees", type=int, default=None, help="boosting rounds per head (default ranking.trees)")
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
            manifest = train_artifacts(store, root, names, progress=lambda msg: status.update(msg),
                                       ranker=config.ranking.learned and not args.no_ranker,
                                       ranker_params=_ranker_params(config, args))
    finally:
        store.close()
    summary = {"version": manifest.version, "path": f"{root}/{manifest.version}", "models": list(manifest.models),
               "items": len(manifest.item_ids), "sequences": manifest.n_sequences,
               "interactions": manifest.n_interactions, "fingerprint": manifest.fingerprint,
               "train_seconds": dict(manifest.train_seconds), "ranker": manifest.ranker}
    if args.json:
        print(json.dumps(summary))
    else:
        Console().print(f"[green]trained[/green] {', '.join(manifest.models)} -> {summary['path']} "
                        f"({summary['items']:,} items, {summary['sequences']:,} sequences, "
                        f"fingerprint {manifest.fingerprint})")
        rk = manifest.ranker or {"mode": "not trained", "reason": "--no-ranker or ranking.learned = false"}
        Console().print(f"re-ranker: {rk['mode']}" + (f" ({rk['n_train']:,} train / {rk['n_calibration']:,} "
                                                      f"calibration requests, {rk['seconds']:.1f} s)"
                                                      if rk["mode"] in ("slates", "next_item") else
                                                      f" ({rk.get('reason', '')})"))
    return 0


def _ranker_params(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from shopkeep.ranking import Objective

    cfg = config.ranking
    return {"trees": args.ranker_trees or cfg.trees, "return_cost_fraction": cfg.return_cost_fraction,
            "objective": Objective(cfg.relevance, cfg.margin, cfg.conversion, cfg.version)}
