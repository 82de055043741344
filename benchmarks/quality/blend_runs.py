"""SASRec + itemknn blend (`sasrec_knn`, default config) on Beauty and Toys, several seeds.

Each run is ``shopkeep evaluate --data DIR --format seqrec --model sasrec_knn --seed S`` done in-process,
plus what the blend chose: validation NDCG@10 per weight, the chosen weight, SASRec's epochs, and the
wall clock of the whole run and the machine's load average before/after (the 20-minute budget is per
seed on this machine). Writes results/blend.json (every run) and results/blend.md.

Usage: .venv/bin/python benchmarks/quality/blend_runs.py [--data ../shared/data] [--seeds 0]
       [--datasets beauty,toys] [--param KEY=JSON ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.runner import run_evaluation
from shopkeep.models.blend import SASRecKNNBlend
from shopkeep.models.registry import create_model

HERE = Path(__file__).resolve().parent
DATASETS = {"beauty": "amazon-beauty-5core-seq", "toys": "amazon-toys-5core-seq"}
TARGETS = {"beauty": {"ndcg@10": 0.055, "hr@10": 0.095}, "toys": {"ndcg@10": 0.060, "hr@10": 0.100}}
# itemknn (results/baselines.md, seed 0, CPU) and SASRec (sasrec_NOTES.md, mean of 3 seeds, GPU): test N@10 / HR@10.
REFERENCE = {"beauty": "itemknn 0.0598 / 0.0924; SASRec 0.0580 / 0.0986", "toys": "itemknn 0.0714 / 0.1090; "
             "SASRec 0.0623 / 0.1022"}


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        out[key] = json.loads(raw)
    return out


def run_one(data: Path, key: str, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    """One evaluation of the blend; the runner's result plus the blend's choices and the wall clock."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    dataset = load_dataset(data / DATASETS[key], "seqrec")
    result, tested = run_evaluation(create_model("sasrec_knn", **params), dataset, seed=seed)
    wall = time.perf_counter() - start
    assert isinstance(tested, SASRecKNNBlend) and tested.sasrec_ is not None
    history = tested.sasrec_.history_
    return {
        **result.to_dict(),
        "dataset_key": key,
        "wall_seconds": round(wall, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "weight": tested.weight_,
        "validation_by_weight": tested.search_,
        "sasrec_epochs": history[-1]["epoch"] if history else 0,
        "sasrec_best_validation": max((h.get("validation", 0.0) for h in history), default=0.0),
    }


def summary(runs: list[dict[str, Any]]) -> str:
    """Markdown table: mean test metrics, validation, chosen weights and wall clock per dataset."""
    lines = [
        "| dataset | test N@10 | test HR@10 | val N@10 | weights | wall s | load | target met | reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in DATASETS:
        mine = [r for r in runs if r["dataset_key"] == key]
        if not mine:
            continue
        n, hr = (statistics.mean(r[m] for r in mine) for m in ("ndcg@10", "hr@10"))
        val = statistics.mean(r["validation"]["ndcg@10"] for r in mine)
        met = n >= TARGETS[key]["ndcg@10"] and hr >= TARGETS[key]["hr@10"]
        weights = ", ".join(str(r["weight"]) for r in mine)
        lines.append(
            f"| {key} ({len(mine)} seeds) | {n:.4f} | {hr:.4f} | {val:.4f} | {weights}"
            f" | {max(r['wall_seconds'] for r in mine):.0f} | {max(r['load_before'] for r in mine):.1f} | "
            f"{'yes' if met else 'no'} | {REFERENCE[key]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--datasets", default="beauty,toys")
    ap.add_argument("--param", action="append", default=[])
    args = ap.parse_args()
    console = Console(stderr=True)
    runs = []
    for key in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            with console.status(f"sasrec_knn on {key}, seed {seed} ..."):
                runs.append(run_one(Path(args.data), key, seed, _params(args.param)))
            console.print(f"{key} seed {seed}: {json.dumps({k: runs[-1][k] for k in ('ndcg@10', 'hr@10', 'weight')})}")
    out = HERE / "results"
    (out / "blend.json").write_text(json.dumps(runs, indent=2, sort_keys=True))
    (out / "blend.md").write_text(summary(runs))
    console.print(summary(runs))


if __name__ == "__main__":
    main()
