"""Retrieval and ranking quality on the synthetic store (next-item after a time cut), with the learned re-ranker.

Protocol (``shopkeep.ranking.next_item_requests``): a seeded store of ``--days`` days. Windows:
retrievers A are fit on days [0, ``--train-start``); the learned re-ranker is trained on the home
candidates of retrievers A for the requests of [``--train-start``, ``--calib-start``) and its two
heads calibrated (isotonic) on [``--calib-start``, ``--cut``) — later than the retrievers' data, so
no stacking leakage. Evaluation: retrievers B fit on days [0, ``--cut``), requests of [``--cut``,
``--days``). A request = a shopper's first new item in the window after their history before it (the
last 20 items as ``recent_items``, +1 affinity per key per item); history items are not eligible.
Reported: NDCG@10 / HR@10 / recall@500 of each single source, the fused home retriever, the
non-learned ranker and the learned one at relevance weight 1; ECE of the click and purchase heads
before/after calibration on the evaluation window; and the relevance <-> margin trade-off (NDCG@10 vs
the mean expected margin of the top 10 as the margin weight grows) written as an SVG.

    .venv/bin/python benchmarks/quality/ranker.py [--items 2000] [--shoppers 1500] [--seed 0] [--svg PATH]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.models.base import Interactions
from shopkeep.models.registry import create_model
from shopkeep.ranking import ItemStats, LabeledRequests, Objective, Ranker, next_item_requests
from shopkeep.ranking.learned import LearnedModel, expected_calibration_error
from shopkeep.retrieval import (
    AffinitySource,
    CandidateSource,
    CovisitSource,
    FusedCandidate,
    ModelBinding,
    PopularSource,
    Retriever,
    SequentialSource,
)
from shopkeep.simulate import StoreConfig, SyntheticStore, generate_store
from shopkeep.types import Event

DAY_MS = 86_400_000


def ndcg_hit(ranked: Sequence[str], target: str, k: int = 10) -> tuple[float, float]:
    """(NDCG@k, HR@k) for one target."""
    top = list(ranked[:k])
    if target not in top:
        return 0.0, 0.0
    return 1.0 / math.log2(top.index(target) + 2), 1.0


def fit_sources(snap: CatalogSnapshot, events: Sequence[Event], until_ms: int) -> dict[str, CandidateSource]:
    """Every home source fit on the events strictly before ``until_ms``."""
    seqs: dict[str, list[str]] = {}
    link = {e.anonymous_id: e.user_id for e in events if e.anonymous_id and e.user_id}
    for e in sorted(events, key=lambda e: e.timestamp):
        key = e.user_id or link.get(e.anonymous_id or "") or e.anonymous_id
        if str(e.type) in ("view", "click", "add_to_cart", "purchase") and e.item_id and key and \
                int(e.timestamp.timestamp() * 1000) < until_ms:
            hist = seqs.setdefault(key, [])
            if e.item_id not in hist:
                hist.append(e.item_id)
    train = Interactions(tuple(snap.indices(s) for s in seqs.values() if s), snap.n)
    knn = ModelBinding(create_model("itemknn").fit(train), snap.item_ids)
    popular = PopularSource(snap).fit(e for e in events if int(e.timestamp.timestamp() * 1000) < until_ms)
    return {"sequential": SequentialSource(knn, snap), "covisit": CovisitSource.from_itemknn(knn, snap),
            "popular": popular, "affinity": AffinitySource(snap, prior=popular.scores())}


def masks_for(snap: CatalogSnapshot, data: LabeledRequests) -> list[np.ndarray]:
    """History items are not eligible."""
    out = []
    for ctx in data.contexts:
        m = np.ones(snap.n, dtype=bool)
        m[snap.indices(list(ctx.recent_items))] = False
        out.append(m)
    return out


def home(snap: CatalogSnapshot, sources: dict[str, CandidateSource],
         data: LabeledRequests) -> list[list[FusedCandidate]]:
    """The fused home candidates (k = 500) of each request."""
    return Retriever.for_surface("home", sources).retrieve(list(data.contexts), masks_for(snap, data), k=500)


def metrics(lists: Sequence[Sequence[str]], targets: Sequence[str]) -> tuple[float, float, float]:
    """(NDCG@10, HR@10, recall@500)."""
    m = np.array([ndcg_hit(lst, t) for lst, t in zip(lists, targets, strict=True)])
    rec = np.mean([t in set(lst[:500]) for lst, t in zip(lists, targets, strict=True)])
    return float(m[:, 0].mean()), float(m[:, 1].mean()), float(rec)


Windows = tuple[LabeledRequests, list[list[FusedCandidate]], LabeledRequests, list[list[FusedCandidate]]]


def training_windows(store: SyntheticStore, snap: CatalogSnapshot, args: argparse.Namespace) -> Windows:
    """Requests and home candidates of the training and calibration windows (retrievers A)."""
    t0 = int(store.config.start.timestamp() * 1000)
    events = list(store.events)
    src_a = fit_sources(snap, events, t0 + args.train_start * DAY_MS)
    train = next_item_requests(events, snap, t0 + args.train_start * DAY_MS, t0 + args.calib_start * DAY_MS)
    calib = next_item_requests(events, snap, t0 + args.calib_start * DAY_MS, t0 + args.cut * DAY_MS)
    return train, home(snap, src_a, train), calib, home(snap, src_a, calib)


def svg_curve(series: dict[str, Sequence[tuple[float, float, float]]], path: Path) -> None:
    """Write trade-off curves (x: mean expected margin of the top 10, y: NDCG@10), one per series, as an SVG."""
    w, h, pad = 560, 360, 56
    pts = [p for ps in series.values() for p in ps]
    xs, ys = [p[1] for p in pts], [p[0] for p in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1e-3

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (w - 2 * pad)

    def sy(y: float) -> float:
        return h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)

    body = []
    for n, (name, points) in enumerate(series.items()):
        color = ("steelblue", "darkorange", "seagreen")[n % 3]
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for y, x, _ in points)
        body.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        body.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/><text x="{sx(x) + 4:.1f}" '
                    f'y="{sy(y) - 4:.1f}" font-size="9">m={wt:g}</text>' for y, x, wt in points)
        body.append(f'<text x="{w - pad - 150}" y="{pad + 14 * n}" font-size="11" fill="{color}">{name}</text>')
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">'
        f'<rect width="{w}" height="{h}" fill="white"/>'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>'
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle" font-size="11">mean expected margin of the top 10 '
        f'(minor units; {x0:.0f} to {x1:.0f})</text>'
        f'<text x="14" y="{h / 2}" font-size="11" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
        f'NDCG@10 ({y0:.4f} to {y1:.4f})</text>{"".join(body)}</svg>\n', encoding="utf-8")


def trade_off(ranker_model: object, data: LabeledRequests, fused: list[list[FusedCandidate]],
              snap: CatalogSnapshot) -> list[tuple[float, float, float]]:
    """(NDCG@10, mean expected margin of the top 10, margin weight) as the margin weight grows."""
    points = []
    for w in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0):
        ranked = Ranker(Objective(relevance=1.0, margin=w), ranker_model).rank_many(  # type: ignore[arg-type]
            list(data.contexts), fused, snap)
        ndcg = metrics([[s.item_id for s in lst] for lst in ranked], data.targets)[0]
        margin = float(np.mean([np.mean([s.expected_margin_minor for s in lst[:10]]) for lst in ranked if lst]))
        points.append((ndcg, margin, w))
    return points


def ece_rows(model: LearnedModel, data: LabeledRequests, fused: list[list[FusedCandidate]],
             snap: CatalogSnapshot) -> list[tuple[str, float, float, float]]:
    """(head, positive rate, ECE raw, ECE calibrated) on ``data``; the raw click score is squashed by a sigmoid."""
    raw = model.raw_scores(list(data.contexts), fused, snap)
    click = np.concatenate([[g.get(f.item_id, 0) > 0 for f in lst] for g, lst in zip(data.grades, fused, strict=True)])
    buy = np.concatenate([[f.item_id in p for f in lst] for p, lst in zip(data.purchases, fused, strict=True)])
    raw_click = 1.0 / (1.0 + np.exp(-raw["click"]))
    return [("click", float(click.mean()), expected_calibration_error(raw_click, click),
             expected_calibration_error(model.calibration_["click"](raw["click"]), click)),
            ("purchase", float(buy.mean()), expected_calibration_error(raw["purchase"], buy),
             expected_calibration_error(model.calibration_["purchase"](raw["purchase"]), buy))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("items", 2000), ("shoppers", 1500), ("days", 30), ("train-start", 12),
                          ("calib-start", 17), ("cut", 21), ("seed", 0), ("trees", 150)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--click-objective", default="lambdarank", choices=("lambdarank", "binary"))
    parser.add_argument("--svg", type=Path, default=Path(__file__).parent / "results" / "ranker_tradeoff.svg")
    args = parser.parse_args(argv)
    console, err = Console(), Console(stderr=True)
    with err.status("generating the store, fitting retrievers A, building training candidates"):
        store = generate_store(StoreConfig(n_items=args.items, n_shoppers=args.shoppers, n_days=args.days,
                                           seed=args.seed))
        snap = CatalogSnapshot.from_items(store.items)
        t0 = int(store.config.start.timestamp() * 1000)
        train, train_fused, calib, calib_fused = training_windows(store, snap, args)
    with err.status(f"training the re-ranker on {sum(map(len, train_fused))} rows"):
        started = time.perf_counter()
        stats = ItemStats.from_events(store.events, t0 + args.train_start * DAY_MS)
        model = LearnedModel(click_objective=args.click_objective, n_estimators=args.trees).fit(
            train, train_fused, calib, calib_fused, snap, stats, ("sequential", "affinity", "popular"))
        fit_s = time.perf_counter() - started
    with err.status("fitting retrievers B and evaluating"):
        cut_ms = t0 + args.cut * DAY_MS
        sources = fit_sources(snap, list(store.events), cut_ms)
        ev = next_item_requests(store.events, snap, cut_ms, t0 + args.days * DAY_MS + 1)
        masks = masks_for(snap, ev)
        table = Table(title=f"synthetic store seed {args.seed}: {args.items} items, {args.shoppers} shoppers; "
                            f"retrievers A < day {args.train_start}, ranker train [{args.train_start}, "
                            f"{args.calib_start}) {len(train)} requests, calibration [{args.calib_start}, {args.cut}) "
                            f"{len(calib)}, evaluation >= day {args.cut} {len(ev)} requests")
        for col in ("method", "NDCG@10", "HR@10", "recall@500"):
            table.add_column(col)
        for name, src in sources.items():
            lists = src.retrieve(list(ev.contexts), masks, 500)
            table.add_row(name, *(f"{v:.4f}" for v in metrics([[c.item_id for c in lst] for lst in lists], ev.targets)))
        fused = Retriever.for_surface("home", sources).retrieve(list(ev.contexts), masks, k=500)
        table.add_row("fused home (RRF order)",
                      *(f"{v:.4f}" for v in metrics([[f.item_id for f in lst] for lst in fused], ev.targets)))
        eval_stats = ItemStats.from_events(store.events, cut_ms)
        assert model.builder_ is not None
        model.builder_.stats, model.builder_._cols = eval_stats, None  # popularity as of the evaluation cut
        for label, m in (("non-learned ranker (relevance 1)", None), ("learned ranker (relevance 1)", model)):
            ranked = Ranker(Objective(relevance=1.0), m).rank_many(list(ev.contexts), fused, snap)
            table.add_row(label, *(f"{v:.4f}" for v in metrics([[x.item_id for x in lst] for lst in ranked],
                                                                 ev.targets)))
        curves = {"non-learned": trade_off(None, ev, fused, snap), "learned": trade_off(model, ev, fused, snap)}
    console.print(table)
    cal = Table(title=f"calibration on the evaluation window (isotonic fit on [{args.calib_start}, {args.cut})); "
                      f"ECE, 15 equal-mass bins; click raw = sigmoid(score)")
    for col in ("head", "positive rate", "ECE raw", "ECE calibrated"):
        cal.add_column(col)
    for head, rate, before, after in ece_rows(model, ev, fused, snap):
        cal.add_row(head, f"{rate:.5f}", f"{before:.5f}", f"{after:.5f}")
    console.print(cal)
    curve = Table(title="relevance <-> margin trade-off (relevance weight 1)")
    for col in ("margin weight", "NDCG@10 non-learned", "margin top 10", "NDCG@10 learned", "margin top 10 "):
        curve.add_column(col)
    for a, b in zip(curves["non-learned"], curves["learned"], strict=True):
        curve.add_row(f"{a[2]:g}", f"{a[0]:.4f}", f"{a[1]:.1f}", f"{b[0]:.4f}", f"{b[1]:.1f}")
    console.print(curve)
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    svg_curve(curves, args.svg)
    print(f"re-ranker fit {fit_s:.1f} s ({args.click_objective}, {args.trees} trees, 1 thread); curve: {args.svg}; "
          f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()} {platform.system()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
