"""Lookalike profiles: a new shopper's first clicks mapped to the nearest known shoppers.

Item vectors are the top ``n_components`` SVD factors of the training sequence-item matrix (rows
scaled by their singular values). A history's embedding is the normalized sum of its items'
vectors; a known shopper's is the same over its whole training sequence. For a short history the
``n_neighbors`` known shoppers with the largest cosine to it are its lookalikes, and an item scores

    score(i) = Σ_u max(cos(q, u), 0)^power · [i in history(u)] / |history(u)|^length_norm

plus ``1e-6 ×`` the item's popularity share as the tie-break; an empty history scores popularity
only. Fit once on every known shopper (``fit``), then :meth:`LookalikeRecommender.score` is the
batch call (the :class:`~shopkeep.models.base.SequentialRecommender` contract, so the recommender is
served by a plain :class:`~shopkeep.retrieval.SequentialSource`).

>>> import numpy as np
>>> from shopkeep.models.base import Interactions
>>> seqs = tuple(np.array([0, 1, 2]) if i % 2 else np.array([3, 4, 5]) for i in range(40))
>>> model = LookalikeRecommender(n_components=2, n_neighbors=5).fit(Interactions(seqs, n_items=6))
>>> sorted(np.argsort(-model.score([np.array([0])])[0])[:3].tolist())
[0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from shopkeep.errors import ValidationError
from shopkeep.models.als import user_item_matrix
from shopkeep.models.base import Interactions, ValidateFn, check_fitted
from shopkeep.models.registry import read_artifact, write_artifact

__all__ = ["LookalikeRecommender", "history_embeddings"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _unit(x: F64) -> F64:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norms > 0, norms, 1.0))


def history_embeddings(histories: Sequence[IntArray], item_vectors: F64) -> F64:
    """Unit-length sum of the item vectors of each history (a zero row for an empty one)."""
    matrix = user_item_matrix(histories, item_vectors.shape[0])
    matrix.data[:] = 1.0  # repeats count once
    return _unit(np.asarray(matrix @ item_vectors, dtype=np.float64))


class LookalikeRecommender:
    """User-kNN over SVD taste embeddings, meant for shoppers with 0–2 interactions (module docstring)."""

    name = "lookalike"
    refit_on_validation = True

    def __init__(self, n_components: int = 64, n_neighbors: int = 100, power: float = 1.0,
                 length_norm: float = 0.5, seed: int = 0) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.power = power
        self.length_norm = length_norm
        self.seed = seed
        self.item_vectors_: F64 | None = None
        self.user_vectors_: F32 | None = None
        self.histories_: sp.csr_matrix | None = None
        self.popularity_: F64 | None = None

    def _check_params(self) -> None:
        for name in ("n_components", "n_neighbors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(name, value, "must be an integer >= 1")
        if not self.power > 0:
            raise ValidationError("power", self.power, "must be > 0")
        if not 0.0 <= self.length_norm <= 1.0:
            raise ValidationError("length_norm", self.length_norm, "must be within [0, 1]")

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Embed items and known shoppers; keep each shopper's items (row-normalized). ``validate`` is unused."""
        self._check_params()
        seqs = [np.unique(np.asarray(s, dtype=np.int64)) for s in train.sequences if len(s)]
        if len(seqs) < 2:
            raise ValidationError("train", len(seqs), "needs at least two non-empty sequences")
        matrix = user_item_matrix(seqs, train.n_items)
        matrix.data[:] = 1.0
        k = max(1, min(self.n_components, min(matrix.shape) - 1))
        v0 = np.random.default_rng(self.seed).standard_normal(min(matrix.shape))
        _, s, vt = svds(matrix.astype(np.float64), k=k, v0=v0, random_state=self.seed)
        self.item_vectors_ = np.asarray(vt.T * s, dtype=np.float64)
        self.user_vectors_ = history_embeddings(seqs, self.item_vectors_).astype(np.float32)
        lengths = np.asarray(matrix.sum(axis=1)).ravel()
        self.histories_ = sp.csr_matrix(sp.diags(1.0 / np.maximum(lengths, 1.0) ** self.length_norm) @ matrix)
        counts = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
        self.popularity_ = counts / max(counts.sum(), 1.0)
        return self

    def neighbors(self, histories: Sequence[IntArray]) -> tuple[IntArray, F64]:
        """Per history, the row indices of its ``n_neighbors`` lookalikes and their weights (best first)."""
        check_fitted(self, "user_vectors_")
        assert self.item_vectors_ is not None and self.user_vectors_ is not None
        q = history_embeddings([np.asarray(h, dtype=np.int64) for h in histories], self.item_vectors_)
        sims = q.astype(np.float32) @ self.user_vectors_.T
        n = min(self.n_neighbors, sims.shape[1])
        top = np.argpartition(-sims, n - 1, axis=1)[:, :n]
        vals = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        top, vals = np.take_along_axis(top, order, axis=1), np.take_along_axis(vals, order, axis=1)
        return top.astype(np.int64), np.maximum(vals.astype(np.float64), 0.0) ** self.power

    def score(self, histories: Sequence[IntArray]) -> F32:
        """Lookalike scores over all items per history (popularity share only for an empty history)."""
        check_fitted(self, "user_vectors_")
        assert self.histories_ is not None and self.popularity_ is not None
        top, weights = self.neighbors(histories)
        rows = np.repeat(np.arange(len(histories)), top.shape[1])
        w = sp.csr_matrix((weights.ravel(), (rows, top.ravel())), shape=(len(histories), self.histories_.shape[0]))
        scores = np.asarray((w @ self.histories_).todense(), dtype=np.float64)
        return np.asarray(scores + 1e-6 * self.popularity_[None, :] / max(float(self.popularity_.max()), 1e-12),
                          dtype=np.float32)

    def save(self, path: Path) -> None:
        """Write the embeddings, the shoppers' item matrix and the config to the directory ``path``."""
        check_fitted(self, "user_vectors_")
        h = self.histories_
        assert h is not None and self.item_vectors_ is not None and self.popularity_ is not None
        arrays = {"item_vectors": self.item_vectors_, "user_vectors": self.user_vectors_, "h_data": h.data,
                  "h_indices": h.indices, "h_indptr": h.indptr, "h_shape": np.asarray(h.shape, dtype=np.int64),
                  "popularity": self.popularity_}
        write_artifact(path, self.name, self.get_config(), arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""
        doc, arr = read_artifact(path, cls.name)
        model = cls(**doc["config"])
        model.item_vectors_ = arr["item_vectors"].astype(np.float64)
        model.user_vectors_ = arr["user_vectors"].astype(np.float32)
        shape = tuple(int(x) for x in arr["h_shape"])
        model.histories_ = sp.csr_matrix((arr["h_data"], arr["h_indices"], arr["h_indptr"]), shape=shape)
        model.popularity_ = arr["popularity"].astype(np.float64)
        return model

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {"n_components": self.n_components, "n_neighbors": self.n_neighbors, "power": self.power,
                "length_norm": self.length_norm, "seed": self.seed}
