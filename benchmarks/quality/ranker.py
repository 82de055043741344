"""Retrieval and ranking quality on the synthetic store (next-item after a time cut).

Protocol: a seeded store; every source is fit on the events before day ``--cut`` of ``--days``.
For each shopper with an interaction (view, add_to_cart, purchase) after the cut, the target is the
first new item interacted with after the cut; the context holds the items before it (the last 20 as
``recent_items``) and affinities built from them (+1 per view, the features' view weight). Items
already in the history are not eligible. Reported: NDCG@10 and HR@10 of each single source, of the
fused home retriever with the default (non-learned) ranker at relevance weight 1, and recall@500 of
the fused candidates; then the relevance <-> margin trade-off (NDCG@10 vs the mean expected margin
of the top 10 as the margin weight grows), written as an SVG next to the results.

    .venv/bin/python benchmarks/quality/ranker.py [--items 2000] [--shoppers 1500] [--seed 0] [--svg PATH]

The learned (LightGBM) purchase model is not built yet: the default ranker is the fused score plus
the objective.
"""

from __future__ import annotations

import argparse
import math
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features.context import Context, ContextRequest
from shopkeep.models.base import Interactions
from shopkeep.models.registry import create_model
from shopkeep.ranking import Objective, Ranker
from shopkeep.retrieval import (
    AffinitySource,
    CandidateSource,
    CovisitSource,
    ModelBinding,
    PopularSource,
    Retriever,
    SequentialSource,
)
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.types import EventType

KINDS = {EventType.VIEW, EventType.ADD_TO_CART, EventType.PURCHASE}


def ndcg_hit(ranked: Sequence[str], target: str, k: int = 10) -> tuple[float, float]:
    """(NDCG@k, HR@k) for one target."""
    top = list(ranked[:k])
    if target not in top:
        return 0.0, 0.0
    return 1.0 / math.log2(top.index(target) + 2), 1.0


Built = tuple[CatalogSnapshot, dict[str, CandidateSource], list[Context], list[str]]


def build(items: int, shoppers: int, days: int, cut: int, seed: int) -> Built:
    """The store, the sources fit before the cut, and the evaluation contexts and targets."""
    store = generate_store(StoreConfig(n_items=items, n_shoppers=shoppers, n_days=days, seed=seed))
    snap = CatalogSnapshot.from_items(store.items)
    cut_ms = int(store.config.start.timestamp() * 1000) + cut * 86_400_000
    link = {e.anonymous_id: e.user_id for e in store.events if e.anonymous_id and e.user_id}
    before: dict[str, list[str]] = {}
    target: dict[str, str] = {}
    for e in store.events:
        key = e.user_id or link.get(e.anonymous_id or "") or e.anonymous_id
        if e.type not in KINDS or e.item_id is None or key is None:
            continue
        hist = before.setdefault(key, [])
        if int(e.timestamp.timestamp() * 1000) < cut_ms:
            if e.item_id not in hist:
                hist.append(e.item_id)
        elif key not in target and hist and e.item_id not in hist:
            target[key] = e.item_id
    train = Interactions(tuple(snap.indices(s) for s in before.values() if s), snap.n)
    knn = ModelBinding(create_model("itemknn").fit(train), snap.item_ids)
    popular = PopularSource(snap).fit(e for e in store.events if int(e.timestamp.timestamp() * 1000) < cut_ms)
    sources: dict[str, CandidateSource] = {
        "sequential": SequentialSource(knn, snap),
        "covisit": CovisitSource.from_itemknn(knn, snap),
        "popular": popular,
        "affinity": AffinitySource(snap, prior=popular.scores()),
    }
    contexts, targets = [], []
    for key in sorted(target):
        hist = before[key]
        aff: dict[str, float] = {}
        for item in hist[-20:]:
            for k in snap.affinity_keys(snap.index[item]):
                aff[k] = aff.get(k, 0.0) + 1.0
        contexts.append(Context(ContextRequest(surface="home"), now_ms=cut_ms, recent_items=tuple(hist[-20:]),
                                affinities=aff))
        targets.append(target[key])
    return snap, sources, contexts, targets


