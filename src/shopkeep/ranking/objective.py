"""Business objectives and the default (non-learned) ranker.

An item's score is ``relevance * r + margin * m + conversion * p`` where, within one request's
candidates, ``r`` is the fused retrieval score divided by the best one, ``p`` the purchase probability
divided by the best one and ``m`` the expected contribution margin
``p(purchase) x (price - cost - expected return cost)`` divided by the largest absolute one. Items
without a known price or cost have margin 0. The purchase probability comes from a
:class:`PurchaseModel` (default :class:`RelevancePrior`: ``base_rate`` x ``r``). With a
:class:`HeadModel` (the learned re-ranker, :mod:`shopkeep.ranking.learned`) ``r`` is its calibrated
p(click) divided by the best one instead, and ``p`` its calibrated p(purchase).
:meth:`Ranker.load` falls back to the non-learned ranker when no model is saved or LightGBM is absent.

>>> from shopkeep.features.context import Context, ContextRequest
>>> from shopkeep.types import Item, Money
>>> snap = CatalogSnapshot.from_items([
...     Item("cheap", "A", price=Money(1000, "USD"), cost=Money(900, "USD")),
...     Item("rich", "B", price=Money(9000, "USD"), cost=Money(3000, "USD"))])
>>> fused = [ScoredItem("cheap", 0.03), ScoredItem("rich", 0.02)]  # any item_id/score/sources objects
>>> ctx = Context(ContextRequest(), now_ms=0)
>>> [s.item_id for s in Ranker().rank(ctx, fused, snap)]
['cheap', 'rich']
>>> [s.item_id for s in Ranker(Objective(relevance=1.0, margin=1.0)).rank(ctx, fused, snap)]
['rich', 'cheap']
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.ranking.features import Fused
from shopkeep.types import IndexedSequence

__all__ = ["Fused", "FusedArraysLike", "HeadModel", "Objective", "PurchaseModel", "RankedArrays", "Ranker",
           "RelevancePrior", "ScoredItem"]

FloatArray = npt.NDArray[np.float64]
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Objective:
    """Weights of the ranking objective (each >= 0, not all 0) and a version string for the audit trail."""

    relevance: float = 1.0
    margin: float = 0.0
    conversion: float = 0.0
    version: str = "1"

    def __post_init__(self) -> None:
        for name in ("relevance", "margin", "conversion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValidationError(f"objective.{name}", value, "must be a finite number >= 0")
        if self.relevance + self.margin + self.conversion <= 0:
            raise ValidationError("objective", (self.relevance, self.margin, self.conversion), "weights are all 0")
        if not isinstance(self.version, str) or not self.version:
            raise ValidationError("objective.version", self.version, "must be a non-empty string")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Objective:
        """Parse ``{"relevance": .., "margin": .., "conversion": .., "version": ..}`` (unknown keys rejected)."""
        if not isinstance(raw, Mapping):
            raise ValidationError("objective", raw, "must be a mapping")
        unknown = sorted(set(raw) - {"relevance", "margin", "conversion", "version"})
        if unknown:
            raise ValidationError("objective", unknown[0], "unknown key")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        """The objective as JSON-able data."""
        return {"relevance": self.relevance, "margin": self.margin, "conversion": self.conversion,
                "version": self.version}


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """A ranked candidate: the objective ``score``, the retrieval ``sources`` (name → (score, rank)),
    and the parts of the score (relevance in [0, 1], purchase probability, expected margin in minor
    units, and the click probability when a learned model gave one, else 0)."""

    item_id: str
    score: float
    sources: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    relevance: float = 0.0
    p_purchase: float = 0.0
    expected_margin_minor: float = 0.0
    p_click: float = 0.0


@runtime_checkable
class FusedArraysLike(Protocol):
    """Capability of a fused list held as arrays (``retrieval.FusedArrays``; duck-typed: ranking may
    not import retrieval): snapshot ``indices`` and fused ``scores`` per candidate, best first."""

    @property
    def item_ids(self) -> Sequence[str]: ...
    @property
    def indices(self) -> npt.NDArray[np.int64]: ...
    @property
    def scores(self) -> FloatArray: ...
    @property
    def names(self) -> tuple[str, ...]: ...
    @property
    def source_ranks(self) -> npt.NDArray[np.int64]: ...
    def sources_at(self, j: int) -> dict[str, tuple[float, int]]: ...
    def __len__(self) -> int: ...


class RankedArrays(IndexedSequence[ScoredItem]):
    """A ranked list held as arrays (best first); a read-only sequence of :class:`ScoredItem` built on
    access. ``indices``/``scores`` are per position; ``source_ranks`` has one column per ``names``."""

    def __init__(self, fused: FusedArraysLike, order: npt.NDArray[np.int64], score: FloatArray, rel: FloatArray,
                 p: FloatArray, margin: FloatArray, click: FloatArray) -> None:
        self.fused, self.order = fused, order
        self.item_ids, self.names = fused.item_ids, fused.names
        self.indices = fused.indices[order]
        self.scores, self.rel, self.p, self.margin, self.click = score, rel, p, margin, click

    @property
    def source_ranks(self) -> npt.NDArray[np.int64]:
        """Per position and source (``names``), the rank there (-1: not found by it)."""
        return self.fused.source_ranks[self.order]

    def sources_at(self, j: int) -> dict[str, tuple[float, int]]:
        """Position ``j``'s sources: name → (score, rank)."""
        return self.fused.sources_at(int(self.order[j]))

    def __len__(self) -> int:
        return len(self.order)

    def _at(self, j: int) -> ScoredItem:
        return ScoredItem(self.item_ids[int(self.indices[j])], float(self.scores[j]), self.sources_at(j),
                          float(self.rel[j]), float(self.p[j]), float(self.margin[j]), float(self.click[j]))


