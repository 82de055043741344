"""New-shopper cold start: NDCG@10 for shoppers with 0, 1 and 2 interactions.

Usage:
  nice .venv/bin/python benchmarks/quality/cold_start_users.py [--part sim,beauty] [--seed 0] [--out FILE.md]

Both parts hold out *new shoppers*: a seeded 20% of the shoppers (10% validation, 10% test) are
removed from training entirely; every model is fit on the other 80%. A new shopper's input is ``h``
of their items (h = 0, 1, 2), and the ranking runs over ALL items with the input items excluded.

**Simulator** (``shopkeep.simulate``, 2,000 items, 5,000 shoppers, 30 days): the input is the
shopper's *first* ``h`` interactions (views, carts, purchases; unique items), the targets are all of
their later interactions (several relevant items: NDCG@10 with binary gains, the ideal DCG over
``min(10, |targets|)``). Shoppers with at least ``h + 1`` items. The first session's context
(device, referrer, geo) feeds the context prior. Elicitation answers come from the simulated
shopper's ground truth (department of their largest taste weight, skin type, "fragrance-free" when
that preference is strong; budget: no preference).

**Beauty** (Amazon Beauty 5-core, S3-Rec files): the seqrec protocol's target (the last item), the
input truncated to the last ``h`` items before it, one target per shopper (NDCG@10, ties against the
target). There is no session context and no ground truth to answer questions, so those rows are
simulator-only. Knobs (lookalike neighbours and power) are chosen on the validation shoppers only.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.evaluation.datasets import load_seqrec
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.explore.context_prior import ContextPrior, event_context
from shopkeep.explore.elicitation import NO_PREFERENCE, PreferenceElicitor, catalog_facets
from shopkeep.explore.lookalike import LookalikeRecommender
from shopkeep.models.base import Interactions
from shopkeep.models.itemknn import ItemKNNRecommender
from shopkeep.models.popularity import PopularityRecommender
from shopkeep.models.segment_pop import SegmentPopularityRecommender
from shopkeep.simulate import StoreConfig, generate_store

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "amazon-beauty-5core-seq"
RESULTS = Path(__file__).resolve().parent / "results" / "cold_start_users.md"
HS = (0, 1, 2)
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
MISS_WEIGHTS = (0.05, 0.2, 0.5)
FUSION_WEIGHTS = (0.3, 1.0)
GRID = [{"n_neighbors": n, "power": p} for n in (30, 100, 300) for p in (1.0, 2.0)]


@dataclass(frozen=True)
class Case:
    """One new shopper: the full item sequence, the targets after the input, and the first context."""

    items: I64
    targets: I64
    context: Mapping[str, str]
    answers: Mapping[str, str]


def ndcg10(scores: F64, inputs: Sequence[I64], targets: Sequence[I64]) -> F64:
    """Per row NDCG@10 with binary gains over ``targets`` (inputs excluded; ties go against targets)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    for r, h in enumerate(inputs):
        s[r, h] = -np.inf
    out = np.zeros(len(targets))
    disc = 1.0 / np.log2(np.arange(10) + 2)
    for r, t in enumerate(targets):
        row = s[r]
        ts = row[t]
        # rank of each target: items scoring >= it (itself included), so a tie counts against it
        ranks = np.sort((row[None, :] >= ts[:, None]).sum(axis=1) - 1)
        hits = ranks[ranks < 10]
        out[r] = float(disc[hits].sum() / disc[: min(10, len(t))].sum())
    return out


def _models(train: Interactions, look: Mapping[str, float]) -> dict[str, Callable[[Sequence[I64]], F64]]:
    pop = PopularityRecommender().fit(train)
    seg = SegmentPopularityRecommender().fit(train)
    knn = ItemKNNRecommender().fit(train)
    lk = LookalikeRecommender(**look).fit(train)  # type: ignore[arg-type]
    prow = pop.score([np.zeros(0, dtype=np.int64)])[0].astype(np.float64)
    tie = prow / max(prow.max(), 1.0) * 1e-9

    def with_tie(model: object) -> Callable[[Sequence[I64]], F64]:
        return lambda hs: np.asarray(model.score(list(hs)), dtype=np.float64) + tie[None, :]  # type: ignore[attr-defined]

    return {"popularity": with_tie(pop), "segment_pop": with_tie(seg), "itemknn": with_tie(knn),
            "lookalike": with_tie(lk)}


