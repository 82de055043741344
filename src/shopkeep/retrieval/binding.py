"""Glue between models (dense item indices) and the catalog snapshot (string ids, snapshot indices).

:class:`ModelBinding` pairs a fitted model with the item id of each of its indices;
:func:`top_k` picks a source's best eligible snapshot indices deterministically.

>>> import numpy as np
>>> top_k(np.array([0.5, 2.0, 2.0, np.nan, 1.0]), np.array([True, True, True, True, False]), 2)
(array([1, 2]), array([2., 2.]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.retrieval.base import Candidate, Mask

__all__ = ["Hit", "ModelBinding", "anchors", "check_masks", "no_hit", "scatter", "to_candidate_lists",
           "to_candidates", "top_k"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
#: One source's list for one context as arrays: snapshot indices and scores, best first.
Hit = tuple[IntArray, FloatArray]


def no_hit() -> Hit:
    """An empty list (no candidates)."""
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ModelBinding:
    """A fitted model and ``item_ids[i]``, the item id of the model's index ``i``."""

    model: Any
    item_ids: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = tuple(str(i) for i in self.item_ids)
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValidationError("item_ids", dup, "duplicate item id in the model binding")
        object.__setattr__(self, "item_ids", ids)
        object.__setattr__(self, "_index", {item: n for n, item in enumerate(ids)})

    @property
    def n_items(self) -> int:
        """Number of model indices."""
        return len(self.item_ids)

    def indices(self, item_ids: Sequence[str]) -> IntArray:
        """Model indices of ``item_ids`` (-1 for ids the model does not know)."""
        return np.array([self._index.get(i, -1) for i in item_ids], dtype=np.int64)

    def history(self, item_ids: Sequence[str]) -> IntArray:
        """The known items of ``item_ids`` as model indices, order kept (unknown ids dropped)."""
        idx = self.indices(item_ids)
        return idx[idx >= 0]

    def to_snapshot(self, snapshot: CatalogSnapshot) -> IntArray:
        """For each model index, the snapshot index of its item (-1 when the catalog lacks it)."""
        return np.asarray(snapshot.indices(list(self.item_ids)), dtype=np.int64)


def check_masks(contexts: Sequence[Context], masks: Sequence[Mask], n: int, k: int) -> None:
    """Validate a batch call: one boolean mask of length ``n`` per context and a positive ``k``."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValidationError("k", k, "must be a positive integer")
    if len(masks) != len(contexts):
        raise ValidationError("masks", len(masks), f"need one mask per context ({len(contexts)})")
    for i, mask in enumerate(masks):
        arr = np.asarray(mask)
        if arr.dtype != np.bool_ or arr.shape != (n,):
            raise ValidationError(f"masks[{i}]", f"{arr.dtype}{arr.shape}", f"must be a bool array of shape ({n},)")


def top_k(scores: npt.ArrayLike, mask: Mask, k: int) -> tuple[IntArray, FloatArray]:
    """The ``k`` best indices with a finite score where ``mask`` is True; ties go to the lower index.

    Over a long array (a catalog of 100k items) most of the cost was a partial sort of every eligible
    score; a threshold read off a strided sample first narrows the partial sort to the few items at or
    above it. That is exact: it is used only when at least ``k`` eligible items reach the threshold,
    so every item below it is strictly below the ``k``-th best (ties at the threshold are kept)."""
    arr = np.asarray(scores, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool) & np.isfinite(arr)
    ok = _above_sampled_threshold(arr, valid, k) if arr.size >= _PREFILTER_MIN and arr.size > 16 * k else None
    if ok is None:
        ok = np.flatnonzero(valid)
    if ok.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    vals = arr[ok]
    if ok.size > k:
        part = np.argpartition(-vals, k - 1)[:k]
        kth = vals[part].min()
        # keep every tie of the k-th value so that the lower index wins deterministically
        keep = np.flatnonzero(vals >= kth)
        ok, vals = ok[keep], vals[keep]
    order = np.lexsort((ok, -vals))[:k]
    return ok[order].astype(np.int64), vals[order]


#: Arrays shorter than this are partially sorted whole (the sample would not pay for itself).
_PREFILTER_MIN = 8192
#: About how many sampled scores estimate the threshold.
_SAMPLE = 2048


def _above_sampled_threshold(arr: FloatArray, valid: npt.NDArray[np.bool_], k: int) -> IntArray | None:
    """Indices of the valid scores at or above a threshold estimated (from every ``stride``-th valid
    score) to let through about ``4k`` items; None when fewer than ``k`` pass (the caller then takes
    every valid index)."""
    stride = max(1, arr.size // _SAMPLE)
    sample = arr[::stride][valid[::stride]]
    if sample.size == 0:
        return None
    expect = sample.size * stride  # valid items, estimated
    take = int(np.ceil(sample.size * min(1.0, 4.0 * k / expect)))
    if take >= sample.size:
        return None
    threshold = np.partition(sample, sample.size - take)[sample.size - take]
    ok = np.flatnonzero(valid & (arr >= threshold))
    return ok if ok.size >= k else None


def to_candidates(
    snapshot: CatalogSnapshot, indices: IntArray, scores: FloatArray, source: str
) -> list[Candidate]:
    """Candidates (best first) from snapshot indices and scores."""
    ids = snapshot.item_ids
    return [
        Candidate(ids[int(i)], float(s), source, rank)
        for rank, (i, s) in enumerate(zip(indices.tolist(), scores.tolist(), strict=True))
    ]


def to_candidate_lists(snapshot: CatalogSnapshot, hits: Sequence[Hit], source: str) -> list[list[Candidate]]:
    """:func:`to_candidates` for each context's (indices, scores)."""
    return [to_candidates(snapshot, idx, val, source) for idx, val in hits]


def scatter(values: npt.ArrayLike, to_snap: IntArray, n: int, fill: float = -np.inf) -> FloatArray:
    """Model-space ``values`` (last axis) placed at snapshot indices ``to_snap``; ``fill`` elsewhere."""
    arr = np.asarray(values, dtype=np.float64)
    out = np.full((*arr.shape[:-1], n), fill, dtype=np.float64)
    known = to_snap >= 0
    out[..., to_snap[known]] = arr[..., known]
    return out


def anchors(context: Context, n_recent: int, decay: float, personal: bool = True) -> dict[str, float]:
    """Anchor item id → weight: the pdp item and cart items weigh 1, then the last ``n_recent`` recent
    items ``decay**(t + 1)`` (newest first; only when ``personal`` and the shopper allows personalization)."""
    out: dict[str, float] = {}
    if personal and context.personalize and n_recent > 0:
        for t, item in enumerate(reversed(context.recent_items[-n_recent:])):
            out[item] = max(out.get(item, 0.0), decay ** (t + 1))
    for item in (*context.cart_items, *((context.request.item_id,) if context.request.item_id else ())):
        out[item] = 1.0
    return out
