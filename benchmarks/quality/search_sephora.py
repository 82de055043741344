"""Search on real products: the Sephora cosmetics catalog (shared/data/sephora-cosmetics/cosmetics.csv).

The catalog is loaded through the configurable CSV loader with examples/mappings/sephora_cosmetics.toml;
search derives ``fragrance_free`` from the ingredient lists (shopkeep.search.attributes). The judge
reads the loaded items independently of the parser: type = Label (the category); skin type = that flag
is 1; fragrance-free = the ingredient text is not a placeholder ("Visit the … boutique", "No Info")
and contains none of fragrance, parfum, perfume; prices inclusive; brand = Brand.

1. Constraint queries (examples/queries/sephora.tsv): precision = share of returned products (top 20)
   satisfying every stated constraint (must be 1.0), recall = |top 20 ∩ satisfying| / min(20, |satisfying|).
2. Hybrid vs parts: nDCG@10 (binary relevance = the judge) of BM25 alone, dense alone and the hybrid,
   retrieval only (constraints shape the text but do not filter). The dense weight is chosen on the
   validation half of the queries and the three modes are reported on the held-out half
   (search_fusion.py; the split is a hash of the query text).

    .venv/bin/python benchmarks/quality/search_sephora.py [--encoder all-MiniLM-L6-v2|hashing] [--k 20]
"""

from __future__ import annotations

import argparse
import csv
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopkeep.catalog.loaders import load_items
from shopkeep.catalog.mapping import load_mapping
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.models.content import MINILM
from shopkeep.search import SearchConfig, Searcher, SearchRequest
from shopkeep.types import Item

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_fusion import tuned_report

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "sephora-cosmetics" / "cosmetics.csv"
MAPPING = ROOT / "examples" / "mappings" / "sephora_cosmetics.toml"
QUERIES = ROOT / "examples" / "queries" / "sephora.tsv"
_PLACEHOLDER = re.compile(r"visit the .* boutique|^\s*no info\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    """A query and its stated constraints."""

    text: str
    type: str | None
    skin: tuple[str, ...]
    fragrance_free: bool
    price_max: float | None
    price_min: float | None
    brand: str | None


def load_catalog(path: Path = DATA) -> list[Item]:
    """The Sephora items via the CSV loader and the example mapping."""
    result = load_items(path, mapping=load_mapping(MAPPING), on_error="skip")
    return list(result.items)


def load_queries(path: Path = QUERIES) -> list[Query]:
    """Rows of a query TSV (comment lines start with #)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    return [Query(r["query"], r["type"] or None, tuple(s for s in r["skin"].split(",") if s),
                  r["fragrance_free"] == "1", float(r["price_max"]) if r["price_max"] else None,
                  float(r["price_min"]) if r["price_min"] else None, r["brand"] or None) for r in rows]


def fragrance_free(item: Item) -> bool:
    """The judge's fragrance-free: a known ingredient list without fragrance/parfum/perfume."""
    text = str(item.attributes.get("ingredients", "") or "")
    if not text.strip() or _PLACEHOLDER.search(text):
        return False
    low = text.lower()
    return not any(t in low for t in ("fragrance", "parfum", "perfume"))


def judge(q: Query) -> Callable[[Item], bool]:
    """Whether an item satisfies every constraint ``q`` states."""
    def ok(it: Item) -> bool:
        if q.type and (not it.category or it.category[0] != q.type):
            return False
        skins = {s.lower() for s in it.attributes.get("skin_type", ())}  # type: ignore[union-attr]
        if any(s.lower() not in skins for s in q.skin):
            return False
        if q.fragrance_free and not fragrance_free(it):
            return False
        price = it.price.amount / 100 if it.price is not None else None
        if q.price_max is not None and (price is None or price > q.price_max):
            return False
        if q.price_min is not None and (price is None or price < q.price_min):
            return False
        return not (q.brand and it.brand != q.brand)
    return ok


def constraint_eval(searcher: Searcher, snap: CatalogSnapshot, queries: list[Query], k: int) -> dict[str, float]:
    """Precision, recall and zero-result rate over the constraint queries (prints failures)."""
    precisions, recalls, zero = [], [], 0
    for q in queries:
        ok = judge(q)
        satisfying = {it.item_id for it in snap.items if ok(it)}
        res = searcher.search(SearchRequest(q.text, k=k))
        got = [h.item_id for h in res.items]
        good = [g for g in got if g in satisfying]
        precisions.append(len(good) / len(got) if got else 1.0)
        recalls.append(len(set(good)) / min(k, len(satisfying)) if satisfying else 1.0)
        zero += not got
        if good != got or recalls[-1] < 0.9:
            labels = [c.label() for c in res.parsed.constraints]
            print(f"  {q.text!r}: precision {precisions[-1]:.2f} recall {recalls[-1]:.2f} "
                  f"(satisfying {len(satisfying)}) parsed {labels} relaxed {[c.label() for c in res.relaxed]}")
    n = len(queries)
    return {"precision": sum(precisions) / n, "precision_all_queries_1": float(all(p == 1.0 for p in precisions)),
            "recall": sum(recalls) / n, "zero_result_rate": zero / n}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default=MINILM, choices=[MINILM, "hashing"])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    items = load_catalog(args.data)
    snap = CatalogSnapshot.from_items(items)
    start = time.perf_counter()
    searcher = Searcher(SearchConfig(encoder=args.encoder)).fit(snap)
    print(f"Sephora: {snap.n} items, index built in {time.perf_counter() - start:.1f} s, encoder {args.encoder}; "
          f"python {platform.python_version()}, {platform.processor() or platform.machine()}")
    queries = load_queries()
    stats = constraint_eval(searcher, snap, queries, args.k)
    print(f"constraint queries: {len(queries)}  precision {stats['precision']:.4f}  "
          f"recall@{args.k} {stats['recall']:.4f}  zero-result rate {stats['zero_result_rate']:.4f}")
    print("nDCG@10, retrieval only, judge = relevance:")
    tuned_report(searcher, snap, [(q.text, judge(q)) for q in queries])
    print(f"searcher stats: {searcher.stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