def rrf(first: F64, second: F64, weight: float, c: float = 60.0) -> F64:
    """The engine's fusion of two sources (reciprocal rank, ``c = 60``): ``1/(c+r1+1) + weight/(c+r2+1)``
    over each source's top 500 (as the engine asks each source for 500 candidates)."""
    out = np.zeros_like(first)
    for scores, w in ((first, 1.0), (second, weight)):
        top = np.argsort(-scores, axis=1, kind="stable")[:, :500]
        rows = np.arange(scores.shape[0])[:, None]
        out[rows, top] += w / (c + np.arange(500)[None, :] + 1)
    return out + 1e-9 * first  # below the fused items, the first source's order


def _fused(models: Mapping[str, Callable[[Sequence[I64]], F64]], h: int, split: Mapping[str, Sequence[Case]],
           inputs_of: Callable[[Case], I64], targets_of: Callable[[Case], I64]) -> tuple[float, dict[str, F64]]:
    """itemknn + lookalike fused as the engine fuses them; the lookalike weight chosen on validation."""
    found: dict[float, dict[str, F64]] = {}
    for part, cs in split.items():
        inputs, targets = [inputs_of(c) for c in cs], [targets_of(c) for c in cs]
        for w in FUSION_WEIGHTS:
            fn = lambda hs, w=w: rrf(models["itemknn"](hs), models["lookalike"](hs), w)  # noqa: E731
            found.setdefault(w, {})[part] = _batched(fn, inputs, targets)
    best = max(FUSION_WEIGHTS, key=lambda w: float(found[w]["validation"].mean()))
    return best, found[best]


def _batched(fn: Callable[[Sequence[I64]], F64], inputs: Sequence[I64], targets: Sequence[I64]) -> F64:
    out = [ndcg10(fn(inputs[i:i + 256]), inputs[i:i + 256], targets[i:i + 256]) for i in range(0, len(inputs), 256)]
    return np.concatenate(out) if out else np.zeros(0)


def _ci(x: F64) -> str:
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else 0.0
    return f"{x.mean():.4f} ± {half:.4f}"


# ---- simulator --------------------------------------------------------------------------------
def _sim_answers(shopper: object, dept_of_type: Mapping[int, str]) -> dict[str, str]:
    tw = shopper.type_weights  # type: ignore[attr-defined]
    by_dept: dict[str, float] = {}
    for t, d in dept_of_type.items():
        by_dept[d] = by_dept.get(d, 0.0) + float(tw[t])
    out = {"department": max(by_dept, key=by_dept.__getitem__).lower(), "skin_type": shopper.skin_type,  # type: ignore[attr-defined]
           "budget": NO_PREFERENCE}
    out["fragrance_free"] = "true" if shopper.prefs["fragrance_free"] > 0.5 else NO_PREFERENCE  # type: ignore[attr-defined]
    return out


