"""Re-ranker features: one row per (request, fused candidate), the same code at training and serving.

Columns (:meth:`FeatureBuilder.names`): per retrieval source ``<s>_score`` and ``<s>_rank`` (missing:
:data:`MISSING_SCORE` / :data:`MISSING_RANK`); the fused score, fused position and number of sources;
log price, margin % and the price relative to the median of the item's leaf category, to the shopper's
budget and to the shopper's own price level (mean category-relative price of the recent items);
stock at the shopper's store; popularity (log decayed count) and recency (days since the last
interaction) from :class:`ItemStats`; item age and rating; the session's attribute-affinity match
(sum of ``Context.affinities`` over the item's affinity keys, raw and relative to the strongest key);
the surface, the hour of day and the history length; ``logged_position``.

Position bias: the choice here is *position as a feature, set to a constant at serving*. Rows built
from logged impressions carry the served position (``positions``), and serving sets the column to
:data:`SERVING_POSITION`, so the model's position effect is held fixed across candidates. The
synthetic next-item labels have no positions (nothing was served), so there the column is the
constant :data:`MISSING_RANK` at training and serving alike and carries no information.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context, Scored
from shopkeep.types import Event

__all__ = ["MISSING_RANK", "MISSING_SCORE", "SERVING_POSITION", "FeatureBuilder", "Fused", "ItemStats"]

FloatArray = npt.NDArray[np.float64]
MISSING_SCORE = -1.0
MISSING_RANK = 1000.0
SERVING_POSITION = 0.0
SURFACES = ("home", "pdp", "cart", "search")
_EVENT_WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
_DAY_MS = 86_400_000.0


#: What the ranker reads from a fused candidate (duck-typed: ranking may not import retrieval).
Fused: TypeAlias = Scored


@dataclass(frozen=True)
class ItemStats:
    """Per-item popularity (decayed interaction count) and last interaction time, as of ``as_of_ms``."""

    item_ids: tuple[str, ...]
    counts: tuple[float, ...]
    last_ms: tuple[int, ...]
    as_of_ms: int

    @classmethod
    def from_events(cls, events: Iterable[Event], until_ms: int, half_life_days: float = 7.0) -> ItemStats:
        """Count item events strictly before ``until_ms`` (view 1, click 1, cart 3, purchase 5), decayed."""
        if not half_life_days > 0:
            raise ValidationError("half_life_days", half_life_days, "must be > 0")
        tau = half_life_days * _DAY_MS / math.log(2.0)
        counts: dict[str, float] = {}
        last: dict[str, int] = {}
        for e in events:
            w = _EVENT_WEIGHTS.get(str(e.type), 0.0)
            t = int(e.timestamp.timestamp() * 1000)
            if e.item_id is None or w <= 0 or t >= until_ms:
                continue
            counts[e.item_id] = counts.get(e.item_id, 0.0) + w * math.exp((t - until_ms) / tau)
            last[e.item_id] = max(last.get(e.item_id, t), t)
        ids = tuple(sorted(counts))
        return cls(ids, tuple(counts[i] for i in ids), tuple(last[i] for i in ids), until_ms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"item_ids": list(self.item_ids), "counts": list(self.counts), "last_ms": list(self.last_ms),
                "as_of_ms": self.as_of_ms}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ItemStats:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(raw["item_ids"]), tuple(float(c) for c in raw["counts"]),
                   tuple(int(t) for t in raw["last_ms"]), int(raw["as_of_ms"]))


class _ItemColumns:
    """Per-snapshot item columns (computed once per snapshot)."""

    def __init__(self, snapshot: CatalogSnapshot, stats: ItemStats) -> None:
        n = snapshot.n
        price = snapshot.price_minor.astype(np.float64)
        cost = snapshot.cost_minor.astype(np.float64)
        known = price > 0
        self.price = np.where(known, price, np.nan)
        self.log_price = np.where(known, np.log1p(np.maximum(price, 0)), MISSING_SCORE)
        self.margin_pct = np.where(known & (cost >= 0), (price - cost) / np.maximum(price, 1), MISSING_SCORE)
        leaf = [p[-1] if p else "" for p in (it.category for it in snapshot.items)]
        by_leaf: dict[str, list[float]] = {}
        for i, c in enumerate(leaf):
            if known[i]:
                by_leaf.setdefault(c, []).append(price[i])
        median = {c: float(np.median(v)) for c, v in by_leaf.items()}
        self.price_vs_cat = np.array([price[i] / median[c] if known[i] and c in median else MISSING_SCORE
                                      for i, c in enumerate(leaf)], dtype=np.float64)
        idx = snapshot.indices(stats.item_ids)
        ok = idx >= 0
        counts, last = np.zeros(n), np.full(n, -1, dtype=np.int64)
        counts[idx[ok]] = np.asarray(stats.counts, dtype=np.float64)[ok]
        last[idx[ok]] = np.asarray(stats.last_ms, dtype=np.int64)[ok]
        self.pop = np.log1p(counts)
        self.recency = np.where(last >= 0, (stats.as_of_ms - last) / _DAY_MS, MISSING_RANK)
        created = snapshot.created_ms.astype(np.float64)
        self.age = np.where(created > 0, (stats.as_of_ms - created) / _DAY_MS, MISSING_SCORE)
        self.rating = snapshot.rating.astype(np.float64)
        self.snapshot = snapshot


_CONTEXT_COLUMNS = ("fused_score", "fused_pos", "n_sources", "log_price", "margin_pct", "price_vs_cat",
                    "price_vs_budget", "price_vs_own", "in_stock_store", "pop", "recency_days", "age_days",
                    "rating", "aff_match", "aff_match_rel", "surface", "hour", "n_recent", "logged_position")


class FeatureBuilder:
    """Builds the feature matrix for fused candidates (see the module docstring for the columns)."""

    def __init__(self, sources: Sequence[str], stats: ItemStats, serving_position: float = MISSING_RANK) -> None:
        self.sources = tuple(sources)
        self.stats = stats
        #: ``logged_position`` when no positions are given: :data:`SERVING_POSITION` for a model trained
        #: on logged impressions, :data:`MISSING_RANK` (as in its training rows) otherwise.
        self.serving_position = serving_position
        self._cols: _ItemColumns | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        per_source = tuple(f"{s}_{k}" for s in self.sources for k in ("score", "rank"))
        return per_source + _CONTEXT_COLUMNS

    def columns(self, snapshot: CatalogSnapshot) -> _ItemColumns:
        """The item columns of ``snapshot`` (cached for the last snapshot seen)."""
        if self._cols is None or self._cols.snapshot is not snapshot:
            self._cols = _ItemColumns(snapshot, self.stats)
        return self._cols

    def build(self, contexts: Sequence[Context], fused: Sequence[Sequence[Fused]], snapshot: CatalogSnapshot,
              positions: Sequence[Mapping[str, int]] | None = None) -> npt.NDArray[np.float32]:
        """One row per candidate, requests concatenated in order (``positions``: logged served positions)."""
        cols = self.columns(snapshot)
        blocks = [self._request(ctx, cands, snapshot, cols, None if positions is None else positions[r])
                  for r, (ctx, cands) in enumerate(zip(contexts, fused, strict=True))]
        if not blocks:
            return np.zeros((0, len(self.names)), dtype=np.float32)
        return np.concatenate(blocks).astype(np.float32)

    def _request(self, ctx: Context, cands: Sequence[Fused], snapshot: CatalogSnapshot, cols: _ItemColumns,
                 positions: Mapping[str, int] | None) -> FloatArray:
        m = len(cands)
        x = np.empty((m, len(self.names)), dtype=np.float64)
        arrays = getattr(cands, "source_ranks", None) is not None and getattr(cands, "item_ids", None) is \
            snapshot.item_ids
        idx = cands.indices if arrays else snapshot.indices([c.item_id for c in cands])  # type: ignore[attr-defined]
        safe = np.maximum(idx, 0)
        if arrays:  # retrieval.FusedArrays over this snapshot: no per-candidate objects
            self._source_columns(cands, x)
        for j, s in enumerate(() if arrays else self.sources):
            pair = [c.sources.get(s) for c in cands]
            x[:, 2 * j] = [MISSING_SCORE if p is None else p[0] for p in pair]
            x[:, 2 * j + 1] = [MISSING_RANK if p is None else p[1] for p in pair]
        top_aff = max(ctx.affinities.values(), default=0.0)
        aff = snapshot.affinity_matrix().match(ctx.affinities, safe)
        own = self._own_price_level(ctx, snapshot, cols)
        price = cols.price[safe]
        budget = ctx.budget_max_minor
        hour = (ctx.now_ms // 3_600_000) % 24
        c = 2 * len(self.sources)
        x[:, c:] = np.column_stack([
            cands.scores if arrays else [f.score for f in cands],  # type: ignore[attr-defined]
            self._fused_positions(cands),
            (cands.source_ranks >= 0).sum(axis=1) if arrays else [len(f.sources) for f in cands],  # type: ignore[attr-defined]
            cols.log_price[safe], cols.margin_pct[safe], cols.price_vs_cat[safe],
            np.nan_to_num(price / budget, nan=MISSING_SCORE) if budget else np.full(m, MISSING_SCORE),
            np.where(cols.price_vs_cat[safe] > 0, cols.price_vs_cat[safe] / own, MISSING_SCORE) if own > 0
            else np.full(m, MISSING_SCORE),
            snapshot.in_stock(ctx.store)[safe].astype(np.float64), cols.pop[safe], cols.recency[safe],
            cols.age[safe], cols.rating[safe], aff, aff / top_aff if top_aff > 0 else np.zeros(m),
            np.full(m, SURFACES.index(ctx.surface) if ctx.surface in SURFACES else -1), np.full(m, hour),
            np.full(m, len(ctx.recent_items)),
            [positions.get(f.item_id, MISSING_RANK) for f in cands] if positions is not None
            else np.full(m, self.serving_position),
        ])
        x[idx < 0, c + 3:c + 14] = MISSING_SCORE
        return x

    def _source_columns(self, cands: Any, x: FloatArray) -> None:
        """``<s>_score``/``<s>_rank`` columns from a fused list held as arrays (names, source_scores/ranks)."""
        names = list(cands.names)
        for j, s in enumerate(self.sources):
            if s not in names:
                x[:, 2 * j], x[:, 2 * j + 1] = MISSING_SCORE, MISSING_RANK
                continue
            col = names.index(s)
            ranks = cands.source_ranks[:, col]
            x[:, 2 * j] = np.where(ranks >= 0, cands.source_scores[:, col], MISSING_SCORE)
            x[:, 2 * j + 1] = np.where(ranks >= 0, ranks, MISSING_RANK)

    @staticmethod
    def _fused_positions(cands: Sequence[Fused]) -> FloatArray:
        """Each candidate's position in the fused list: its ``fused_pos`` when it has one (candidates read
        back from the slate log are only the served ones), else its place in ``cands``."""
        if cands and hasattr(cands[0], "fused_pos"):
            return np.array([getattr(c, "fused_pos", j) for j, c in enumerate(cands)], dtype=np.float64)
        return np.arange(len(cands), dtype=np.float64)

    @staticmethod
    def _own_price_level(ctx: Context, snapshot: CatalogSnapshot, cols: _ItemColumns) -> float:
        """Mean category-relative price of the context's recent items (0 when unknown)."""
        idx = snapshot.indices(list(ctx.recent_items))
        rel = cols.price_vs_cat[idx[idx >= 0]]
        rel = rel[rel > 0]
        return float(rel.mean()) if rel.size else 0.0
