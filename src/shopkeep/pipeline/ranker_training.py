"""The learned re-ranker of an artifact version, trained from the stored logs (``shopkeep train``).

Two sources of labelled requests, the first that has enough data wins:

* **slates** — served slates (the slate log) whose features carry the served candidates
  (``features["candidates"]``: item, fused score, fused position, per-source (score, rank)) joined
  to the click / view / add-to-cart / purchase events that carry their ``trace_id``. The features
  are the ones that were served (no re-computation, so training cannot skew from serving) and were
  produced by retrievers trained *before* the slate was served (no stacking leakage). Logged
  positions enter as the ``logged_position`` feature and are set to a constant at serving (position
  bias handled as a feature; the exploration policy randomizes positions, see explore.slates).
  Slates are split in time: the earlier 75% train, the rest calibrate (``min_slates`` each).
* **next_item** — without enough slates: the item events are cut in time at the ``split[0]`` and
  ``split[1]`` quantiles of their timestamps; retrievers A (itemknn, popularity, affinity, content:
  the serving source set) are fit on the events before the first cut only, the ranker is trained on
  next-item requests of ``[cut0, cut1)`` over retrievers A's home candidates and calibrated on
  ``[cut1, end]``: a later window than its retrievers' data (no stacking leakage); no positions exist.

The item statistics (popularity, recency) are then re-taken as of the end of the log, so serving
reads current values. The model is saved as LightGBM text + JSON (``ranking.learned``; no pickle).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.events.log import EVENTS_LOG, SLATES_LOG, SlateRecord
from shopkeep.features.context import Context, ContextRequest
from shopkeep.models.base import Interactions
from shopkeep.models.registry import create_model
from shopkeep.pipeline.artifacts import ArtifactManifest, LoadedArtifacts
from shopkeep.ranking import LabeledRequests, Objective, Ranker, next_item_requests
from shopkeep.ranking.features import ItemStats
from shopkeep.storage.base import Store
from shopkeep.types import Event

__all__ = ["ItemEvent", "LoggedCandidate", "RankerReport", "read_events", "read_served_slates", "slate_requests",
           "train_ranker"]

_ITEM_KINDS = ("view", "click", "add_to_cart", "purchase")
_GRADES = {"view": 1, "click": 1, "add_to_cart": 2, "purchase": 3}
_PAGE = 20_000


@dataclass(frozen=True)
class RankerReport:
    """What ``train_ranker`` did: ``mode`` slates | next_item | skipped (with the ``reason``)."""

    mode: str
    reason: str = ""
    n_train: int = 0
    n_calibration: int = 0
    rows: int = 0
    windows_ms: Mapping[str, int] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored in the artifact manifest)."""
        return {"mode": self.mode, "reason": self.reason, "n_train": self.n_train, "n_calibration": self.n_calibration,
                "rows": self.rows, "windows_ms": dict(self.windows_ms or {}), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True, slots=True)
class LoggedCandidate:
    """A served candidate read back from the slate log (the ranker's ``Fused`` protocol + fused position)."""

    item_id: str
    score: float
    sources: Mapping[str, tuple[float, int]]
    fused_pos: int


def _read_all(store: Store, log: str, keep: Callable[[str], bool] = lambda payload: True) -> list[Any]:
    out: list[Any] = []
    after = 0
    while True:
        page = store.read(log, after_seq=after, k=_PAGE)
        out.extend((r.ts_ms, orjson.loads(r.payload)) for r in page if keep(r.payload))
        if len(page) < _PAGE:
            return out
        after = page[-1].seq


@dataclass(frozen=True, slots=True)
class ItemEvent:
    """The fields of a stored item event the re-ranker's training reads (duck-types :class:`Event`)."""

    type: str
    item_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    trace_id: str | None


_WANTED = tuple(f'"type":"{k}"' for k in _ITEM_KINDS)


def read_events(store: Store) -> list[Event]:
    """The stored view / click / add-to-cart / purchase events with an item, in event-time order
    (as :class:`ItemEvent`; the canonical payload is filtered by its type before it is parsed)."""
    rows = _read_all(store, EVENTS_LOG, lambda payload: any(w in payload for w in _WANTED))
    out = [ItemEvent(raw["type"], raw["item_id"], raw.get("user_id"), raw.get("anonymous_id"),
                     datetime.fromtimestamp(ts / 1000, UTC), raw.get("trace_id"))
           for ts, raw in rows if raw.get("item_id") is not None and raw["type"] in _ITEM_KINDS]
    out.sort(key=lambda e: e.timestamp)
    return out  # type: ignore[return-value]  # duck-typed: every reader uses only these fields


def read_served_slates(store: Store) -> list[SlateRecord]:
    """Every logged slate that carries its served candidates, in serving-time order."""
    slates = [SlateRecord.from_dict(raw) for _, raw in _read_all(store, SLATES_LOG)]
    return sorted((s for s in slates if s.features.get("candidates")), key=lambda s: s.ts)