def sim_part(seed: int, say: Callable[[str], None]) -> list[tuple[str, int, str, str]]:
    """Rows ``(method, h, validation ndcg, test ndcg)`` on the simulator."""
    say("generating the synthetic store (about a minute)")
    store = generate_store(StoreConfig(n_items=2000, n_shoppers=5000, n_days=30, seed=seed))
    snap = CatalogSnapshot.from_items(store.items)
    dept_of_type = {int(store.catalog.type_idx[i]): snap.category_paths[i][0] for i in range(snap.n)}
    seqs = store.interaction_sequences()
    first_ctx: dict[str, dict[str, str]] = {}
    link = {e.anonymous_id: e.user_id for e in store.events if e.anonymous_id and e.user_id}
    for e in store.events:
        key = e.user_id or link.get(e.anonymous_id or "") or e.anonymous_id
        if e.item_id and key and key not in first_ctx:
            first_ctx[key] = event_context(e)
    keys = sorted(seqs)
    rng = np.random.default_rng(seed)
    role = rng.choice(3, size=len(keys), p=[0.8, 0.1, 0.1])  # 0 train, 1 validation, 2 test
    index = store.item_index
    arrays = {k: np.array([index[i] for i in seqs[k]], dtype=np.int64) for k in keys}
    train = Interactions(tuple(arrays[k] for k, r in zip(keys, role, strict=True) if r == 0), snap.n)
    prior = ContextPrior(shrinkage=50.0, fields=("device", "referrer", "geo")).fit(
        ((first_ctx.get(k, {}), int(i)) for k, r in zip(keys, role, strict=True) if r == 0 for i in arrays[k]),
        snap.n)
    facets = catalog_facets(snap)

    def cases(which: int) -> list[Case]:
        return [Case(arrays[k], arrays[k], first_ctx.get(k, {}),
                     _sim_answers(store.shopper_by_id[k], dept_of_type))
                for k, r in zip(keys, role, strict=True) if r == which and k in store.shopper_by_id]

    split = {"validation": cases(1), "test": cases(2)}
    say(f"fitting models on {len(train.sequences):,} known shoppers")
    out: list[tuple[str, int, str, str]] = []
    best = _choose_lookalike(train, split["validation"], say)
    models = _models(train, best)
    chosen: dict[int, float] = {}
    fusion: dict[int, float] = {}
    for h in HS:
        res: dict[str, dict[str, F64]] = {}
        elicited: dict[float, dict[str, F64]] = {}
        for part, cs in split.items():
            cs = [c for c in cs if len(c.items) > h]
            inputs, targets = [c.items[:h] for c in cs], [c.items[h:] for c in cs]
            per = {name: _batched(fn, inputs, targets) for name, fn in models.items() if h or name != "itemknn"}
            ctx = prior.scores([c.context for c in cs])
            if h == 0:
                per["context_prior"] = ndcg10(ctx, inputs, targets)
            base = ctx if h == 0 else models["lookalike"](inputs)
            for miss in MISS_WEIGHTS:
                el = PreferenceElicitor(miss_weight=miss)
                weights = [el.elicit(facets, base[r], c.answers)[1] for r, c in enumerate(cs)]
                elicited.setdefault(miss, {})[part] = ndcg10(np.stack(weights), inputs, targets)
            for name, v in per.items():
                res.setdefault(name, {})[part] = v
        if h:
            w, res["itemknn+lookalike (fused)"] = _fused(
                models, h, {p: [c for c in cs if len(c.items) > h] for p, cs in split.items()},
                lambda c, h=h: c.items[:h], lambda c, h=h: c.items[h:])
            fusion[h] = w
        chosen[h] = max(MISS_WEIGHTS, key=lambda m: float(elicited[m]["validation"].mean()))
        res["context_prior+elicitation" if h == 0 else "lookalike+elicitation"] = elicited[chosen[h]]
        for name, parts in res.items():
            out.append((name, h, _ci(parts["validation"]), _ci(parts["test"])))
        say(f"simulator h={h} done")
    out.append(("(lookalike knobs chosen on validation)", -1, str(best), ""))
    out.append(("(elicitation miss_weight per h, chosen on validation)", -1, str(chosen), ""))
    out.append(("(lookalike fusion weight per h, chosen on validation)", -1, str(fusion), ""))
    return out


def _choose_lookalike(train: Interactions, val: Sequence[Case], say: Callable[[str], None]) -> dict[str, float]:
    """The lookalike grid point with the best mean validation NDCG@10 over h = 1, 2."""
    best: tuple[float, dict[str, float]] | None = None
    for knobs in GRID:
        model = LookalikeRecommender(**knobs).fit(train)  # type: ignore[arg-type]
        total = 0.0
        for h in (1, 2):
            cs = [c for c in val if len(c.items) > h]
            total += float(_batched(lambda hs, m=model: np.asarray(m.score(list(hs)), np.float64),
                                    [c.items[:h] for c in cs], [c.items[h:] for c in cs]).mean())
        say(f"lookalike {knobs}: validation NDCG@10 (h=1,2 mean) {total / 2:.4f}")
        if best is None or total > best[0]:
            best = (total, dict(knobs))
    assert best is not None
    return best[1]


