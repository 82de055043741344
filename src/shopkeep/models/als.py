"""Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) via ``implicit``'s ALS.

Training rows are the training sequences (users or sessions); the confidence of an observed
(sequence, item) pair is ``alpha * count``. At scoring time every history is *folded in*: its factor
is the exact least-squares solution against the fixed item factors, with the same confidence
weighting implicit uses (``A = YᵀY + λI + Σ (c-1) y yᵀ``, ``b = Σ c y``), solved for a whole batch at
once. Scores are ``u · y_i``. ``implicit`` is imported inside :meth:`ALSRecommender.fit` only.

>>> import numpy as np
>>> from shopkeep.models.base import Interactions
>>> seqs = tuple(np.array([i % 3, 3 + i % 2]) for i in range(30))
>>> model = ALSRecommender(factors=4, iterations=5).fit(Interactions(seqs, n_items=5))
>>> model.score([np.array([0]), np.array([])]).shape
(2, 5)
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

__all__ = ["ALSRecommender", "user_item_matrix"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def user_item_matrix(histories: Sequence[IntArray], n_items: int) -> sp.csr_matrix:
    """Counts per (row, item) as a CSR matrix of shape ``(len(histories), n_items)``."""
    lengths = [np.asarray(h).size for h in histories]
    rows = np.repeat(np.arange(len(histories)), lengths)
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.zeros(0, np.int64)
    data = np.ones(rows.size, dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(histories), n_items), dtype=np.float32)


class ALSRecommender:
    """Alternating least squares on the sequence-item matrix, with batch fold-in of histories."""

    name = "als"
    refit_on_validation = True

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 1.0,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
        threads: int = 2,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.threads = threads
        self.item_factors_: FloatArray | None = None

    def _check_params(self) -> None:
        for field in ("factors", "iterations", "threads"):
            if getattr(self, field) < 1:
                raise ValidationError(field, getattr(self, field), "must be >= 1")
        if self.regularization < 0:
            raise ValidationError("regularization", self.regularization, "must be >= 0")
        if self.alpha <= 0:
            raise ValidationError("alpha", self.alpha, "must be > 0")

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Factorise the training matrix with implicit's CPU ALS. ``validate`` is unused."""
        self._check_params()
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # implicit dependency

        matrix = user_item_matrix(train.sequences, train.n_items)
        # implicit parallelises itself; nested BLAS threads thrash (and implicit warns about them)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.threads,
            )
            model.fit(matrix, show_progress=False)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        return self

    def fold_in(self, histories: Sequence[IntArray]) -> FloatArray:
        """Least-squares factors ``(len(histories), factors)`` of each history; zeros for empty ones."""
        check_fitted(self, "item_factors_")
        assert self.item_factors_ is not None
        y = self.item_factors_.astype(np.float64)
        f = y.shape[1]
        counts = user_item_matrix(histories, y.shape[0]).tocoo()
        conf = self.alpha * counts.data.astype(np.float64)
        a = np.broadcast_to(y.T @ y + self.regularization * np.eye(f), (len(histories), f, f)).copy()
        yi = y[counts.col]
        np.add.at(a, counts.row, (conf - 1.0)[:, None, None] * yi[:, :, None] * yi[:, None, :])
        b = np.zeros((len(histories), f))
        np.add.at(b, counts.row, conf[:, None] * yi)
        return np.linalg.solve(a, b[:, :, None])[:, :, 0].astype(np.float32)

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """``fold_in(histories) @ item_factorsᵀ``."""
        users = self.fold_in(histories)
        assert self.item_factors_ is not None
        return np.asarray(users @ self.item_factors_.T, dtype=np.float32)

    def save(self, path: Path) -> None:
        """Write item factors and config to the directory ``path``."""
        check_fitted(self, "item_factors_")
        assert self.item_factors_ is not None
        write_artifact(path, self.name, self.get_config(), {"item_factors": self.item_factors_})

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""
        doc, arrays = read_artifact(path, cls.name)
        model = cls(**doc["config"])
        model.item_factors_ = arrays["item_factors"].astype(np.float32)
        return model

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "seed": self.seed,
            "threads": self.threads,
        }
