"""Run every baseline on Beauty, Toys (seqrec) and Diginetica (sessions); write a table beside the
published numbers (results/baselines.md) and the raw results (results/baselines.json).

Usage: .venv/bin/python benchmarks/quality/run_baselines.py [--data ../shared/data] [--models pop,itemknn]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.runner import evaluate
from shopkeep.models.registry import create_model

HERE = Path(__file__).resolve().parent
BASELINES = ["pop", "itemknn", "als", "segment_pop"]
DATASETS = [
    ("amazon-beauty-5core-seq", "seqrec"),
    ("amazon-toys-5core-seq", "seqrec"),
    ("diginetica-cikm16/srgnn_split", "sessions"),
]
# shared/data/PUBLISHED_RESULTS.md: section 2a (S3-Rec full ranking), 2b (ICLRec), 3a (SR-GNN).
PUBLISHED = {
    "Beauty": [
        (
            "PopRec (S3-Rec table; counts test items)",
            {"hr@5": 0.0080, "ndcg@5": 0.0044, "hr@10": 0.0152, "ndcg@10": 0.0068, "hr@20": 0.0217, "ndcg@20": 0.0084},
        ),
        (
            "SASRec (S3-Rec table)",
            {"hr@5": 0.0387, "ndcg@5": 0.0249, "hr@10": 0.0605, "ndcg@10": 0.0318, "hr@20": 0.0902, "ndcg@20": 0.0394},
        ),
        (
            "S3-Rec",
            {"hr@5": 0.0387, "ndcg@5": 0.0244, "hr@10": 0.0647, "ndcg@10": 0.0327, "hr@20": 0.0994, "ndcg@20": 0.0414},
        ),
        (
            "ICLRec (released checkpoint)",
            {"hr@5": 0.0500, "ndcg@5": 0.0326, "hr@10": 0.0744, "ndcg@10": 0.0403, "hr@20": 0.1058, "ndcg@20": 0.0483},
        ),
    ],
    "Toys_and_Games": [
        ("PopRec (S3-Rec table; counts test items)", {"hr@10": 0.0113, "ndcg@10": 0.0061, "hr@20": 0.0163}),
        (
            "ICLRec (released checkpoint)",
            {"hr@5": 0.0598, "ndcg@5": 0.0404, "hr@10": 0.0834, "ndcg@10": 0.0480, "hr@20": 0.1138, "ndcg@20": 0.0557},
        ),
    ],
    "diginetica-cikm16": [("SR-GNN (P@20 from PaddleRec README, MRR@20 secondary)", {"p@20": 0.507, "mrr@20": 0.1759})],
}
SEQ_COLS = ["hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "ndcg@20"]
SES_COLS = ["p@20", "mrr@20", "hr@10", "ndcg@10"]


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "–"


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"# Baselines (full ranking) on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
    ]
    for name in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == name]
        cols = SES_COLS if rows[0]["protocol"] == "sessions" else SEQ_COLS
        lines += [
            f"## {name} ({rows[0]['protocol']}, fingerprint {rows[0]['fingerprint']})",
            "",
            "| model | " + " | ".join(cols) + " | val " + rows[0]["val_metric"] + " | train s | eval s | command |",
            "|---|" + "---|" * (len(cols) + 4),
        ]
        for r in rows:
            lines.append(
                f"| {r['model']} | "
                + " | ".join(_fmt(r.get(c)) for c in cols)
                + f" | {_fmt(r['validation'].get(r['val_metric']))} | {r['train_seconds']:.1f}"
                f" | {r['eval_seconds']:.1f} | `{r['command']}` |"
            )
        for label, numbers in PUBLISHED.get(name, []):
            lines.append(f"| published: {label} | " + " | ".join(_fmt(numbers.get(c)) for c in cols) + " | | | | |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(HERE.parents[2] / "shared" / "data"))
    parser.add_argument("--models", default=",".join(BASELINES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    console = Console(stderr=True)
    results = []
    for sub, fmt in DATASETS:
        ds = load_dataset(Path(args.data) / sub, fmt)  # type: ignore[arg-type]
        for name in args.models.split(","):
            with console.status(f"{name} on {ds.name}"):
                model = create_model(name)
                if "seed" in model.get_config():
                    model = create_model(name, seed=args.seed)
                result = evaluate(model, ds, seed=args.seed).to_dict()
            result["val_metric"] = "ndcg@10" if fmt == "seqrec" else "mrr@20"
            result["command"] = (
                f"shopkeep evaluate --data ../shared/data/{sub} --format {fmt} --model {name} --seed {args.seed} --json"
            )
            console.print(
                f"{name:12s} {ds.name:18s} "
                + " ".join(f"{k}={result[k]:.4f}" for k in (SES_COLS if fmt == "sessions" else SEQ_COLS))
            )
            results.append(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "baselines.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    (out / "baselines.md").write_text(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
