"""Apply a policy to a ranked list: hard re-check, consent, boosts, pins, diversity, novelty,
new-item floors, MAP display, truncation to ``k`` — with a trace of every rule that acted.

Precedence: hard rules > pins > diversity caps > new-item floors > novelty > scores. A pin never
beats an exclusion; a boost never resurrects an ineligible item (boosts touch survivors only).
Pacing is storage-agnostic: pass today's counters (:func:`pacing_keys`) and add
``PolicyResult.pacing_increments`` to them afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context, Scored
from shopkeep.policy.hard import allowed_sources, describe_now, hard_checks, map_mode, selector_mask
from shopkeep.policy.model import BoostRule, PinRule, PolicySet, PolicyVersion, RuleFiring
from shopkeep.policy.slate import SlateBuilder

__all__ = ["PolicyItem", "PolicyResult", "Ranked", "RuleFiring", "apply_policy", "pacing_keys"]


#: What policy reads from a ranked item (``features.context.ScoredItem`` satisfies it).
Ranked: TypeAlias = Scored


@dataclass(frozen=True, slots=True)
class PolicyItem:
    """One item of the final slate. ``display_price_minor`` is never below MAP (None: unpriced)."""

    item_id: str
    score: float
    position: int
    sources: Mapping[str, tuple[float, int]]
    reasons: tuple[str, ...]
    display_price_minor: int | None


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The slate, the trace of rules that moved or removed items, and pacing counters to add."""

    items: tuple[PolicyItem, ...]
    trace: tuple[RuleFiring, ...]
    version: PolicyVersion
    personalized: bool = True
    pacing_increments: Mapping[str, float] = field(default_factory=dict)


def _paced(rule: BoostRule) -> bool:
    return rule.max_share is not None or rule.max_impressions_per_day is not None


def pacing_keys(policy: PolicySet, now_ms: int) -> tuple[str, ...]:
    """The counters :func:`apply_policy` reads for today (UTC): slates served, and per paced boost
    the slates it touched and the impressions it boosted."""
    day = describe_now(now_ms)
    boosts = [r for r in policy.of(BoostRule) if _paced(r)]
    if not boosts:
        return ()
    keys = [f"policy:slates:{day}"]
    for r in boosts:
        keys += [f"boost:{r.id}:slates:{day}", f"boost:{r.id}:impressions:{day}"]
    return tuple(keys)


def _live(rule: PinRule | BoostRule, context: Context) -> bool:
    return rule.window.contains(context.now_ms) and (not rule.surfaces or context.surface in rule.surfaces)


def _pacing_allows(rule: BoostRule, counters: Mapping[str, float], day: str) -> bool:
    total = counters.get(f"policy:slates:{day}", 0.0)
    applied = counters.get(f"boost:{rule.id}:slates:{day}", 0.0)
    shown = counters.get(f"boost:{rule.id}:impressions:{day}", 0.0)
    if rule.max_share is not None and applied >= rule.max_share * (total + 1):
        return False
    return rule.max_impressions_per_day is None or shown < rule.max_impressions_per_day


@dataclass
class _Pool:
    """Surviving ranked items: snapshot indices, scores, sources, and the trace so far."""

    idx: list[int] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    sources: Sequence[Mapping[str, tuple[float, int]]] = field(default_factory=list)
    trace: list[RuleFiring] = field(default_factory=list)


class RankedArrays(Protocol):
    """A ranked list held as arrays (``ranking.RankedArrays``; duck-typed: policy may not import ranking)."""

    @property
    def item_ids(self) -> Sequence[str]: ...
    @property
    def indices(self) -> npt.NDArray[np.int64]: ...
    @property
    def scores(self) -> npt.NDArray[np.float64]: ...
    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def source_ranks(self) -> npt.NDArray[np.int64]: ...
    def sources_at(self, j: int) -> dict[str, tuple[float, int]]: ...


class _LazySources(Sequence[Mapping[str, tuple[float, int]]]):
    """The surviving positions' sources, built only for the items a slate shows."""

    def __init__(self, ranked: RankedArrays, rows: npt.NDArray[np.int64], allowed: frozenset[str] | None) -> None:
        self.ranked, self.rows, self.allowed = ranked, rows, allowed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int) -> Mapping[str, tuple[float, int]]:  # type: ignore[override]
        sources = self.ranked.sources_at(int(self.rows[j]))
        return sources if self.allowed is None else {s: v for s, v in sources.items() if s in self.allowed}


