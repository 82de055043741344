"""``shopkeep evaluate``: fit a model on a research dataset under its protocol and print the metrics.

With ``--json`` exactly one JSON object goes to stdout; progress always goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add ``evaluate``."""
    p: argparse.ArgumentParser = sub.add_parser("evaluate", help="measure a model on a seqrec/sessions dataset")
    p.add_argument("--data", required=True, help="dataset folder (or seqrec <Name>.txt file)")
    p.add_argument("--format", required=True, choices=["seqrec", "sessions"], help="dataset format = protocol")
    p.add_argument(
        "--model",
        help="registered model name (default: the best shipped one: sasrec_knn seqrec, sasrec_session_knn sessions)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="model hyper-parameter, value parsed as JSON when possible (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--truncate", "--max-len", dest="truncate", type=int, help="cut every validation/test input to its last H items"
    )
    p.add_argument("--max-validation-cases", type=int, help="subsample the validation cases (seeded)")
    p.add_argument("--save", help="directory to save the fitted model to")
    p.set_defaults(handler=run)


def _params(pairs: list[str]) -> dict[str, Any]:
    from shopkeep.errors import ValidationError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValidationError("--param", pair, "expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _build_model(name: str, params: dict[str, Any], seed: int) -> Any:
    from shopkeep.models.registry import create_model

    model = create_model(name, **params)
    if "seed" in model.get_config() and "seed" not in params:
        model = create_model(name, **{**params, "seed": seed})
    return model


def run(args: argparse.Namespace) -> int:
    """Load, fit, validate, test; print a table (or JSON with ``--json``)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from shopkeep.evaluation.datasets import load_dataset
    from shopkeep.evaluation.runner import run_evaluation
    from shopkeep.models.registry import best_model

    err = Console(stderr=True)
    name = args.model or best_model(args.format)
    with err.status(f"loading {args.data}"):
        dataset = load_dataset(Path(args.data), args.format)
    err.print(
        f"[bold]{dataset.name}[/] ({dataset.fingerprint}): {len(dataset.sequences)} sequences, "
        f"{dataset.n_items} items; model [bold]{name}[/], seed {args.seed}"
    )
    model = _build_model(name, _params(args.param), args.seed)
    tasks: dict[str, TaskID] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        err.print("fitting (validation drives early stopping/choices) ...")
        result, tested = run_evaluation(
            model,
            dataset,
            args.format,
            seed=args.seed,
            truncate=args.truncate,
            max_validation_cases=args.max_validation_cases,
            progress=progress,
        )
    if args.save:
        tested.save(Path(args.save))
        err.print(f"saved to {args.save}")
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), sort_keys=True) + "\n")
    else:
        _print_table(err, result.to_dict())
    return 0


def _print_table(console: Any, doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{doc['model']} on {doc['dataset']} ({doc['protocol']}, seed {doc['seed']})")
    table.add_column("metric")
    table.add_column("test", justify="right")
    table.add_column("validation", justify="right")
    for key in sorted(k for k in doc if "@" in k):
        table.add_row(key, f"{doc[key]:.4f}", f"{doc['validation'].get(key, float('nan')):.4f}")
    Console().print(table)
    console.print(
        f"train {doc['train_seconds']:.1f}s, eval {doc['eval_seconds']:.1f}s, config {doc['config']} "
        f"({doc['config_hash']}), versions {doc['versions']}"
    )