# ---- Beauty -----------------------------------------------------------------------------------
def beauty_part(data: Path, seed: int, say: Callable[[str], None]) -> list[tuple[str, int, str, str]]:
    """Rows ``(method, h, validation ndcg, test ndcg)`` on Amazon Beauty (new shoppers held out)."""
    ds = load_seqrec(data)
    rng = np.random.default_rng(seed)
    seqs = [s for s in ds.sequences if s.size >= 3]
    role = rng.choice(3, size=len(seqs), p=[0.8, 0.1, 0.1])
    train = Interactions(tuple(s for s, r in zip(seqs, role, strict=True) if r == 0), ds.n_items, ds.features)

    def cases(which: int) -> list[Case]:
        return [Case(s[:-1], s[-1:], {}, {}) for s, r in zip(seqs, role, strict=True) if r == which]

    split = {"validation": cases(1), "test": cases(2)}
    say(f"Beauty: {len(train.sequences):,} training shoppers, {len(split['test']):,} test shoppers")
    best = _choose_lookalike_last(train, split["validation"], say)
    models = _models(train, best)
    out = []
    fusion: dict[int, float] = {}
    for h in HS:
        res: dict[str, dict[str, F64]] = {}
        for part, cs in split.items():
            inputs = [c.items[len(c.items) - h:] if h else c.items[:0] for c in cs]
            targets = [c.targets for c in cs]
            for name, fn in models.items():
                if h or name != "itemknn":
                    res.setdefault(name, {})[part] = _batched(fn, inputs, targets)
        if h:
            fusion[h], res["itemknn+lookalike (fused)"] = _fused(
                models, h, split, lambda c, h=h: c.items[len(c.items) - h:], lambda c: c.targets)
        for name, parts in res.items():
            out.append((name, h, _ci(parts["validation"]), _ci(parts["test"])))
        say(f"Beauty h={h} done")
    out.append(("(lookalike knobs chosen on validation)", -1, str(best), ""))
    out.append(("(lookalike fusion weight per h, chosen on validation)", -1, str(fusion), ""))
    return out


def _choose_lookalike_last(train: Interactions, val: Sequence[Case], say: Callable[[str], None]) -> dict[str, float]:
    """As :func:`_choose_lookalike` with the seqrec input (the last h items) and one target."""
    best: tuple[float, dict[str, float]] | None = None
    for knobs in GRID:
        model = LookalikeRecommender(**knobs).fit(train)  # type: ignore[arg-type]
        total = sum(float(_batched(lambda hs, m=model: np.asarray(m.score(list(hs)), np.float64),
                                   [c.items[len(c.items) - h:] for c in val], [c.targets for c in val]).mean())
                    for h in (1, 2))
        say(f"lookalike {knobs}: validation NDCG@10 (h=1,2 mean) {total / 2:.4f}")
        if best is None or total > best[0]:
            best = (total, dict(knobs))
    assert best is not None
    return best[1]


def _table(title: str, rows: list[tuple[str, int, str, str]]) -> str:
    lines = [f"### {title}", "", "| method | interactions | validation NDCG@10 (95% CI) | test NDCG@10 (95% CI) |",
             "|---|---:|---:|---:|"]
    notes = []
    for name, h, val, test in rows:
        if h < 0:
            notes.append(f"{name}: {val}")
            continue
        lines.append(f"| {name} | {h} | {val} | {test} |")
    return "\n".join([*lines, "", *notes, ""])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, print and write the markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="sim,beauty")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    t0 = time.perf_counter()
    say = lambda msg: console.log(msg)  # noqa: E731
    parts = []
    if "sim" in args.part:
        parts.append(_table("Simulator (new shoppers; targets = all later interactions)", sim_part(args.seed, say)))
    if "beauty" in args.part:
        if not (args.data / "Beauty.txt").is_file() and not any(args.data.glob("*.txt")):
            console.log(f"no Beauty data at {args.data}: skipped")
        else:
            parts.append(_table("Amazon Beauty (new shoppers; input = last h items before the test item)",
                                beauty_part(args.data, args.seed, say)))
    head = (f"## Cold start by history length (seed {args.seed})\n\n`{' '.join(['python', *sys.argv])}`\n\n"
            f"{hardware_summary()}; numpy {np.__version__}; Python {platform.python_version()}; "
            f"{time.perf_counter() - t0:.0f} s\n")
    text = "\n".join([head, *parts])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