def _arrays_of(fused: Sequence[Fused], snapshot: CatalogSnapshot) -> FusedArraysLike | None:
    """``fused`` when it is held as arrays over ``snapshot``."""
    # attribute checks, not isinstance on a runtime Protocol (slow on the request path)
    if getattr(fused, "item_ids", None) is snapshot.item_ids and hasattr(fused, "indices") and hasattr(
            fused, "scores"):
        return fused  # type: ignore[return-value]
    return None


@runtime_checkable
class PurchaseModel(Protocol):
    """Capability: purchase probabilities for a request's fused candidates."""

    def predict(self, context: Context, fused: Sequence[Fused], snapshot: CatalogSnapshot) -> FloatArray:
        """P(purchase) per candidate, in [0, 1]."""


@runtime_checkable
class HeadModel(Protocol):
    """Capability: calibrated (p_click, p_purchase) for a batch of requests (the learned re-ranker)."""

    def predict_heads_many(self, contexts: Sequence[Context], fused: Sequence[Sequence[Fused]],
                           snapshot: CatalogSnapshot) -> list[tuple[FloatArray, FloatArray]]:
        """Per request, p(click) and p(purchase) per candidate."""


@dataclass(frozen=True)
class RelevancePrior:
    """P(purchase) = ``base_rate`` x the candidate's fused score relative to the best one (no learning)."""

    base_rate: float = 0.02

    def predict(self, context: Context, fused: Sequence[Fused], snapshot: CatalogSnapshot) -> FloatArray:
        """``base_rate * score / max(score)`` per candidate."""
        arrays = _arrays_of(fused, snapshot)
        rel = _relative(np.array([f.score for f in fused], dtype=np.float64) if arrays is None
                        else np.asarray(arrays.scores, dtype=np.float64))
        return np.asarray(self.base_rate * rel, dtype=np.float64)


def _head(fused: Sequence[Fused], n: int) -> Sequence[Fused]:
    """The first ``n`` candidates, still held as arrays when they were (a dataclass with per-candidate arrays)."""
    if len(fused) <= n:
        return fused
    if dataclasses.is_dataclass(fused) and hasattr(fused, "source_ranks"):
        return dataclasses.replace(fused, indices=fused.indices[:n], scores=fused.scores[:n],  # type: ignore[attr-defined]
                                   source_scores=fused.source_scores[:n], source_ranks=fused.source_ranks[:n])
    return list(fused[:n])


