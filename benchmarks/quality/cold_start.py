"""Cold start on Amazon Beauty: brand-new items, and short histories.

Usage:
  nice .venv/bin/python benchmarks/quality/cold_start.py [--data DIR] [--seed 0] [--phase validation|test]
        [--two-tower '{"d": 64}'] [--short-history pop,itemknn,content_knn,two_tower] [--out FILE.md]

**New items.** 10% of the items (seeded) are held out completely: every interaction with them is
removed from the training sequences and from the evaluation inputs. The leave-one-out split is made
on the original sequences (last item = test target, second last = validation target), so a held-out
item can still be a target. Cold cases: target is a held-out item; warm cases: it is not. Every case
ranks its target against ALL items, history excluded. Models: random, content-kNN, two-tower (fit on
the train parts; the two-tower early-stops on validation NDCG@10 over cold and warm cases in their
natural proportion, see :func:`cold_warm_validate`).
``--phase validation`` prints validation metrics only (for choosing settings); ``--phase test``
also prints the test table.

**Short histories.** The standard seqrec protocol; each model is fit once (validation early stopping,
refit for closed-form models as the runner does), then the test inputs are cut to the last h items.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shopkeep.evaluation.datasets import Dataset, load_seqrec
from shopkeep.evaluation.metrics import metric_table
from shopkeep.evaluation.protocols import Cases, make_split
from shopkeep.evaluation.runner import make_validate_fn, rank_cases
from shopkeep.models.base import Interactions, SequentialRecommender
from shopkeep.models.content import ContentKNN
from shopkeep.models.registry import create_model
from shopkeep.models.two_tower import TwoTower

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "amazon-beauty-5core-seq"
HORIZONS: list[int | None] = [1, 2, 3, 5, None]
#: The two-tower configuration chosen on validation (see results/cold_start.md); ``--two-tower`` overrides keys.
TWO_TOWER: dict[str, Any] = {
    "max_len": 20, "epoch_fraction": 0.1, "patience": 4, "lr": 1e-3, "id_dropout": 0.7, "content_aux_weight": 1.0,
    "content_weight_grid": [1, 2, 3, 4], "cold_scale_grid": [1], "max_train_seconds": 600,
}


@dataclass(frozen=True)
class ColdSplit:
    """Train data without held-out items, and validation/test cases split by cold/warm target."""

    train: Interactions
    cold_items: np.ndarray
    val_cold: Cases
    val_warm: Cases
    test_cold: Cases
    test_warm: Cases


def cold_split(ds: Dataset, share: float, seed: int) -> ColdSplit:
    """Hold out ``share`` of the items (seeded); see the module docstring."""
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(ds.n_items, size=round(share * ds.n_items), replace=False))
    is_cold = np.zeros(ds.n_items, dtype=bool)
    is_cold[cold] = True
    seqs = [s for s in ds.sequences if s.size >= 3]

    def strip(x: np.ndarray) -> np.ndarray:
        return x[~is_cold[x]]

    train = Interactions(tuple(t for s in seqs if (t := strip(s[:-2])).size), ds.n_items, ds.features)

    def cases(inputs: list[np.ndarray], targets: np.ndarray, want_cold: bool) -> Cases:
        keep = [i for i, t in enumerate(targets) if is_cold[t] == want_cold]
        return Cases(tuple(inputs[i] for i in keep), targets[keep], True, ds.n_items)

    val_in, val_t = [strip(s[:-2]) for s in seqs], np.array([s[-2] for s in seqs], dtype=np.int64)
    test_in, test_t = [strip(s[:-1]) for s in seqs], np.array([s[-1] for s in seqs], dtype=np.int64)
    return ColdSplit(
        train, cold, cases(val_in, val_t, True), cases(val_in, val_t, False),
        cases(test_in, test_t, True), cases(test_in, test_t, False),
    )


class RandomScores:
    """Uniform random scores (seeded): the floor."""

    name = "random"

    def __init__(self, n_items: int, seed: int = 0) -> None:
        self.n_items, self.rng = n_items, np.random.default_rng(seed)

    def score(self, histories: Any) -> np.ndarray:
        return self.rng.random((len(histories), self.n_items), dtype=np.float32)


def metrics(model: Any, cases: Cases) -> dict[str, float]:
    """HR/NDCG@10 and @20 of ``model`` on ``cases`` (history excluded)."""
    ranks, _ = rank_cases(model, cases)
    table = metric_table(ranks, [10, 20])
    return {k: round(v, 5) for k, v in table.items() if not k.startswith("mrr")} | {"n": len(cases)}


def cold_warm_validate(split: ColdSplit, n: int, seed: int) -> Any:
    """Validation NDCG@10 over all cases: cold and warm (subsampled) weighted by their share of the split.

    Weighting by the natural share (not 50/50) keeps the choice honest: a setting that buys cold
    NDCG by burying warm targets (e.g. boosting every new item) only wins if the whole is better.
    """
    cold = make_validate_fn(split.val_cold.subsample(n, seed), "seqrec")
    warm = make_validate_fn(split.val_warm.subsample(n, seed), "seqrec")
    share = len(split.val_cold) / max(1, len(split.val_cold) + len(split.val_warm))

    def validate(model: SequentialRecommender) -> float:
        c, w = cold(model), warm(model)
        print(f"    validation ndcg@10 cold={c:.4f} warm={w:.4f} all={share * c + (1 - share) * w:.4f}", flush=True)
        return share * c + (1 - share) * w

    return validate


def run_new_items(ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    """Random / content-kNN / two-tower on cold and warm cases; test only with ``--phase test``."""
    split = cold_split(ds, args.cold_share, args.seed)
    print(f"cold items {split.cold_items.size}; train sequences {len(split.train.sequences)}; "
          f"val cold/warm {len(split.val_cold)}/{len(split.val_warm)}; "
          f"test cold/warm {len(split.test_cold)}/{len(split.test_warm)}", flush=True)
    params = TWO_TOWER | json.loads(args.two_tower)
    models: dict[str, Any] = {"random": RandomScores(ds.n_items, args.seed)}
    start = time.perf_counter()
    models["content_knn"] = ContentKNN(**json.loads(args.content_knn)).fit(split.train)
    seconds = {"content_knn": time.perf_counter() - start}
    start = time.perf_counter()
    validate = cold_warm_validate(split, args.val_cases, args.seed)
    models["two_tower"] = TwoTower(seed=args.seed, **params).fit(split.train, validate=validate)
    seconds["two_tower"] = time.perf_counter() - start
    parts = [("val_cold", split.val_cold), ("val_warm", split.val_warm)]
    if args.phase == "test":
        parts += [("test_cold", split.test_cold), ("test_warm", split.test_warm)]
    rows = {name: {part: metrics(m, cases) for part, cases in parts} for name, m in models.items()}
    for name, row in rows.items():
        print(name, json.dumps(row), flush=True)
    return {
        "rows": rows,
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "two_tower_config": models["two_tower"].get_config(),
        "two_tower_history": models["two_tower"].history_,
        "content_knn_config": models["content_knn"].get_config(),
        "n_cold_items": int(split.cold_items.size),
    }


def run_short_history(ds: Dataset, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Test NDCG/HR@10 per model with the input cut to the last h items (h in HORIZONS)."""
    split = make_split(ds, "seqrec")
    validate = make_validate_fn(split.validation.subsample(args.val_cases, args.seed), "seqrec")
    out: dict[str, Any] = {}
    for name in names:
        params = TWO_TOWER | json.loads(args.two_tower) if name == "two_tower" else {}
        if name == "content_knn":
            params = json.loads(args.content_knn)
        start = time.perf_counter()
        model = create_model(name, **params)
        model.fit(split.fit_train, validate=validate)
        if getattr(model, "refit_on_validation", False):
            model = type(model)(**model.get_config()).fit(split.refit_train)
        fit_s = time.perf_counter() - start
        out[name] = {"train_seconds": round(fit_s, 1)}
        for h in HORIZONS:
            out[name][str(h or "full")] = metrics(model, split.test.truncated(h))
        print(name, json.dumps(out[name]), flush=True)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results as markdown tables."""
    lines = [f"# Cold start on {result['dataset']} (seed {result['seed']})", "",
             f"Command: `{result['command']}`  ", f"Hardware: {result['hardware']}  ", ""]
    new = result.get("new_items")
    if new:
        parts = [p for p in ("val_cold", "val_warm", "test_cold", "test_warm") if p in new["rows"]["random"]]
        lines += [f"## New items ({new['n_cold_items']} held-out items)", "",
                  "| model | " + " | ".join(f"{p} HR@10 | {p} NDCG@10" for p in parts) + " |",
                  "|---|" + "---|---|" * len(parts)]
        for name, row in new["rows"].items():
            cells = " | ".join(f"{row[p]['hr@10']:.4f} | {row[p]['ndcg@10']:.4f}" for p in parts)
            lines.append(f"| {name} | {cells} |")
        lines += ["", "Cases: " + ", ".join(f"{p} {new['rows']['random'][p]['n']}" for p in parts),
                  f"Train seconds: {new['train_seconds']}", "", f"two_tower config: `{new['two_tower_config']}`", ""]
    short = result.get("short_history")
    if short:
        heads = [str(h or "full") for h in HORIZONS]
        lines += ["## Short histories (test NDCG@10 / HR@10, input cut to the last h items)", "",
                  "| model | " + " | ".join(f"h={h}" for h in heads) + " | train s |",
                  "|---|" + "---|" * (len(heads) + 1)]
        for name, row in short.items():
            cells = " | ".join(f"{row[h]['ndcg@10']:.4f} / {row[h]['hr@10']:.4f}" for h in heads)
            lines.append(f"| {name} | {cells} | {row['train_seconds']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold-share", type=float, default=0.1)
    parser.add_argument("--phase", choices=["validation", "test"], default="validation")
    parser.add_argument("--val-cases", type=int, default=2000)
    parser.add_argument("--two-tower", default="{}", help="JSON of TwoTower hyper-parameters (over TWO_TOWER)")
    parser.add_argument("--content-knn", default="{}", help="JSON of ContentKNN hyper-parameters")
    parser.add_argument("--skip-new-items", action="store_true")
    parser.add_argument("--short-history", default="", help="comma-separated registry model names")
    parser.add_argument("--out", default="", help="write markdown here (and JSON beside it)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ds = load_seqrec(args.data)
    result: dict[str, Any] = {
        "dataset": ds.name, "seed": args.seed, "command": " ".join(["benchmarks/quality/cold_start.py", *sys.argv[1:]]),
        "hardware": f"{platform.processor() or platform.machine()}, torch threads 2",
    }
    if not args.skip_new_items:
        result["new_items"] = run_new_items(ds, args)
    if args.short_history:
        result["short_history"] = run_short_history(ds, args.short_history.split(","), args)
    text = markdown(result)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
