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
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from shopkeep.evaluation.datasets import load_dataset
from shopkeep.evaluation.metrics import metric_table, target_ranks
from shopkeep.evaluation.protocols import SESSION_VALIDATION_SHARE, Cases, Split, make_split, prefix_cases
from shopkeep.evaluation.runner import make_validate_fn
from shopkeep.models.base import Interactions
from shopkeep.models.blend import DEFAULT_SESSION_SASREC, SASRecSessionKNNBlend, zscore
from shopkeep.models.itemknn import SessionKNNRecommender
from shopkeep.models.sasrec import SASRecSession

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "diginetica-cikm16" / "srgnn_split"
WEIGHTS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)



def _emit(record: dict[str, Any], out: Path) -> None:
    """Print one run's JSON line and append it to ``out``."""
    line = json.dumps(record)
    print(line, flush=True)
    with out.open("a") as fh:
        fh.write(line + "\n")

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


def _blend_table(
    knn: SessionKNNRecommender, model: SASRecSession, val: Cases, weights: tuple[float, ...] = WEIGHTS
) -> dict[str, list[float]]:
    """P@20 / MRR@20 on ``val`` of ``w * z(model) + (1 - w) * z(knn)`` for every weight (one scoring pass)."""
    ranks: dict[float, list[np.ndarray]] = {w: [] for w in weights}
    for lo in range(0, len(val), 1024):
        hist, tgt = val.histories[lo : lo + 1024], val.targets[lo : lo + 1024]
        zk, zs = zscore(knn.score(hist)), zscore(model.score(hist))
        for w in weights:
            ranks[w].append(target_ranks(w * zs + (1.0 - w) * zk, tgt))
    blend = {}
    for w in weights:
        m = metric_table(np.concatenate(ranks[w]), [20], sessions=True)
        blend[str(w)] = [round(m["p@20"], 4), round(m["mrr@20"], 4)]
    return blend


def _pipeline(args: argparse.Namespace, params: dict[str, Any], split: Split, t0: tuple[float, float, float]) -> None:
    """``--pipeline``: the runner's fit on the full validation split, then one pass for every weight."""
    sasrec = {**DEFAULT_SESSION_SASREC, **params}
    blend = SASRecSessionKNNBlend(sasrec=sasrec, seed=args.seed)
    start = time.perf_counter()
    blend.fit(split.fit_train, validate=make_validate_fn(split.validation, "sessions"))
    fit_s = time.perf_counter() - start
    assert blend.sasrec_ is not None and blend.itemknn_ is not None
    table = _blend_table(blend.itemknn_, blend.sasrec_, split.validation)  # type: ignore[arg-type]
    record = {
        "tag": args.tag,
        "mode": "pipeline",
        "sasrec": sasrec,
        "weights": blend.weights,
        "weight": blend.weight_,
        "search": blend.search_,
        "val_cases": len(split.validation),
        "epochs": [round(h["epoch"], 2) for h in blend.sasrec_.history_],
        "val_mrr_by_epoch": [round(h.get("validation", float("nan")), 4) for h in blend.sasrec_.history_],
        "fit_s": round(fit_s, 1),
        "wall_s": round(time.perf_counter() - t0[1], 1),
        "cpu_s": round(_cpu() - t0[2], 1),
        "load1": [round(t0[0], 2), round(os.getloadavg()[0], 2)],
        "transformer": table["1.0"],
        "session_knn": table["0.0"],
        "blend": table,
    }
    _emit(record, args.out)


