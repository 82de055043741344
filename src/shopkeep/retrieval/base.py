"""Candidate retrieval contract: named sources, each returning scored candidates for a context.

A source never returns an item that fails the request's hard eligibility mask (in stock at the
fulfillment location, regulated class vs region/age, exclusions, consent): the mask is pushed down
into retrieval so that a selective rule cannot empty a slate. Every implementation passes
tests/retrieval/test_source_conformance.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from shopkeep.features.context import Context

__all__ = ["Candidate", "CandidateSource", "FusedCandidate", "Mask"]

#: Boolean mask over the catalog snapshot's item indices: True = eligible.
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One item proposed by one source: its score there and its 0-based rank in that source's list."""

    item_id: str
    score: float
    source: str
    rank: int


@dataclass(frozen=True, slots=True)
class FusedCandidate:
    """An item after fusion: the fused score and, per source that found it, (score, rank)."""

    item_id: str
    score: float
    sources: Mapping[str, tuple[float, int]] = field(default_factory=dict)


@runtime_checkable
class CandidateSource(Protocol):
    """A named candidate generator (sequential model, two-tower ANN, co-visitation, popular, ...)."""

    name: str

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible candidates, best first (batch first: one list per context)."""
