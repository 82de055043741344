"""Global popularity: every item scores its interaction count in the sequences it was fit on.

>>> import numpy as np
>>> from shopkeep.models.base import Interactions
>>> seqs = (np.array([0, 1, 1]), np.array([1, 2]))
>>> PopularityRecommender().fit(Interactions(seqs, n_items=4)).score([np.array([0])]).tolist()
[[1.0, 3.0, 1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from shopkeep.models.base import Interactions, ValidateFn, check_fitted
from shopkeep.models.registry import read_artifact, write_artifact

__all__ = ["PopularityRecommender", "item_counts"]

FloatArray = npt.NDArray[np.float32]


def item_counts(train: Interactions) -> npt.NDArray[np.float64]:
    """Interactions per item over all sequences of ``train`` (float64, length ``n_items``)."""
    if not train.sequences:
        return np.zeros(train.n_items, dtype=np.float64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in train.sequences])
    return np.bincount(flat, minlength=train.n_items).astype(np.float64)


class PopularityRecommender:
    """Scores = interaction counts; the same ranking for every history.

    ``refit_on_validation``: the evaluation runner refits it on train + validation sequences before
    the test phase, so popularity counts every interaction before each user's test item.
    """

    name = "pop"
    refit_on_validation = True

    def __init__(self) -> None:
        self.counts_: npt.NDArray[np.float64] | None = None

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Count interactions per item. ``validate`` is unused (nothing to tune)."""
        self.counts_ = item_counts(train)
        return self

    def score(self, histories: Sequence[npt.NDArray[np.int64]]) -> FloatArray:
        """The count vector repeated for each history."""
        check_fitted(self, "counts_")
        assert self.counts_ is not None  # for mypy; check_fitted raised otherwise
        row = self.counts_.astype(np.float32)
        return np.tile(row, (len(histories), 1))

    def save(self, path: Path) -> None:
        """Write counts and config to the directory ``path``."""
        check_fitted(self, "counts_")
        assert self.counts_ is not None
        write_artifact(path, self.name, self.get_config(), {"counts": self.counts_})

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""
        doc, arrays = read_artifact(path, cls.name)
        model = cls(**doc["config"])
        model.counts_ = arrays["counts"].astype(np.float64)
        return model

    def get_config(self) -> dict[str, Any]:
        """No hyper-parameters."""
        return {}
