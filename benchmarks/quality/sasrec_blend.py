"""Experiment: blend a saved SASRec with itemknn (per-row z-scored scores), weight chosen on validation.

The SASRec artifact must have been fitted on the protocol's train part (``shopkeep evaluate ... --save DIR``).
itemknn is fitted on the train part for the validation phase and refit on train + validation for the test
phase, as the runner does. Prints validation metrics for each weight, then test metrics for the chosen
weight and for each model alone.

Usage: .venv/bin/python benchmarks/quality/sasrec_blend.py --model-dir DIR --data PATH --format sessions
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.metrics import mask_history, metric_table, target_ranks
from shopkeep.evaluation.protocols import Cases, make_split
from shopkeep.models.registry import create_model, load_model

WEIGHTS = (0.0, 0.3, 0.5, 0.7, 0.85, 1.0)


def _z(scores: np.ndarray) -> np.ndarray:
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True) + 1e-6
    return (scores - mean) / std


def blend_ranks(sas: object, knn: object, cases: Cases, weights: Sequence[float], chunk: int = 256) -> np.ndarray:
    """Target ranks ``(len(weights), len(cases))`` of ``w * z(sasrec) + (1 - w) * z(knn)``; each model scored once."""
    out = np.empty((len(weights), len(cases)), dtype=np.int64)
    for lo in range(0, len(cases), chunk):
        hist = list(cases.histories[lo : lo + chunk])
        za, zb = _z(sas.score(hist)), _z(knn.score(hist))  # type: ignore[attr-defined]
        for i, w in enumerate(weights):
            blended = (w * za + (1 - w) * zb).astype(np.float32)
            if cases.exclude_history:
                mask_history(blended, hist)
            out[i, lo : lo + len(hist)] = target_ranks(blended, cases.targets[lo : lo + len(hist)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--format", required=True, choices=["seqrec", "sessions"])
    ap.add_argument("--max-validation-cases", type=int, default=20000)
    args = ap.parse_args()
    metric, k = ("mrr", 20) if args.format == "sessions" else ("ndcg", 10)
    dataset = load_dataset(Path(args.data), args.format)
    split = make_split(dataset, args.format)
    sas = load_model(Path(args.model_dir))
    knn = create_model("itemknn").fit(split.fit_train)
    val = split.validation.subsample(args.max_validation_cases, 0)
    sessions = args.format == "sessions"
    val_ranks = blend_ranks(sas, knn, val, WEIGHTS)
    scores = {}
    for w, ranks in zip(WEIGHTS, val_ranks, strict=True):
        table = metric_table(ranks, [k], sessions=sessions)
        scores[w] = table[f"{metric}@{k}"]
        print(f"validation w={w}: {metric}@{k}={scores[w]:.4f} hr@{k}={table[f'hr@{k}']:.4f}", flush=True)
    best = max(WEIGHTS, key=lambda w: scores[w])
    knn_refit = create_model("itemknn").fit(split.refit_train)
    chosen = sorted({best, 0.0, 1.0})
    for w, ranks in zip(chosen, blend_ranks(sas, knn_refit, split.test, chosen), strict=True):
        table = metric_table(ranks, [10, 20], sessions=sessions)
        shown = {m: round(v, 4) for m, v in table.items() if m in ("hr@10", "ndcg@10", "hr@20", "mrr@20")}
        print(f"test w={w}{' (chosen on validation)' if w == best else ''}: {shown}", flush=True)


if __name__ == "__main__":
    main()