def _context(slate: SlateRecord) -> Context:
    f = slate.features
    req = ContextRequest(surface=slate.surface, user_id=slate.user_id, anonymous_id=slate.anonymous_id,  # type: ignore[arg-type]
                         session_id=slate.session_id, item_id=f.get("item_id"), store=f.get("store"),
                         region=f.get("region"), k=int(f.get("k") or len(slate.items) or 1))
    return Context(req, now_ms=int(f.get("now_ms") or slate.ts.timestamp() * 1000), user_id=slate.user_id,
                   anonymous_id=slate.anonymous_id, session_id=slate.session_id, region=f.get("region"),
                   store=f.get("store"), recent_items=tuple(f.get("recent_items") or ()),
                   cart_items=tuple(f.get("cart_items") or ()),
                   affinities={str(k): float(v) for k, v in (f.get("affinities") or {}).items()})


def _candidates(slate: SlateRecord) -> list[LoggedCandidate]:
    out = []
    for row in slate.features["candidates"]:
        item, score, pos, sources = row
        out.append(LoggedCandidate(str(item), float(score), {str(s): (float(v[0]), int(v[1]))
                                                              for s, v in sources.items()}, int(pos)))
    return out


SlateData = tuple[LabeledRequests, list[list[LoggedCandidate]], list[dict[str, int]]]


def slate_requests(slates: Sequence[SlateRecord], events: Sequence[Event]) -> SlateData:
    """Labelled requests from served slates: grades view/click 1, cart 2, purchase 3 by trace_id;
    the served candidates; the logged position of each served item."""
    labels: dict[str, dict[str, int]] = {}
    bought: dict[str, set[str]] = {}
    for e in events:
        if e.trace_id is None or e.item_id is None or str(e.type) not in _GRADES:
            continue
        grades = labels.setdefault(e.trace_id, {})
        grades[e.item_id] = max(grades.get(e.item_id, 0), _GRADES[str(e.type)])
        if str(e.type) == "purchase":
            bought.setdefault(e.trace_id, set()).add(e.item_id)
    contexts, targets, grades_out, purchases, fused, positions = [], [], [], [], [], []
    for s in slates:
        g = labels.get(s.trace_id, {})
        contexts.append(_context(s))
        targets.append(max(g, key=lambda i: g[i]) if g else "")
        grades_out.append(g)
        purchases.append(frozenset(bought.get(s.trace_id, set())))
        fused.append(_candidates(s))
        positions.append(dict(zip(s.items, s.positions, strict=True)))
    data = LabeledRequests(tuple(contexts), tuple(targets), tuple(grades_out), tuple(purchases))
    return data, fused, positions


def _subset(data: LabeledRequests, rows: Sequence[int]) -> LabeledRequests:
    return LabeledRequests(tuple(data.contexts[r] for r in rows), tuple(data.targets[r] for r in rows),
                           tuple(data.grades[r] for r in rows), tuple(data.purchases[r] for r in rows))


def _ms(e: Event) -> int:
    return int(e.timestamp.timestamp() * 1000)


def _retrievers_a(snapshot: CatalogSnapshot, events: Sequence[Event], until_ms: int, path: Path) -> Any:
    """The serving source set over itemknn + popularity fit on the events before ``until_ms``."""
    from shopkeep.pipeline.stages import build_sources

    link = {e.anonymous_id: e.user_id for e in events if e.anonymous_id and e.user_id}
    seqs: dict[str, list[int]] = {}
    for e in events:
        key = e.user_id or link.get(e.anonymous_id or "") or e.anonymous_id
        if _ms(e) >= until_ms or key is None or e.item_id not in snapshot.index or str(e.type) not in _ITEM_KINDS:
            continue
        hist = seqs.setdefault(key, [])
        i = snapshot.index[e.item_id]  # type: ignore[index]
        if i not in hist:
            hist.append(i)
    train = Interactions(tuple(np.asarray(s, dtype=np.int64) for s in seqs.values() if len(s) >= 2), snapshot.n)
    if not train.sequences:
        raise ValidationError("events", 0, "no shopper has two interactions before the ranker's window")
    knn = create_model("itemknn").fit(train)
    manifest = ArtifactManifest("ranker-retrievers-a", "", ("itemknn",), tuple(snapshot.item_ids), "", 0, 0, {})
    return build_sources(snapshot, LoadedArtifacts(path, manifest, {"itemknn": knn}),
                         events=[e for e in events if _ms(e) < until_ms])


def _home_candidates(sources: Any, snapshot: CatalogSnapshot, data: LabeledRequests, k: int) -> list[Any]:
    masks = []
    for ctx in data.contexts:
        m = snapshot.active.copy()
        m[snapshot.indices(list(ctx.recent_items))] = False
        masks.append(m)
    return list(sources.retriever("home").retrieve_arrays(list(data.contexts), masks, snapshot, k=k))


