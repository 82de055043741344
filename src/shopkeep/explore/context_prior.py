"""Session-context priors for shoppers with no history: popularity conditioned on the visit's context.

For each context field (``device``, ``referrer``, ``geo``, ``campaign``, ``channel``, ``store``) and
value, item interaction counts are kept; a value seen ``n`` times gives the shrunk distribution

    P̂(i | f=v) = (n_fv(i) + m · P(i)) / (n_fv + m)

(``m = shrinkage``, ``P`` the global popularity share), so a rare referrer or a new campaign falls
back to global popularity. Fields combine naive-Bayes style:
``score(i) = P(i) · Π_f P̂(i | f=v_f) / P(i)``; unknown fields and values are ignored.

>>> prior = ContextPrior(shrinkage=1.0).fit([({"campaign": "toys"}, 1), ({"campaign": "toys"}, 1),
...                                           ({"campaign": "spa"}, 0), ({"campaign": "spa"}, 0),
...                                           ({"campaign": "spa"}, 0)], n_items=2)
>>> prior.scores([{"campaign": "toys"}, {}]).argmax(axis=1).tolist()
[1, 0]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Self

import numpy as np
import numpy.typing as npt

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.types import Event

__all__ = ["CONTEXT_FIELDS", "ContextPrior", "event_context"]

#: Context fields an event or a request may carry.
CONTEXT_FIELDS = ("device", "referrer", "geo", "campaign", "channel", "store")
F64 = npt.NDArray[np.float64]


def event_context(event: Event) -> dict[str, str]:
    """The non-empty context fields of an event, lower-cased."""
    ctx = event.context
    if ctx is None:
        return {}
    return {f: str(v).strip().lower() for f in CONTEXT_FIELDS if (v := getattr(ctx, f, None))}


class ContextPrior:
    """Popularity per context value, shrunk to global popularity (module docstring)."""

    def __init__(self, shrinkage: float = 50.0, fields: Sequence[str] = CONTEXT_FIELDS) -> None:
        self.shrinkage = shrinkage
        self.fields = tuple(fields)
        self.global_: F64 | None = None
        self.counts_: dict[tuple[str, str], F64] = {}
        self.total_: F64 = np.zeros(0)

    def fit(self, rows: Iterable[tuple[Mapping[str, str], int]], n_items: int) -> Self:
        """Count ``(context, item index)`` interaction rows over ``n_items`` items."""
        if not self.shrinkage > 0:
            raise ValidationError("shrinkage", self.shrinkage, "must be > 0")
        if n_items < 1:
            raise ValidationError("n_items", n_items, "must be >= 1")
        bad = [f for f in self.fields if f not in CONTEXT_FIELDS]
        if bad:
            raise ValidationError("fields", bad, f"must be among {CONTEXT_FIELDS}")
        total = np.zeros(n_items)
        counts: dict[tuple[str, str], F64] = {}
        for ctx, item in rows:
            if not 0 <= item < n_items:
                raise ValidationError("item", item, f"must be an index in [0, {n_items})")
            total[item] += 1.0
            for f in self.fields:
                value = ctx.get(f)
                if value:
                    counts.setdefault((f, str(value).lower()), np.zeros(n_items))[item] += 1.0
        self.total_ = total
        self.global_ = (total + 1e-9) / (total.sum() + 1e-9 * n_items)
        self.counts_ = counts
        return self

    def update(self, rows: Iterable[tuple[Mapping[str, str], int]]) -> int:
        """Fold more ``(context, item index)`` rows in (the write path); rows with an index outside the
        fitted items are skipped. Returns how many rows counted."""
        if self.global_ is None:
            raise NotFittedError("ContextPrior is not fitted; call fit() first", {"model": "ContextPrior"})
        n_items, counted = self.total_.size, 0
        for ctx, item in rows:
            if not 0 <= item < n_items:
                continue
            counted += 1
            self.total_[item] += 1.0
            for f in self.fields:
                value = ctx.get(f)
                if value:
                    self.counts_.setdefault((f, str(value).lower()), np.zeros(n_items))[item] += 1.0
        if counted:
            self.global_ = (self.total_ + 1e-9) / (self.total_.sum() + 1e-9 * n_items)
        return counted

    def knows(self, context: Mapping[str, str]) -> bool:
        """Whether any field value of ``context`` was seen in fitting (else the prior is plain popularity).

        >>> ContextPrior().fit([({"device": "app"}, 0)], n_items=1).knows({"device": "APP"})
        True
        """
        return any((f, str(v).lower()) in self.counts_ for f in self.fields if (v := context.get(f)))

    def scores(self, contexts: Sequence[Mapping[str, str]]) -> F64:
        """One row of prior scores (a distribution over items) per context."""
        if self.global_ is None:
            raise NotFittedError("ContextPrior is not fitted; call fit() first", {"model": "ContextPrior"})
        g = self.global_
        out = np.empty((len(contexts), g.size))
        for r, ctx in enumerate(contexts):
            log = np.log(g)
            for f in self.fields:
                value = ctx.get(f)
                counts = self.counts_.get((f, str(value).lower())) if value else None
                if counts is not None:
                    shrunk = (counts + self.shrinkage * g) / (counts.sum() + self.shrinkage)
                    log += np.log(shrunk) - np.log(g)
            row = np.exp(log - log.max())
            out[r] = row / row.sum()
        return out