def _as_arrays(ranked: Sequence[Ranked], snapshot: CatalogSnapshot) -> RankedArrays | None:
    needed = ("indices", "scores", "names", "source_ranks", "sources_at")
    if getattr(ranked, "item_ids", None) is snapshot.item_ids and all(hasattr(ranked, a) for a in needed):
        arrays: RankedArrays = ranked  # type: ignore[assignment]
        idx = arrays.indices
        if (not len(idx) or (idx.min() >= 0 and idx.max() < snapshot.n)) and len(set(idx.tolist())) == len(idx):
            return arrays
    return None


def _filter_arrays(context: Context, ranked: RankedArrays, policy: PolicySet,
                   checks: list[tuple[str, str, npt.NDArray[np.bool_], str]]) -> _Pool:
    """:func:`_filter` with array operations (items unique and in the snapshot); the same pool and trace."""
    pool = _Pool()
    idx = ranked.indices
    failed = np.full(len(idx), -1, dtype=np.int64)
    for c in reversed(range(len(checks))):  # the first failing check is the one traced
        failed[~checks[c][2][idx]] = c
    allowed = allowed_sources(context, policy)
    no_consent = np.zeros(len(idx), dtype=np.bool_)
    if allowed is not None:
        cols = [j for j, n in enumerate(ranked.names) if n in allowed]
        no_consent = ~(ranked.source_ranks[:, cols] >= 0).any(axis=1) & (failed < 0)
    for j in np.flatnonzero((failed >= 0) | no_consent).tolist():
        item_id = ranked.item_ids[int(idx[j])]
        if failed[j] >= 0:
            check = checks[int(failed[j])]
            pool.trace.append(RuleFiring(check[0], check[1], item_id, f"removed: {check[3]}"))
        else:
            pool.trace.append(RuleFiring("consent", "consent", item_id,
                                         "removed: found only by personal sources without consent"))
    rows = np.flatnonzero((failed < 0) & ~no_consent)
    pool.idx, pool.score = idx[rows].tolist(), ranked.scores[rows].tolist()
    pool.sources = _LazySources(ranked, rows, allowed)
    return pool


def _filter(context: Context, ranked: Sequence[Ranked], snapshot: CatalogSnapshot, policy: PolicySet,
            checks: list[tuple[str, str, npt.NDArray[np.bool_], str]]) -> _Pool:
    pool, seen = _Pool(), set()
    kept: list[Mapping[str, tuple[float, int]]] = []
    pool.sources = kept
    allowed = allowed_sources(context, policy)
    for r in ranked:
        if r.item_id in seen:
            continue
        seen.add(r.item_id)
        i = snapshot.index.get(r.item_id)
        if i is None:
            pool.trace.append(RuleFiring("catalog", "unknown", r.item_id, "removed: not in the catalog snapshot"))
            continue
        failed = next((c for c in checks if not c[2][i]), None)
        if failed is not None:
            pool.trace.append(RuleFiring(failed[0], failed[1], r.item_id, f"removed: {failed[3]}"))
            continue
        sources = r.sources
        if allowed is not None:
            sources = {s: v for s, v in r.sources.items() if s in allowed}
            if not sources:
                pool.trace.append(RuleFiring("consent", "consent", r.item_id,
                                             "removed: found only by personal sources without consent"))
                continue
        pool.idx.append(i)
        pool.score.append(float(r.score))
        kept.append(sources)
    return pool


def _boosts(context: Context, snapshot: CatalogSnapshot, policy: PolicySet, idx: npt.NDArray[np.int64],
            score: npt.NDArray[np.float64], counters: Mapping[str, float]) -> list[tuple[BoostRule, npt.NDArray[
                np.bool_]]]:
    day = describe_now(context.now_ms)
    fired = []
    for rule in policy.of(BoostRule):
        if not _live(rule, context) or not _pacing_allows(rule, counters, day):
            continue
        hit = selector_mask(snapshot, rule.select)[idx]
        if hit.any():
            score[hit] = score[hit] * rule.multiply + rule.add
            fired.append((rule, hit))
    return fired


