"""Query understanding: exact-match accuracy per constraint kind on the hand-written query set.

The set (tests/search/data/query_understanding_v1.jsonl) holds 283 queries typed as shoppers type them
(typos, "$30" / "30 bucks" / "under thirty", negations, ranges, SPF/ml, sizes and fits, availability,
sort intents, brands with typos, exact ids) with the constraints a correct reading gives, against the
hand-written 34-item catalog tests/search/data/qu_catalog.jsonl. The last 40 (group "holdout") were
written after the parser fixes and never used to change the parser; they are reported separately.

A second set (tests/search/data/query_understanding_v2_typos_ranges.jsonl, 50 queries) covers two-edit
brand typos ("neutrogna", "cervae"), ordinary words one or two edits from a brand that must stay
ordinary words ("elegant", "fancy", "crave", "kindle"), and ml ranges and bounds ("between 50 and
100 ml", "50-100ml", "under 200 ml"). All 50 were written before the parser was changed for them; the
25 of group "dev" were used while changing it, the 25 of group "holdout" were not.

    .venv/bin/python benchmarks/quality/query_understanding.py [--failures]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shopkeep.catalog.loaders import load_items
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.evaluation.environment import hardware_summary
from shopkeep.search import SearchConfig, Searcher
from shopkeep.search.understanding import EVAL_KINDS, QueryScore, load_cases, parsed_labels, score_cases

DATA = Path(__file__).resolve().parents[2] / "tests" / "search" / "data"


def _table(title: str, score: QueryScore) -> None:
    print(f"\n{title}: {score.queries} queries, whole-query exact match "
          f"{score.queries_exact}/{score.queries} = {score.queries_exact / max(score.queries, 1):.3f}")
    print(f"{'kind':<14}{'exact':>7}{'counted':>9}{'accuracy':>10}")
    for kind in EVAL_KINDS:
        hit, n = score.per_kind[kind]
        print(f"{kind:<14}{hit:>7}{n:>9}{score.accuracy(kind):>10.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--failures", action="store_true", help="list every wrong kind of every query")
    args = ap.parse_args(argv)
    print(hardware_summary())
    items = load_items(DATA / "qu_catalog.jsonl").items
    searcher = Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(items))
    cases = load_cases(DATA / "query_understanding_v1.jsonl")
    typos = load_cases(DATA / "query_understanding_v2_typos_ranges.jsonl")

    def parse(q: str) -> dict[str, tuple[str, ...]]:
        return parsed_labels(searcher.parse([q])[0])

    everything = score_cases(cases, parse)
    _table("all", everything)
    _table("written before the fixes", score_cases([c for c in cases if not c.group.startswith("holdout")], parse))
    _table("holdout (written after the fixes)", score_cases([c for c in cases if c.group.startswith("holdout")], parse))
    _failures(everything, args.failures)
    second = score_cases(typos, parse)
    print("\n== second set: brand typos, ordinary words, ml ranges (query_understanding_v2_typos_ranges.jsonl) ==")
    _table("all", second)
    _table("dev (used while changing the parser)", score_cases([c for c in typos if c.group.startswith("dev")], parse))
    _table("holdout (never used to change the parser)",
           score_cases([c for c in typos if c.group.startswith("holdout")], parse))
    _failures(second, args.failures)
    return 0


def _failures(score: QueryScore, every: bool) -> None:
    print("\nfailures:" if score.failures else "\nno failures")
    for case, kind, want, got in score.failures if every or len(score.failures) < 30 else ():
        print(f"  {case.id} {case.query!r}: {kind} expected {list(want)} got {list(got)}")


if __name__ == "__main__":
    sys.exit(main())
