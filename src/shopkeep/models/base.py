"""The contract every recommendation model follows (scikit-learn style, batch first).

Models work on dense integer item indices ``0..n_items-1``; string ids live at the edges
(evaluation loaders and the engine map them). A model:

* stores its hyper-parameters in ``__init__`` and does nothing else there;
* ``fit(train, validate=None)`` learns from :class:`Interactions`, sets learned state with a trailing
  underscore, and returns ``self``. ``validate`` is an optional callback supplied by the caller
  (evaluation/) that scores the current model on the *validation* split and returns a number where
  higher is better; models that train iteratively use it for early stopping. Models never see test data.
* ``score(histories)`` returns a float32 array ``(len(histories), n_items)``: higher = more likely
  next item. Excluding already-seen items is the caller's job (protocols differ on it).
* ``save(path)`` / ``load(path)`` persist without pickle (npz/safetensors + JSON with version + config).

Every model passes tests/models/test_model_conformance.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from shopkeep.errors import NotFittedError, ValidationError

__all__ = [
    "BestWeights", "Interactions", "ItemFeatures", "LabeledValidate", "SequentialRecommender", "ValidateFn",
    "check_fitted",
    "check_item_range", "left_pad", "save_weights",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ItemFeatures:
    """Optional side information per item index.

    ``attributes``: for each item, an int64 array of attribute ids (brand, category, ... mapped to
    ``0..n_attributes-1``); ``titles``: one text per item ("" when unknown).
    """

    n_attributes: int = 0
    attributes: tuple[IntArray, ...] = ()
    titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Interactions:
    """Per-sequence item indices in time order (a user's history or a session)."""

    sequences: tuple[IntArray, ...]
    n_items: int
    features: ItemFeatures = field(default_factory=ItemFeatures)

    def __post_init__(self) -> None:
        if self.n_items <= 0:
            raise ValidationError("n_items", self.n_items, "must be > 0")
        for i, seq in enumerate(self.sequences):
            if seq.size and (int(seq.min()) < 0 or int(seq.max()) >= self.n_items):
                raise ValidationError(f"sequences[{i}]", seq.tolist()[:10], f"item index outside [0, {self.n_items})")

    @property
    def n_interactions(self) -> int:
        """Total number of interactions."""
        return int(sum(s.size for s in self.sequences))


#: Callback that scores a model on the validation split (higher is better).
ValidateFn = Callable[["SequentialRecommender"], float]


@runtime_checkable
class LabeledValidate(Protocol):
    """A validate callback that also shows its cases: each history and the item that came next.

    The evaluation runner's callback is one. Models that learn something from the validation split
    itself (a stacker over its members' candidates) need the labels; every other model only calls it."""

    histories: tuple[IntArray, ...]
    targets: IntArray

    def __call__(self, model: SequentialRecommender) -> float:
        """The validation metric of ``model`` (higher is better)."""

    def report(self, phase: str, done: int, total: int) -> None:
        """Show the model's own progress through the cases (``done`` of ``total`` in ``phase``)."""


@runtime_checkable
class SequentialRecommender(Protocol):
    """Next-item recommender over dense item indices."""

    name: str

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Learn from ``train``; may call ``validate(self)`` to early-stop. Returns ``self``."""

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """Scores ``(len(histories), n_items)`` for the next item after each history."""

    def save(self, path: Path) -> None:
        """Write the fitted model to the directory ``path`` (no pickle)."""

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters as JSON-able data (the constructor's keyword arguments)."""


def check_fitted(model: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``model`` has the learned ``attribute``."""
    if getattr(model, attribute, None) is None:
        raise NotFittedError(
            f"{type(model).__name__} is not fitted: call fit() or load() first", {"model": type(model).__name__}
        )


def check_item_range(histories: Sequence[IntArray], n_items: int) -> None:
    """Raise :class:`ValidationError` when a history holds an item index outside ``[0, n_items)``.

    >>> check_item_range([np.array([0, 2])], 3)
    >>> check_item_range([np.array([3])], 3)
    Traceback (most recent call last):
    ...
    shopkeep.errors.ValidationError: histories=[3]: item index outside [0, 3)
    """
    for h in histories:
        arr = np.asarray(h)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n_items):
            raise ValidationError("histories", arr.tolist()[:10], f"item index outside [0, {n_items})")


def save_weights(path: Path, module: Any, filename: str) -> Path:
    """Create the directory ``path`` and write ``module``'s state dict (CPU, contiguous) to ``path / filename``
    as safetensors; returns ``path`` as a :class:`~pathlib.Path`. torch and safetensors are imported here, lazily.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path / filename))
    return path


class BestWeights:
    """Early stopping on validation: a copy of a torch module's weights at the best score seen, and
    ``waited``, the scores recorded since the best one."""

    def __init__(self) -> None:
        self.best = -math.inf
        self.state: dict[str, Any] | None = None
        self.waited = 0

    def update(self, score: float, module: Any) -> None:
        """Record ``score`` of ``module``'s current weights (copied when the score is the best so far)."""
        if score > self.best:
            self.best, self.waited = score, 0
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            self.waited += 1

    def restore(self, module: Any) -> None:
        """Load the best weights into ``module``; nothing when no score was recorded."""
        if self.state is not None:
            module.load_state_dict(self.state)


def left_pad(seqs: Sequence[IntArray], max_len: int) -> IntArray:
    """Tokens (item index + 1) of the last ``max_len`` items of each sequence, left-padded with 0.

    >>> left_pad([np.array([4, 5, 6]), np.array([], dtype=np.int64)], 2).tolist()
    [[6, 7], [0, 0]]
    """
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        tail = np.asarray(s, dtype=np.int64)[-max_len:]
        if tail.size:
            out[i, max_len - tail.size :] = tail + 1
    return out