def _pins(context: Context, snapshot: CatalogSnapshot, policy: PolicySet,
          checks: list[tuple[str, str, npt.NDArray[np.bool_], str]], trace: list[RuleFiring]) -> list[
              tuple[PinRule, int]]:
    out: list[tuple[PinRule, int]] = []
    taken: set[int] = set()
    for rule in policy.of(PinRule):
        if not _live(rule, context):
            continue
        i = snapshot.index.get(rule.item_id)
        if i is None:
            trace.append(RuleFiring(rule.id, "pin", rule.item_id, "pin skipped: not in the catalog snapshot"))
            continue
        failed = next((c for c in checks if not c[2][i]), None)
        if failed is not None:
            trace.append(RuleFiring(rule.id, "pin", rule.item_id, f"pin skipped: {failed[3]} ({failed[0]})"))
        elif i not in taken:
            taken.add(i)
            out.append((rule, i))
    return out


def apply_policy(context: Context, ranked: Sequence[Ranked], snapshot: CatalogSnapshot, policy: PolicySet, *,
                 k: int, pacing: Mapping[str, float] | None = None) -> PolicyResult:
    """The final slate of at most ``k`` items for ``context`` from ``ranked`` (best first)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValidationError("k", k, "must be an integer >= 0")
    checks = [(c.rule_id, c.kind, c.ok, c.reason) for c in hard_checks(snapshot, context, policy)]
    arrays = _as_arrays(ranked, snapshot)
    pool = (_filter(context, ranked, snapshot, policy, checks) if arrays is None
            else _filter_arrays(context, arrays, policy, checks))
    idx = np.asarray(pool.idx, dtype=np.int64)
    score = np.asarray(pool.score, dtype=np.float64)
    counters = pacing or {}
    boosted = _boosts(context, snapshot, policy, idx, score, counters)
    pins = _pins(context, snapshot, policy, checks, pool.trace)
    builder = SlateBuilder(snapshot, policy, context.now_ms, idx, score)
    picks = builder.build(k, [(rule.id, rule.position, i) for rule, i in pins], pool.trace)
    return _result(context, snapshot, policy, picks, pool, boosted, score, pins)


def _result(context: Context, snapshot: CatalogSnapshot, policy: PolicySet, picks: list[tuple[int, int, str]],
            pool: _Pool, boosted: list[tuple[BoostRule, npt.NDArray[np.bool_]]], score: npt.NDArray[np.float64],
            pins: list[tuple[PinRule, int]]) -> PolicyResult:
    map_id, _ = map_mode(policy)
    trace = pool.trace
    # where each picked item sits in the pool (pool items are unique); only the few picks are looked up
    at = np.asarray(pool.idx, dtype=np.int64)
    pos_of = {}
    for _, i, _ in picks:
        found = np.flatnonzero(at == i)
        if found.size:
            pos_of[i] = int(found[0])
    items = []
    boost_counts = {rule.id: 0 for rule, _ in boosted}
    for position, i, why in picks:
        item_id = snapshot.item_ids[i]
        sources = pool.sources[pos_of[i]] if i in pos_of else {}
        reasons = [f"source:{s}" for s in sorted(sources)]
        reasons += [why] if why else []
        for rule, hit in boosted:
            if i in pos_of and hit[pos_of[i]]:
                reasons.append(f"boost:{rule.id}")
                boost_counts[rule.id] += 1
                trace.append(RuleFiring(rule.id, "boost", item_id, f"score x{rule.multiply:g} +{rule.add:g}"))
        price, floor = int(snapshot.price_minor[i]), int(snapshot.map_minor[i])
        display = None if price < 0 else max(price, floor)
        if price >= 0 and floor > price:
            reasons.append(f"map:{map_id}")
            trace.append(RuleFiring(map_id, "map", item_id, f"display price raised {price} -> {floor} (MAP)"))
        sc = float(score[pos_of[i]]) if i in pos_of else 0.0
        items.append(PolicyItem(item_id, sc, position, sources, tuple(reasons), display))
    return PolicyResult(tuple(items), tuple(trace), policy.version, context.personalize,
                        _increments(policy, context.now_ms, boosted, boost_counts))


def _increments(policy: PolicySet, now_ms: int, boosted: list[tuple[BoostRule, npt.NDArray[np.bool_]]],
                shown: Mapping[str, int]) -> dict[str, float]:
    keys = pacing_keys(policy, now_ms)
    if not keys:
        return {}
    day = describe_now(now_ms)
    out = {keys[0]: 1.0}
    for rule, _ in boosted:
        if _paced(rule) and shown[rule.id]:
            out[f"boost:{rule.id}:slates:{day}"] = 1.0
            out[f"boost:{rule.id}:impressions:{day}"] = float(shown[rule.id])
    return out