def _softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _fusion(args: argparse.Namespace, split: Split, t0: tuple[float, float, float]) -> None:
    """``--fusion DIR``: a saved transformer and session_knn (fit_train) on the validation subsample, every
    fusion rule x weight from one scoring pass: ``z`` (the blend's per-row z-scores) and ``prob`` (``w *
    softmax(transformer) + (1 - w) * knn**a / sum(knn**a)``, a mixture of next-item distributions)."""
    val = split.validation.subsample(args.val_cases, args.seed)
    knn = SessionKNNRecommender().fit(split.fit_train)
    model = SASRecSession.load(args.fusion)
    rules: dict[str, Any] = {f"z w={w}": (lambda s, k, w=w: w * zscore(s) + (1.0 - w) * zscore(k)) for w in WEIGHTS}
    for a in (1.0, 2.0, 3.0):
        for w in (0.2, 0.35, 0.5, 0.65, 0.8):
            rules[f"prob a={a} w={w}"] = lambda s, k, a=a, w=w: w * _softmax(s) + (1.0 - w) * (k**a) / (
                (k**a).sum(axis=1, keepdims=True)
            )
    ranks: dict[str, list[np.ndarray]] = {name: [] for name in rules}
    for lo in range(0, len(val), 1024):
        hist, tgt = val.histories[lo : lo + 1024], val.targets[lo : lo + 1024]
        k_scores = np.maximum(knn.score(hist), 0.0).astype(np.float64)
        s_scores = model.score(hist).astype(np.float64)
        for name, rule in rules.items():
            ranks[name].append(target_ranks(rule(s_scores, k_scores), tgt))
    table = {}
    for name in rules:
        m = metric_table(np.concatenate(ranks[name]), [20], sessions=True)
        table[name] = [round(m["p@20"], 4), round(m["mrr@20"], 4)]
    record = {
        "tag": args.tag,
        "mode": "fusion",
        "model": str(args.fusion),
        "val_cases": len(val),
        "wall_s": round(time.perf_counter() - t0[1], 1),
        "load1": [round(t0[0], 2), round(os.getloadavg()[0], 2)],
        "fusion": table,
    }
    _emit(record, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--val-cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--tag", default="run")
    parser.add_argument("--out", type=Path, default=Path("/tmp/diginetica_transformer.jsonl"))
    parser.add_argument(
        "--simulate-refit",
        type=int,
        default=0,
        metavar="N",
        help="time-split simulation of the refit fine-tune: train on the first 90%% of fit_train (early stopping"
        " on prefixes of its last 10%%), then fine-tune 1..N epochs on all of fit_train; every stage is scored"
        " on the validation subsample, blended with session_knn fitted on all of fit_train",
    )
    parser.add_argument("--fusion", type=Path, default=None, help="compare fusion rules for a saved transformer")
    parser.add_argument("--save", type=Path, default=None, help="write the trained transformer here")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="fit sasrec_session_knn (DEFAULT_SESSION_SASREC updated by --param) as the evaluation runner does"
        " (early stopping and weight check on the FULL validation split), then report every blend weight on it",
    )
    args = parser.parse_args()
    params = {"seed": args.seed, **_params(args.param)}
    load_start, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), _cpu()
    split = make_split(load_dataset(args.data, "sessions"), "sessions")
    if args.pipeline:
        _pipeline(args, params, split, (load_start, wall0, cpu0))
        return
    if args.fusion is not None:
        _fusion(args, split, (load_start, wall0, cpu0))
        return
    val = split.validation.subsample(args.val_cases, args.seed)
    knn = SessionKNNRecommender().fit(split.fit_train)
    train, early_stop = split.fit_train, val
    if args.simulate_refit:
        seqs = split.fit_train.sequences
        n_pseudo = math.ceil(len(seqs) * SESSION_VALIDATION_SHARE)
        head = seqs[: len(seqs) - n_pseudo]
        train = Interactions(head, split.fit_train.n_items, split.fit_train.features)
        early_stop = prefix_cases(seqs[len(seqs) - n_pseudo :], split.fit_train.n_items).subsample(
            args.val_cases, args.seed
        )
    validate = make_validate_fn(early_stop, "sessions")
    start = time.perf_counter()
    model = SASRecSession(**params).fit(train, validate=validate)
    train_s = time.perf_counter() - start
    if args.save is not None:
        model.save(args.save)
    blend = _blend_table(knn, model, val)
    stages: dict[str, Any] = {}
    for k in range(1, args.simulate_refit + 1):
        t0 = time.perf_counter()
        model.fine_tune(split.fit_train, 1)
        ft_s = time.perf_counter() - t0
        table = _blend_table(knn, model, val)
        stages[f"fine_tune_{k}"] = {"seconds": round(ft_s, 1), "transformer": table["1.0"], "blend": table}
    record = {
        "tag": args.tag,
        "params": params,
        "simulate_refit": args.simulate_refit,
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
        **stages,
    }
    _emit(record, args.out)

if __name__ == "__main__":
    main()
