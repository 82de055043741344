"""Diginetica (sessions protocol): a session transformer (SASRecSession) alone and blended with session_knn,
measured on a seeded subsample of the VALIDATION split only (never the test split).

One run trains ``SASRecSession(**params)`` on the protocol's fit_train part with early stopping on the
validation subsample, then scores the subsample once with both members and reports, per blend weight w,
``w * z(transformer) + (1 - w) * z(session_knn)`` (z = per-row standardization, as models/blend.py does).
Prints one JSON line per run (and appends it to ``--out``): the parameters, epochs, train seconds, CPU
seconds, load average, the transformer's validation P@20 / MRR@20 and the blend's per weight.

Usage (nice it; it trains for ``max_train_seconds``):
  nice -n 10 .venv/bin/python benchmarks/quality/diginetica_transformer.py --tag a \\
      --param loss='"sampled"' --param negative_sampling='"frequency"' --param max_train_seconds=300
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.metrics import metric_table, target_ranks
from shopkeep.evaluation.protocols import make_split
from shopkeep.evaluation.runner import make_validate_fn
from shopkeep.models.blend import zscore
from shopkeep.models.itemknn import SessionKNNRecommender
from shopkeep.models.sasrec import SASRecSession

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "diginetica-cikm16" / "srgnn_split"
WEIGHTS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--val-cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--tag", default="run")
    parser.add_argument("--out", type=Path, default=Path("/tmp/diginetica_transformer.jsonl"))
    args = parser.parse_args()
    params = {"seed": args.seed, **_params(args.param)}
    load_start, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), _cpu()
    split = make_split(load_dataset(args.data, "sessions"), "sessions")
    val = split.validation.subsample(args.val_cases, args.seed)
    knn = SessionKNNRecommender().fit(split.fit_train)
    validate = make_validate_fn(val, "sessions")
    start = time.perf_counter()
    model = SASRecSession(**params).fit(split.fit_train, validate=validate)
    train_s = time.perf_counter() - start
    ranks: dict[float, list[np.ndarray]] = {w: [] for w in WEIGHTS}
    for lo in range(0, len(val), 1024):
        hist, tgt = val.histories[lo : lo + 1024], val.targets[lo : lo + 1024]
        zk, zs = zscore(knn.score(hist)), zscore(model.score(hist))
        for w in WEIGHTS:
            ranks[w].append(target_ranks(w * zs + (1.0 - w) * zk, tgt))
    blend = {}
    for w in WEIGHTS:
        m = metric_table(np.concatenate(ranks[w]), [20], sessions=True)
        blend[str(w)] = [round(m["p@20"], 4), round(m["mrr@20"], 4)]
    record = {
        "tag": args.tag,
        "params": params,
        "val_cases": len(val),
        "epochs": [round(h["epoch"], 2) for h in model.history_],
        "val_mrr_by_epoch": [round(h.get("validation", float("nan")), 4) for h in model.history_],
        "train_s": round(train_s, 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(_cpu() - cpu0, 1),
        "load1": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "transformer": blend["1.0"],
        "session_knn": blend["0.0"],
        "blend": blend,
    }
    line = json.dumps(record)
    print(line, flush=True)
    with args.out.open("a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