def _cap(data: LabeledRequests, n: int) -> LabeledRequests:
    if len(data) <= n:
        return data
    rows = np.sort(np.random.default_rng(0).choice(len(data), n, replace=False))
    return _subset(data, rows.tolist())


def _next_item(snapshot: CatalogSnapshot, events: Sequence[Event], split: tuple[float, float], k: int,
               max_requests: int, path: Path) -> tuple[Any, ...] | str:
    times = [_ms(e) for e in events if e.item_id is not None and str(e.type) in _ITEM_KINDS]
    if not times:
        return "no item events in the log"
    t1 = max(times) + 1
    cut0, cut1 = (int(q) for q in np.quantile(np.asarray(times, dtype=np.float64), split))  # shares of events
    train = _cap(next_item_requests(events, snapshot, cut0, cut1), max_requests)
    calib = _cap(next_item_requests(events, snapshot, cut1, t1), max_requests)
    if min(len(train), len(calib)) < 20:
        return f"too few next-item requests (train {len(train)}, calibration {len(calib)}; need 20 each)"
    sources = _retrievers_a(snapshot, events, cut0, path)
    names = tuple(sorted(sources.sources))
    windows = {"retrievers_until": cut0, "train_from": cut0, "calibration_from": cut1, "until": t1}
    return (train, _home_candidates(sources, snapshot, train, k), calib, _home_candidates(sources, snapshot, calib, k),
            None, names, windows)


def _from_slates(slates: Sequence[SlateRecord], events: Sequence[Event], split: float,
                 min_requests: int) -> tuple[Any, ...] | str:
    data, fused, positions = slate_requests(slates, events)
    cut = int(len(data) * split)
    tr, ca = list(range(cut)), list(range(cut, len(data)))
    clicked = [sum(1 for r in rows if data.grades[r]) for rows in (tr, ca)]
    if min(len(tr), len(ca)) < min_requests or min(clicked) < 5:
        return (f"{len(data)} served slates with candidates, {clicked} with interactions: need {min_requests} per "
                "window and 5 with interactions")
    names = tuple(sorted({s for lst in fused for c in lst for s in c.sources}))
    windows = {"train_from": int(slates[0].ts.timestamp() * 1000),
               "calibration_from": int(slates[cut].ts.timestamp() * 1000),
               "until": int(slates[-1].ts.timestamp() * 1000) + 1}
    return (_subset(data, tr), [fused[r] for r in tr], _subset(data, ca), [fused[r] for r in ca],
            [positions[r] for r in tr], names, windows)


def train_ranker(store: Store, snapshot: CatalogSnapshot, out: str | Path, *, objective: Objective | None = None,
                 return_cost_fraction: float = 0.0, trees: int = 80, split: tuple[float, float] = (0.6, 0.8),
                 candidates_k: int = 100, max_requests: int = 500, min_slates: int = 30,
                 progress: Callable[[str], None] | None = None) -> RankerReport:
    """Train, calibrate and save the re-ranker at ``out`` (see the module docstring); never raises for
    missing data or a missing LightGBM — the report says why it was skipped."""
    from shopkeep.ranking.learned import LearnedModel, lightgbm_available

    say = progress or (lambda message: None)
    if not lightgbm_available():
        return RankerReport("skipped", "lightgbm is not installed")
    if snapshot.n == 0:
        return RankerReport("skipped", "the catalog is empty")
    start = time.perf_counter()
    say("reading events and served slates for the re-ranker")
    events = read_events(store)
    got: tuple[Any, ...] | str = _from_slates(read_served_slates(store), events, 0.75, min_slates)
    mode, why_not_slates = "slates", ""
    if isinstance(got, str):
        mode, why_not_slates = "next_item", f"slates: {got}"
        say("fitting retrievers A and building next-item candidates for the re-ranker")
        got = _next_item(snapshot, events, split, candidates_k, max_requests, Path(out))
    if isinstance(got, str):
        return RankerReport("skipped", f"{why_not_slates}; next_item: {got}", seconds=time.perf_counter() - start)
    train, train_fused, calib, calib_fused, positions, names, windows = got
    say(f"training the re-ranker ({mode}) on {sum(map(len, train_fused)):,} rows")
    model = LearnedModel(n_estimators=trees).fit(train, train_fused, calib, calib_fused, snapshot,
                                                 ItemStats.from_events(events, windows["train_from"]), names,
                                                 positions)
    model.restat(ItemStats.from_events(events, max(_ms(e) for e in events) + 1))
    Ranker(objective, model, return_cost_fraction).save(out)
    return RankerReport(mode, why_not_slates, len(train), len(calib), sum(map(len, train_fused)), windows,
                        time.perf_counter() - start)
