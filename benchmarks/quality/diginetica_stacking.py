"""Diginetica (sessions protocol): does a learned re-ranker over the blend's top candidates beat the blend?
Measured on the VALIDATION split only (never the test split), split in time.

A saved session transformer (``diginetica_transformer.py --save DIR``) and session_knn fitted on the
protocol's fit_train part score every validation prefix; the blend's top ``--candidates`` items get
:func:`shopkeep.models.stacking.candidate_features`. The stacker is fitted on the prefixes of the
earlier ``train_share`` of the validation cases (time order) and measured on the later rest, against the
blend (w = ``--weight``) on the same prefixes, as ``sasrec_session_knn`` does when it fits. Features are
cached in ``--cache`` so that stacker settings can be compared without rescoring. Prints one JSON line
per run and appends it to ``--out``.

Usage:
  nice -n 10 .venv/bin/python benchmarks/quality/diginetica_stacking.py --model /tmp/s15/F_model --tag base
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.metrics import metric_table
from shopkeep.evaluation.protocols import make_split
from shopkeep.models.blend import SASRecSessionKNNBlend
from shopkeep.models.itemknn import SessionKNNRecommender
from shopkeep.models.sasrec import SASRecSession
from shopkeep.models.stacking import CandidateStacker, StackInputs, target_rank_after

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "diginetica-cikm16" / "srgnn_split"


def _features(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The stacker's inputs for every validation prefix, computed by the blend's own ``stack_cases``."""
    split = make_split(load_dataset(args.data, "sessions"), "sessions")
    val = split.validation
    blend = SASRecSessionKNNBlend(stacker={"n_candidates": args.candidates, "candidate_weight": args.weight})
    blend.itemknn_ = SessionKNNRecommender().fit(split.fit_train)
    blend.sasrec_ = SASRecSession.load(args.model)
    blend.weight_ = args.weight
    assert blend.itemknn_.sim_ is not None
    inputs = StackInputs.from_sequences(split.fit_train.sequences, split.fit_train.n_items, blend.itemknn_.sim_)
    with Progress() as bar:
        task = bar.add_task("scoring validation", total=len(val))
        feats, labels, blend_ranks, _ = blend.stack_cases(
            val.histories, val.targets, inputs, args.candidates,
            report=lambda _phase, done, _total: bar.update(task, completed=done),
        )
    return {"feats": feats, "labels": labels, "blend_ranks": blend_ranks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, required=True, help="a saved SASRecSession")
    parser.add_argument("--weight", type=float, default=0.85)
    parser.add_argument("--candidates", type=int, default=100, help="candidates scored into the cache")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/diginetica_stacking.npz"))
    parser.add_argument("--top", type=int, default=0, help="re-rank only the blend's first N cached candidates")
    parser.add_argument("--param", action="append", default=[], help="CandidateStacker keyword=json")
    parser.add_argument("--tag", default="run")
    parser.add_argument("--out", type=Path, default=Path("/tmp/diginetica_stacking.jsonl"))
    args = parser.parse_args()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    if args.cache.exists():
        data = dict(np.load(args.cache))
    else:
        data = _features(args)
        np.savez(args.cache, **data)
    feature_s = time.perf_counter() - t0
    feats, labels = data["feats"], data["labels"]
    if args.top:
        feats, labels = feats[:, : args.top], labels[:, : args.top]
    params: dict[str, Any] = {"n_candidates": int(feats.shape[1]), "candidate_weight": args.weight}
    for pair in args.param:
        key, _, raw = pair.partition("=")
        params[key] = json.loads(raw)
    t1 = time.perf_counter()
    stacker = CandidateStacker(**params).fit(feats, labels, data["blend_ranks"])
    fit_s = time.perf_counter() - t1
    cut = int(len(feats) * stacker.train_share)
    held = slice(cut, len(feats))
    ranks = target_rank_after(stacker.predict(feats[held]), labels[held], data["blend_ranks"][held])
    base = metric_table(data["blend_ranks"][held], [20], sessions=True)
    new = metric_table(ranks, [20], sessions=True)
    booster = stacker.booster_
    gain = dict(zip(booster.feature_name(), booster.feature_importance("gain").round(0).tolist(), strict=True))
    record = {
        "tag": args.tag,
        "params": params,
        "train_cases": cut,
        "held_out_cases": len(feats) - cut,
        "candidate_recall": round(float(labels[held].sum(axis=1).mean()), 4),
        "blend": [round(base["p@20"], 4), round(base["mrr@20"], 4)],
        "stacked": [round(new["p@20"], 4), round(new["mrr@20"], 4)],
        "feature_s": round(feature_s, 1),
        "fit_s": round(fit_s, 1),
        "load1": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "gain": gain,
    }
    line = json.dumps(record)
    print(line, flush=True)
    with args.out.open("a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
