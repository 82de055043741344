"""Query-understanding evaluation: expected parses (JSONL) → exact-match accuracy per constraint kind.

A case is one line ``{"id", "group", "query", "expect": {kind: [labels] | sort | exact item id}}``;
kinds are :data:`EVAL_KINDS`. A kind not listed in ``expect`` is expected to be empty, so a
constraint the parser invents counts as an error. Per kind, accuracy is the share of exact matches
(the sorted label lists equal) over the cases where the kind is expected *or* was parsed.

>>> score_cases([QueryCase("q1", "", "red dress", {"category": ("category=dress",)})],
...             lambda q: {"category": ("category=dress",), "attribute": ("color=red",)}).per_kind["attribute"]
(0, 1)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shopkeep.errors import ValidationError
from shopkeep.search.query import KINDS, ParsedQuery

__all__ = ["EVAL_KINDS", "QueryCase", "QueryScore", "load_cases", "parsed_labels", "score_cases"]

#: The constraint kinds plus the sort intent and the exact-product hit.
EVAL_KINDS = (*KINDS, "sort", "exact")

Labels = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class QueryCase:
    """One query and the labels expected per kind."""

    id: str
    group: str
    query: str
    expect: Labels


@dataclass(frozen=True)
class QueryScore:
    """``per_kind[kind] = (exact matches, cases counted)``; ``failures``: (case, kind, expected, got)."""

    per_kind: Mapping[str, tuple[int, int]]
    queries_exact: int
    queries: int
    failures: tuple[tuple[QueryCase, str, tuple[str, ...], tuple[str, ...]], ...] = field(default=())

    def accuracy(self, kind: str) -> float:
        """Exact-match accuracy of ``kind`` (1.0 when no case counts)."""
        hit, n = self.per_kind.get(kind, (0, 0))
        return hit / n if n else 1.0


def load_cases(path: Path) -> list[QueryCase]:
    """The cases of a JSONL file (blank lines skipped; an unknown kind raises ValidationError)."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        expect: dict[str, tuple[str, ...]] = {}
        for kind, value in row.get("expect", {}).items():
            if kind not in EVAL_KINDS:
                raise ValidationError(f"line {n}.expect", kind, f"unknown kind; use {', '.join(EVAL_KINDS)}")
            expect[kind] = tuple(sorted([value] if isinstance(value, str) else value))
        out.append(QueryCase(str(row["id"]), str(row.get("group", "")), str(row["query"]), expect))
    return out


def parsed_labels(parsed: ParsedQuery) -> dict[str, tuple[str, ...]]:
    """The labels of a parse per kind (``sort``: the intent; ``exact``: the item id)."""
    out = {kind: tuple(sorted(c.label() for c in parsed.of_kind(kind))) for kind in KINDS}
    out["sort"] = (parsed.sort,) if parsed.sort else ()
    out["exact"] = (parsed.exact_item_id,) if parsed.exact_item_id else ()
    return out


def score_cases(cases: list[QueryCase], parse: Callable[[str], Labels]) -> QueryScore:
    """Score ``parse`` (query → labels per kind) on ``cases``."""
    counts = {kind: [0, 0] for kind in EVAL_KINDS}
    failures = []
    whole = 0
    for case in cases:
        got = parse(case.query)
        ok = True
        for kind in EVAL_KINDS:
            want, have = case.expect.get(kind, ()), tuple(sorted(got.get(kind, ())))
            if not want and not have:
                continue
            counts[kind][1] += 1
            if want == have:
                counts[kind][0] += 1
            else:
                ok = False
                failures.append((case, kind, want, have))
        whole += ok
    return QueryScore({k: (v[0], v[1]) for k, v in counts.items()}, whole, len(cases), tuple(failures))
