"""Tune ItemKNNRecommender's hyper-parameters on the VALIDATION splits only (coordinate descent).

Usage: .venv/bin/python benchmarks/quality/tune_itemknn.py [--data ../shared/data] [--rounds 2]
       [--model session_knn --only diginetica]   (session_knn also tunes the repeat term)

Validation metric per protocol: seqrec NDCG@10, sessions MRR@20 (Diginetica: 10,000 sampled
validation cases, seed 0). Prints one line per tried setting and the best setting per dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.protocols import make_split
from shopkeep.evaluation.runner import make_validate_fn
from shopkeep.models.itemknn import ItemKNNRecommender, SessionKNNRecommender

GRID: dict[str, list[Any]] = {
    "window": [1, 2, 3, 5],
    "decay": [0.3, 0.5, 0.8],
    "backward": [0.0, 0.25, 0.5, 1.0],
    "alpha": [0.3, 0.5, 0.7],
    "history_len": [1, 3, 5, 10],
    "recency": [0.3, 0.5, 0.8],
}
REPEAT_GRID: dict[str, list[Any]] = {"repeat_weight": [0.6, 1.2, 2.4], "repeat_decay": [0.6, 0.8, 0.9, 1.0]}
DATASETS = [
    ("amazon-beauty-5core-seq", "seqrec"),
    ("amazon-toys-5core-seq", "seqrec"),
    ("diginetica-cikm16/srgnn_split", "sessions"),
]


def tune(folder: Path, fmt: str, rounds: int, cls: type[ItemKNNRecommender] = ItemKNNRecommender) -> dict[str, Any]:
    """Coordinate descent from ``cls``'s defaults; returns the best config and its validation score."""
    ds = load_dataset(folder, fmt)  # type: ignore[arg-type]
    split = make_split(ds, fmt)  # type: ignore[arg-type]
    validate = make_validate_fn(split.validation.subsample(10_000, seed=0), split.protocol)
    best = cls().get_config()
    best_score = validate(cls(**best).fit(split.fit_train))
    grid = {**GRID, **REPEAT_GRID} if cls is SessionKNNRecommender else GRID
    print(f"{ds.name} start {best} -> {best_score:.5f}", flush=True)
    for _ in range(rounds):
        for name, values in grid.items():
            for value in values:
                if value == best[name]:
                    continue
                trial = {**best, name: value}
                score = validate(cls(**trial).fit(split.fit_train))
                print(f"{ds.name} {name}={value} -> {score:.5f}", flush=True)
                if score > best_score:
                    best, best_score = trial, score
    print(f"{ds.name} BEST {best} -> {best_score:.5f}", flush=True)
    return {"dataset": ds.name, "config": best, "validation": best_score}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", help="substring of the dataset folder to tune on")
    parser.add_argument("--model", choices=["itemknn", "session_knn"], default="itemknn")
    args = parser.parse_args()
    for sub, fmt in DATASETS:
        if args.only and args.only not in sub:
            continue
        tune(
            Path(args.data) / sub,
            fmt,
            args.rounds,
            SessionKNNRecommender if args.model == "session_knn" else ItemKNNRecommender,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
