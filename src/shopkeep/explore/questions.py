"""Clarifying questions chosen by expected information gain over a candidate set (used by the concierge
and by new-shopper preference elicitation, :mod:`shopkeep.explore.elicitation`).

The shopper's target is one of the current candidates, with probability proportional to its weight
(uniform by default). A :class:`Facet` splits the candidates by the possible answers (its
``buckets``: answer → bool mask; an item may sit in several buckets, e.g. a cream for dry and
sensitive skin). Asking costs a turn; its expected information gain is

    EIG = H(target) - Σ_a P(a) · H(target | a)

with P(a) ∝ the weight in bucket ``a`` and H(target | a) the entropy of the weights inside it. The
selector asks the facet with the largest EIG only when it reaches ``min_gain_bits``, at most
``max_questions`` times, and never when the candidates already fit in one answer page (``k``) —
the answer would hardly change what is shown.

>>> import numpy as np
>>> m = np.array([True, True, False, False])
>>> round(expected_gain({"a": m, "b": ~m}, np.ones(4)), 3)
1.0
>>> round(expected_gain({"a": np.ones(4, dtype=bool)}, np.ones(4)), 3)
0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError

__all__ = ["Facet", "Question", "QuestionSelector", "entropy_bits", "expected_gain"]

_Mask = npt.NDArray[np.bool_]
_Weights = npt.NDArray[np.float64]


def entropy_bits(weights: _Weights) -> float:
    """Shannon entropy (bits) of the distribution proportional to ``weights``."""
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        return 0.0
    p = w[w > 0] / total
    return float(-(p * np.log2(p)).sum())


def expected_gain(buckets: Mapping[str, _Mask], weights: _Weights) -> float:
    """Expected entropy reduction (bits) of learning which bucket holds the target.

    Candidates in no bucket are ones no answer keeps; they count as an answer of their own.
    """
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total <= 0 or not buckets:
        return 0.0
    parts = [np.asarray(m, dtype=np.bool_) for m in buckets.values()]
    covered = np.zeros(w.shape[0], dtype=np.bool_)
    for m in parts:
        covered |= m
    if (~covered).any():
        parts.append(~covered)
    mass = np.array([float(w[m].sum()) for m in parts])
    if mass.sum() <= 0:
        return 0.0
    prob = mass / mass.sum()
    after = sum(float(p) * entropy_bits(w[m]) for p, m in zip(prob, parts, strict=True) if p > 0)
    return max(0.0, entropy_bits(w) - after)


@dataclass(frozen=True)
class Facet:
    """One askable attribute: ``slot`` name, question ``text``, ``buckets`` (answer → candidate mask)."""

    slot: str
    text: str
    buckets: Mapping[str, _Mask]


@dataclass(frozen=True)
class Question:
    """A chosen question: its ``slot``, ``text``, answer ``options`` and expected gain in bits."""

    slot: str
    text: str
    options: tuple[str, ...]
    gain_bits: float


class QuestionSelector:
    """Picks the next clarifying question, or none (see the module docstring)."""

    def __init__(self, min_gain_bits: float = 0.8, max_questions: int = 3, k: int = 5) -> None:
        if min_gain_bits < 0:
            raise ValidationError("min_gain_bits", min_gain_bits, "must be >= 0")
        if max_questions < 0:
            raise ValidationError("max_questions", max_questions, "must be >= 0")
        self.min_gain_bits = min_gain_bits
        self.max_questions = max_questions
        self.k = k

    def gains(self, facets: Sequence[Facet], weights: _Weights) -> dict[str, float]:
        """Expected information gain (bits) of each facet's question."""
        return {f.slot: expected_gain(f.buckets, weights) for f in facets}

    def choose(self, facets: Sequence[Facet], weights: _Weights, asked: Sequence[str] = ()) -> Question | None:
        """The question to ask now, or None when no question is worth a turn."""
        w = np.asarray(weights, dtype=np.float64)
        if len(asked) >= self.max_questions or int((w > 0).sum()) <= self.k:
            return None
        best: tuple[float, Facet] | None = None
        for facet in facets:
            if facet.slot in asked or len(facet.buckets) < 2:
                continue
            gain = expected_gain(facet.buckets, w)
            if best is None or gain > best[0]:
                best = (gain, facet)
        if best is None or best[0] < self.min_gain_bits:
            return None
        gain, facet = best
        nonempty = tuple(a for a, m in facet.buckets.items() if bool((np.asarray(m) & (w > 0)).any()))
        return Question(facet.slot, facet.text, nonempty, round(gain, 4))
