"""Sequence-aware item-to-item co-occurrence ("people who had this next had ...").

Learning counts ordered pairs ``(a at position p, b at position p + d)`` within a sequence for
``d <= window``: the forward pair ``a -> b`` weighs ``decay**(d - 1)``, the backward pair ``b -> a``
weighs ``backward * decay**(d - 1)``. The similarity is an asymmetric cosine,
``sim[a, b] = C[a, b] / (pop[a]**(1 - alpha) * pop[b]**alpha)``, so a larger ``alpha`` penalises
popular targets more. A history scores ``sum_t recency**t * sim[h[-1 - t], :]`` over its last
``history_len`` items, plus a tiny popularity term that breaks ties and covers unseen items.
Hyper-parameter defaults were chosen on the validation splits of Beauty, Toys and Diginetica
(benchmarks/quality/tune_itemknn.py).

With ``repeat_weight`` = b > 0 each row is scaled to a maximum of 1 and every item of the history
gets ``b * repeat_decay**t`` added (t = its most recent distance from the end): anonymous sessions
often come back to an item they already viewed (a fifth of Diginetica's next clicks), and item-item
similarity alone never ranks the history itself. :class:`SessionKNNRecommender` (``session_knn``) is
itemknn with the repeat term on, for protocols that keep the history rankable.

>>> import numpy as np
>>> from shopkeep.models.base import Interactions
>>> train = Interactions((np.array([0, 1, 2]), np.array([0, 1, 3]), np.array([2, 3])), n_items=4)
>>> model = ItemKNNRecommender().fit(train)
>>> int(model.score([np.array([0])])[0].argmax())
1
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from shopkeep.errors import ValidationError
from shopkeep.models.base import Interactions, ValidateFn, check_fitted
from shopkeep.models.registry import read_artifact, write_artifact

__all__ = ["ItemKNNRecommender", "SessionKNNRecommender", "cooccurrence"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Weight of the popularity tie-breaker relative to a single co-occurrence similarity.
_POP_EPS = 1e-6


def cooccurrence(train: Interactions, window: int, decay: float, backward: float) -> sp.csr_matrix:
    """Distance- and direction-weighted pair counts ``C`` (``n_items x n_items``, CSR)."""
    seqs = [np.asarray(s, dtype=np.int64) for s in train.sequences if s.size > 1]
    n = train.n_items
    if not seqs:
        return sp.csr_matrix((n, n), dtype=np.float64)
    flat = np.concatenate(seqs)
    owner = np.repeat(np.arange(len(seqs)), [s.size for s in seqs])
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        same = owner[:-d] == owner[d:]
        src, dst = flat[:-d][same], flat[d:][same]
        w = decay ** (d - 1)
        rows += [src, dst]
        cols += [dst, src]
        vals += [np.full(src.size, w), np.full(src.size, w * backward)]
    matrix = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return matrix.tocsr()


class ItemKNNRecommender:
    """Item-item co-occurrence recommender with sequence-aware weighting (see module docstring)."""

    name = "itemknn"
    refit_on_validation = True

    def __init__(
        self,
        window: int = 5,
        decay: float = 0.8,
        backward: float = 0.5,
        alpha: float = 0.3,
        history_len: int = 10,
        recency: float = 0.5,
        repeat_weight: float = 0.0,
        repeat_decay: float = 0.8,
    ) -> None:
        self.window = window
        self.decay = decay
        self.backward = backward
        self.alpha = alpha
        self.history_len = history_len
        self.recency = recency
        self.repeat_weight = repeat_weight
        self.repeat_decay = repeat_decay
        self.sim_: sp.csr_matrix | None = None
        self.pop_: npt.NDArray[np.float32] | None = None

    def _check_params(self) -> None:
        if self.window < 1:
            raise ValidationError("window", self.window, "must be >= 1")
        if self.history_len < 1:
            raise ValidationError("history_len", self.history_len, "must be >= 1")
        if not 0.0 <= self.repeat_weight <= 100.0:
            raise ValidationError("repeat_weight", self.repeat_weight, "must be within [0, 100]")
        for field in ("decay", "backward", "alpha", "recency", "repeat_decay"):
            value = getattr(self, field)
            if not 0.0 <= value <= 1.0:
                raise ValidationError(field, value, "must be within [0, 1]")

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Build the similarity matrix. ``validate`` is unused (hyper-parameters are fixed)."""
        self._check_params()
        counts = sp.csr_matrix(cooccurrence(train, self.window, self.decay, self.backward))
        pop = np.zeros(train.n_items, dtype=np.float64)
        if train.sequences:
            pop = np.bincount(np.concatenate(train.sequences), minlength=train.n_items).astype(np.float64)
        safe = np.maximum(pop, 1.0)
        left = sp.diags(safe ** -(1.0 - self.alpha))
        right = sp.diags(safe**-self.alpha)
        self.sim_ = sp.csr_matrix(left @ counts @ right, dtype=np.float32)
        self.pop_ = (_POP_EPS * pop / max(pop.max(), 1.0)).astype(np.float32)
        return self

    def _history_matrix(self, histories: Sequence[IntArray], n_items: int) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for r, hist in enumerate(histories):
            recent = np.asarray(hist, dtype=np.int64)[-self.history_len :][::-1]
            rows.append(np.full(recent.size, r))
            cols.append(recent)
            vals.append(self.recency ** np.arange(recent.size, dtype=np.float64))
        if not rows:
            return sp.csr_matrix((0, n_items), dtype=np.float32)
        data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
        return sp.csr_matrix(data, shape=(len(histories), n_items), dtype=np.float32)

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """Recency-weighted similarity sums over each history's last items, plus the tie-breaker."""
        check_fitted(self, "sim_")
        assert self.sim_ is not None and self.pop_ is not None
        n_items = self.sim_.shape[0]
        weights = self._history_matrix(histories, n_items)
        scores = np.asarray((weights @ self.sim_).toarray(), dtype=np.float32)
        scores += self.pop_[None, :]
        if self.repeat_weight > 0.0:
            scores /= np.maximum(scores.max(axis=1, keepdims=True), 1e-12)
            self._add_repeats(scores, histories)
        return scores

    def _add_repeats(self, scores: FloatArray, histories: Sequence[IntArray]) -> None:
        """Add ``repeat_weight * repeat_decay**t`` to each history item (t = its latest distance from the end)."""
        for r, hist in enumerate(histories):
            recent = np.asarray(hist, dtype=np.int64)[-self.history_len :][::-1]
            if recent.size:
                items, first = np.unique(recent, return_index=True)
                scores[r, items] += self.repeat_weight * self.repeat_decay ** first.astype(np.float32)

    def save(self, path: Path) -> None:
        """Write the similarity matrix (CSR parts) and config to the directory ``path``."""
        check_fitted(self, "sim_")
        assert self.sim_ is not None and self.pop_ is not None
        arrays = {
            "data": self.sim_.data,
            "indices": self.sim_.indices,
            "indptr": self.sim_.indptr,
            "shape": np.asarray(self.sim_.shape, dtype=np.int64),
            "pop": self.pop_,
        }
        write_artifact(path, self.name, self.get_config(), arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""
        doc, arrays = read_artifact(path, cls.name)
        model = cls(**doc["config"])
        shape = tuple(int(x) for x in arrays["shape"])
        model.sim_ = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        model.pop_ = arrays["pop"].astype(np.float32)
        return model

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {
            "window": self.window,
            "decay": self.decay,
            "backward": self.backward,
            "alpha": self.alpha,
            "history_len": self.history_len,
            "recency": self.recency,
            "repeat_weight": self.repeat_weight,
            "repeat_decay": self.repeat_decay,
        }


class SessionKNNRecommender(ItemKNNRecommender):
    """itemknn with the repeat term on (``repeat_weight`` 1.2, ``repeat_decay`` 0.8: the best of a 5 x 3
    grid on Diginetica's validation split, benchmarks/quality/blend_NOTES.md), for session protocols."""

    name = "session_knn"

    def __init__(self, repeat_weight: float = 1.2, repeat_decay: float = 0.8, **kwargs: Any) -> None:
        super().__init__(repeat_weight=repeat_weight, repeat_decay=repeat_decay, **kwargs)