def svg_curve(points: Sequence[tuple[float, float, float]], path: Path) -> None:
    """Write the trade-off curve (x: mean expected margin of the top 10, y: NDCG@10) as an SVG."""
    w, h, pad = 480, 320, 50
    xs, ys = [p[1] for p in points], [p[0] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1e-3

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (w - 2 * pad)

    def sy(y: float) -> float:
        return h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)

    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for y, x, _ in points)
    dots = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"/><text x="{sx(x) + 4:.1f}" '
                   f'y="{sy(y) - 4:.1f}" font-size="9">m={wt:g}</text>' for y, x, wt in points)
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">'
        f'<rect width="{w}" height="{h}" fill="white"/>'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>'
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle" font-size="11">mean expected margin of the top 10 '
        f'(minor units; {x0:.0f} to {x1:.0f})</text>'
        f'<text x="14" y="{h / 2}" font-size="11" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
        f'NDCG@10 ({y0:.4f} to {y1:.4f})</text>'
        f'<polyline points="{line}" fill="none" stroke="steelblue" stroke-width="2"/>{dots}</svg>\n',
        encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--shoppers", type=int, default=1500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--cut", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--svg", type=Path, default=Path(__file__).parent / "results" / "ranker_tradeoff.svg")
    args = parser.parse_args(argv)
    console = Console()
    with Console(stderr=True).status("generating the store and fitting sources"):
        snap, sources, contexts, targets = build(args.items, args.shoppers, args.days, args.cut, args.seed)
    masks = []
    for ctx in contexts:
        m = np.ones(snap.n, dtype=bool)
        m[snap.indices(list(ctx.recent_items))] = False
        masks.append(m)
    table = Table(title=f"synthetic store seed {args.seed}: {args.items} items, {args.shoppers} shoppers, "
                        f"cut day {args.cut}/{args.days}, {len(targets)} targets")
    for col in ("method", "NDCG@10", "HR@10", "recall@500"):
        table.add_column(col)
    with Console(stderr=True).status("retrieving"):
        for name, src in sources.items():
            lists = src.retrieve(contexts, masks, 500)
            m = np.array([ndcg_hit([c.item_id for c in lst], t) for lst, t in zip(lists, targets, strict=True)])
            rec = np.mean([t in {c.item_id for c in lst} for lst, t in zip(lists, targets, strict=True)])
            table.add_row(name, f"{m[:, 0].mean():.4f}", f"{m[:, 1].mean():.4f}", f"{rec:.4f}")
        fused = Retriever.for_surface("home", sources).retrieve(contexts, masks, k=500)
    rec = np.mean([t in {f.item_id for f in lst} for lst, t in zip(fused, targets, strict=True)])
    points = []
    for w in (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0):
        ranked = Ranker(Objective(relevance=1.0, margin=w)).rank_many(contexts, fused, snap)
        m = np.array([ndcg_hit([s.item_id for s in lst], t) for lst, t in zip(ranked, targets, strict=True)])
        margin = float(np.mean([np.mean([s.expected_margin_minor for s in lst[:10]]) for lst in ranked if lst]))
        points.append((float(m[:, 0].mean()), margin, w))
        if w == 0.0:
            table.add_row("fused home + ranker (relevance 1)", f"{m[:, 0].mean():.4f}", f"{m[:, 1].mean():.4f}",
                          f"{rec:.4f}")
    console.print(table)
    curve = Table(title="relevance <-> margin trade-off (relevance weight 1)")
    for col in ("margin weight", "NDCG@10", "mean expected margin top 10 (minor units)"):
        curve.add_column(col)
    for ndcg, margin, w in points:
        curve.add_row(f"{w:g}", f"{ndcg:.4f}", f"{margin:.1f}")
    console.print(curve)
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    svg_curve(points, args.svg)
    print(f"curve: {args.svg}; python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()} {platform.system()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