def _relative(values: FloatArray) -> FloatArray:
    """``values / max(|values|)`` (zeros when all are 0)."""
    top = float(np.abs(values).max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


class Ranker:
    """Scores fused candidates for an :class:`Objective` (see the module docstring).

    ``return_cost_fraction``: expected return cost as a fraction of the price (return rate x loss per
    return), used in the expected margin.
    """

    def __init__(self, objective: Objective | None = None, model: PurchaseModel | None = None,
                 return_cost_fraction: float = 0.0, rerank_k: int = 100) -> None:
        if not 0.0 <= return_cost_fraction <= 1.0:
            raise ValidationError("return_cost_fraction", return_cost_fraction, "must be within [0, 1]")
        if isinstance(rerank_k, bool) or not isinstance(rerank_k, int) or rerank_k < 1:
            raise ValidationError("rerank_k", rerank_k, "must be an integer >= 1")
        self.objective = objective or Objective()
        self.model: PurchaseModel = model or RelevancePrior()
        self.return_cost_fraction = return_cost_fraction
        #: A learned model scores the top ``rerank_k`` fused candidates (its training candidates' depth);
        #: the rest follow in fused order with probabilities 0.
        self.rerank_k = rerank_k
        self._head_check: tuple[object, bool] | None = None

    def unit_margin_minor(self, snapshot: CatalogSnapshot, indices: npt.NDArray[np.int64]) -> FloatArray:
        """``price - cost - return_cost_fraction * price`` per snapshot index (0 where price or cost is unknown)."""
        price = snapshot.price_minor[indices].astype(np.float64)
        cost = snapshot.cost_minor[indices].astype(np.float64)
        known = (indices >= 0) & (price >= 0) & (cost >= 0)
        return np.where(known, price - cost - self.return_cost_fraction * price, 0.0)

    def _heads(self, contexts: Sequence[Context], fused: Sequence[Sequence[Fused]],
               snapshot: CatalogSnapshot) -> list[tuple[FloatArray | None, FloatArray]]:
        """Per request (p_click or None, p_purchase): one batch call for a :class:`HeadModel`."""
        if self.learned:
            rows = [r for r, f in enumerate(fused) if f]
            got = self.model.predict_heads_many(  # type: ignore[attr-defined]
                [contexts[r] for r in rows], [_head(fused[r], self.rerank_k) for r in rows], snapshot)
            out: list[tuple[FloatArray | None, FloatArray]] = [(np.zeros(0), np.zeros(0))] * len(fused)
            for r, (pc, pp) in zip(rows, got, strict=True):
                pad = len(fused[r]) - len(pc)
                out[r] = (np.pad(np.asarray(pc, dtype=np.float64), (0, pad)),
                          np.pad(np.asarray(pp, dtype=np.float64), (0, pad)))
            return out
        return [(None, np.asarray(self.model.predict(c, f, snapshot), dtype=np.float64) if f else np.zeros(0))
                for c, f in zip(contexts, fused, strict=True)]

    def rank_many(self, contexts: Sequence[Context], fused: Sequence[Sequence[Fused]],
                  snapshot: CatalogSnapshot) -> list[Sequence[ScoredItem]]:
        """For each context, its candidates scored and sorted best first (ties: fused order); a
        :class:`RankedArrays` for candidates held as arrays (``retrieval.FusedArrays``), else a list."""
        if len(fused) != len(contexts):
            raise ValidationError("fused", len(fused), f"need one candidate list per context ({len(contexts)})")
        obj = self.objective
        out: list[Sequence[ScoredItem]] = []
        for cands, (p_click, p_raw) in zip(fused, self._heads(contexts, fused, snapshot), strict=True):
            if not cands:
                out.append([])
                continue
            arrays = _arrays_of(cands, snapshot)
            if arrays is not None:
                idx, fused_score = arrays.indices, np.asarray(arrays.scores, dtype=np.float64)
            else:
                idx = snapshot.indices([f.item_id for f in cands])
                fused_score = np.array([f.score for f in cands], dtype=np.float64)
            rel = _relative(fused_score if p_click is None else p_click)
            click = np.zeros(len(cands)) if p_click is None else p_click
            p = np.clip(p_raw, 0.0, 1.0)
            margin = p * self.unit_margin_minor(snapshot, idx)
            score = obj.relevance * rel + obj.margin * _relative(margin) + obj.conversion * _relative(p)
            order = np.lexsort((np.arange(len(cands)), -score))
            if arrays is not None:  # held as arrays: ScoredItem objects only for what is read
                out.append(RankedArrays(arrays, order, score[order], rel[order], p[order], margin[order],
                                        click[order]))
                continue
            out.append([ScoredItem(cands[i].item_id, float(score[i]), cands[i].sources, float(rel[i]), float(p[i]),
                                   float(margin[i]), float(click[i])) for i in order.tolist()])
        return out

    @property
    def learned(self) -> bool:
        """Whether the model is a learned re-ranker (has click and purchase heads)."""
        checked = self._head_check
        if checked is None or checked[0] is not self.model:  # isinstance on a Protocol is slow: once per model
            checked = self._head_check = (self.model, isinstance(self.model, HeadModel))
        return checked[1]

    def save(self, path: str | Path) -> Path:
        """Save the learned model with this ranker's objective (LightGBM text + JSON; see ``learned``)."""
        if not hasattr(self.model, "save"):
            raise ValidationError("model", type(self.model).__name__, "only a learned model can be saved")
        saved: Path = self.model.save(path, {**self.objective.to_dict(),
                                             "return_cost_fraction": self.return_cost_fraction})
        return saved

    @classmethod
    def load(cls, path: str | Path | None, objective: Objective | None = None) -> Ranker:
        """The learned ranker saved at ``path`` with its saved objective (``objective`` overrides it),
        or, when ``path`` is None or holds no model or LightGBM is not installed, the non-learned
        ranker (:class:`RelevancePrior`) — logged as a warning, never an error for a missing model."""
        from shopkeep.ranking.learned import LearnedModel, lightgbm_available

        if path is None or not (Path(path) / "ranker.json").is_file() or not lightgbm_available():
            _log.warning("learned ranker unavailable (path=%s, lightgbm=%s): using the non-learned ranker",
                         path, lightgbm_available())
            return cls(objective)
        model, saved = LearnedModel.load(path)
        rcf = float(saved.pop("return_cost_fraction", 0.0))
        return cls(objective or (Objective.from_dict(saved) if saved else None), model, rcf)

    def rank(self, context: Context, fused: Sequence[Fused], snapshot: CatalogSnapshot) -> list[ScoredItem]:
        """The batch call for one context."""
        return list(self.rank_many([context], [fused], snapshot)[0])
