"""Accuracy cost of user-level differential privacy for the popularity and co-visitation counts on Beauty.

pop vs pop_dp and itemknn vs itemknn_dp (shopkeep.models.dp) at epsilon = 1, 4, 8 (delta = 1e-6, below
1 / users), seqrec protocol (leave-one-out, full ranking, history excluded), noise seeds 0..S-1. The
released model is the one refit on train + validation; its (epsilon, delta) is what the table states.
Clip values: pop 10 items per user (fixed up front); itemknn 10 items and 1 pair per user (pair_clip
chosen from {1, 3, 10} on the *validation* split at epsilon = 4: val NDCG@10 0.0087 / 0.0084 / 0.0083;
all three are close to popularity, because few pairs pass partition selection on a set this sparse).

Usage: .venv/bin/python benchmarks/quality/dp_popularity.py [--data ../shared/data] [--seeds 3]
       [--eps 1,4,8] [--out benchmarks/quality/results/dp_popularity.md]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.evaluation.runner import evaluate
from shopkeep.models.dp import DPItemKNNRecommender, DPPopularityRecommender
from shopkeep.models.itemknn import ItemKNNRecommender
from shopkeep.models.popularity import PopularityRecommender

DELTA = 1e-6


def _runs(eps_list: list[float], seeds: int) -> list[tuple[str, float | None, int, Any]]:
    runs: list[tuple[str, float | None, int, Any]] = [("pop", None, 0, PopularityRecommender()),
                                                     ("itemknn", None, 0, ItemKNNRecommender())]
    for eps in eps_list:
        for seed in range(seeds):
            runs.append(("pop", eps, seed, DPPopularityRecommender(epsilon=eps, delta=DELTA, clip=10, seed=seed)))
            runs.append(("itemknn", eps, seed, DPItemKNNRecommender(epsilon=eps, delta=DELTA, clip=10, pair_clip=1,
                                                                    seed=seed)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eps", default="1,4,8")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dp_popularity.md"))
    args = parser.parse_args()
    console = Console()
    dataset = load_dataset(Path(args.data) / "amazon-beauty-5core-seq", "seqrec")
    eps_list = [float(e) for e in args.eps.split(",")]
    results: dict[tuple[str, float | None], list[dict[str, float]]] = {}
    runs = _runs(eps_list, args.seeds)
    start = time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task("dp runs", total=len(runs))
        for model, eps, seed, rec in runs:
            r = evaluate(rec, dataset, "seqrec", ks=(10,), seed=seed)
            results.setdefault((model, eps), []).append(r.metrics)
            bar.advance(task)
    lines = [f"# DP popularity / co-visitation on {dataset.name} (seqrec, full ranking)", "",
             f"{hardware_summary()}; {time.perf_counter() - start:.0f} s; delta = {DELTA:g}; "
             f"{args.seeds} noise seeds per epsilon (mean ± sd); user-level DP, clip pop 10 items, "
             "itemknn 10 items + 1 pair per user", "",
             "| model | epsilon | NDCG@10 | HR@10 | NDCG@10 vs no DP |", "|---|---|---|---|---|"]
    for model in ("pop", "itemknn"):
        base = results[(model, None)][0]["ndcg@10"]
        for eps in [None, *eps_list]:
            rows = results[(model, eps)]
            nd = [m["ndcg@10"] for m in rows]
            hr = [m["hr@10"] for m in rows]
            sd = f" ± {statistics.stdev(nd):.4f}" if len(nd) > 1 else ""
            lines.append(f"| {model} | {'none' if eps is None else f'{eps:g}'} | {statistics.mean(nd):.4f}{sd} | "
                         f"{statistics.mean(hr):.4f} | {statistics.mean(nd) / base:.1%} |")
    lines += ["", "Command: `.venv/bin/python benchmarks/quality/dp_popularity.py --seeds "
              f"{args.seeds} --eps {args.eps}`", ""]
    text = "\n".join(lines)
    Path(args.out).write_text(text, encoding="utf-8")
    console.print(text)


if __name__ == "__main__":
    main()
