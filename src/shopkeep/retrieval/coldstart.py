"""Cold-start candidate sources: a source that speaks only for short histories, and stated preferences.

* :class:`ShortHistorySource` wraps any source (typically a :class:`~shopkeep.retrieval.SequentialSource`
  over the lookalike model of :mod:`shopkeep.explore.lookalike`) so that its fusion weight is 1 for a
  shopper with at most ``max_interactions`` recent items and 0 beyond (the established sources take
  over); in scope it returns the inner source's candidates unchanged, out of scope none.
* :class:`PreferenceSource` (``stated``): items matching the context's zero-party preferences (the
  answers of preference elicitation kept in the profile: ``department``/``category`` → category
  masks, any other key → ``attr:key=value``), ranked by how many preference keys they match, then
  by the prior (popularity); it answers nothing when no preference is stated.
* :class:`VisitContextSource` (``context``): for a shopper with no history, items ranked by a
  popularity prior conditioned on the visit's context (``device``, ``referrer``, ``campaign``,
  ``channel`` of the request; :class:`~shopkeep.explore.context_prior.ContextPrior` or anything with
  its ``scores``/``knows``); silent once the shopper has history or when no context value is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, Self

import numpy as np

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.retrieval.base import Candidate, CandidateSource, Mask
from shopkeep.retrieval.binding import FloatArray, Hit, check_masks, no_hit, scatter, to_candidate_lists, top_k

__all__ = ["PreferenceSource", "ShortHistorySource", "VisitContextSource", "VisitPrior"]

_CATEGORY_KEYS = frozenset({"department", "category"})


class ShortHistorySource:
    """``inner``'s candidates, weighted 1 while the shopper has at most ``max_interactions`` recent items.

    The fusion weight is 0 (the source is silent in fusion) once the history is longer, or when the
    shopper withdrew consent to personalization. ``snapshot`` and ``retrieve_arrays`` are the inner
    source's, so the wrapper keeps the array read path.
    """

    def __init__(self, inner: CandidateSource, *, max_interactions: int = 2) -> None:
        if isinstance(max_interactions, bool) or not isinstance(max_interactions, int) or max_interactions < 0:
            raise ValidationError("max_interactions", max_interactions, "must be an integer >= 0")
        self.inner = inner
        self.name = inner.name
        self.max_interactions = max_interactions
        self.snapshot: CatalogSnapshot = getattr(inner, "snapshot")  # noqa: B009 - the ArraySource capability

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same wrapper around the inner source bound to ``snapshot``."""
        inner = getattr(self.inner, "with_snapshot")(snapshot)  # noqa: B009
        return type(self)(inner, max_interactions=self.max_interactions)

    def context_weight(self, context: Context) -> float:
        """1.0 for a personalizable context with at most ``max_interactions`` recent items, else 0.0."""
        return 1.0 if context.personalize and len(context.recent_items) <= self.max_interactions else 0.0

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """The inner source's candidates for the contexts in scope (:meth:`context_weight` > 0), else none."""
        check_masks(contexts, masks, self.snapshot.n, k)
        rows = [r for r, ctx in enumerate(contexts) if self.context_weight(ctx) > 0]
        out: list[list[Candidate]] = [[] for _ in contexts]
        if rows:
            found = self.inner.retrieve([contexts[r] for r in rows], [masks[r] for r in rows], k)
            for r, cands in zip(rows, found, strict=True):
                out[r] = cands
        return out

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        rows = [r for r, ctx in enumerate(contexts) if self.context_weight(ctx) > 0]
        out: list[Hit] = [no_hit() for _ in contexts]
        if rows:
            inner = getattr(self.inner, "retrieve_arrays")  # noqa: B009 - the ArraySource capability
            for r, hit in zip(rows, inner([contexts[r] for r in rows], [masks[r] for r in rows], k), strict=True):
                out[r] = hit
        return out


class PreferenceSource:
    """Items matching stated preferences (module docstring); ``prior`` over snapshot items breaks ties."""

    def __init__(self, snapshot: CatalogSnapshot, *, name: str = "stated", prior: FloatArray | None = None) -> None:
        if prior is not None and np.asarray(prior).shape != (snapshot.n,):
            raise ValidationError("prior", np.asarray(prior).shape, f"must have one score per item ({snapshot.n})")
        self.name = name
        self.snapshot = snapshot
        self.prior = None if prior is None else np.asarray(prior, dtype=np.float64)
        top = float(self.prior.max()) if self.prior is not None and self.prior.size else 0.0
        self._scaled = self.prior / top if self.prior is not None and top > 0 else np.zeros(snapshot.n)

    def with_snapshot(self, snapshot: CatalogSnapshot, prior: FloatArray | None = None) -> Self:
        """The same source over ``snapshot`` (``prior`` must then match it; default: none)."""
        return type(self)(snapshot, name=self.name, prior=prior)

    def key_masks(self, context: Context) -> list[Mask]:
        """One item mask per stated preference key (the union over its values)."""
        out = []
        for key, values in sorted(context.preferences.items()):
            mask = np.zeros(self.snapshot.n, dtype=np.bool_)
            for value in values:
                if key in _CATEGORY_KEYS:
                    mask |= self.snapshot.category_mask(str(value))
                else:
                    mask |= self.snapshot.attribute_mask(key, value)
            if mask.any():
                out.append(mask)
        return out

    def context_weight(self, context: Context) -> float:
        """1.0 when the shopper stated a usable preference (and allows personalization), else 0.0."""
        return 1.0 if context.personalize and context.preferences and self.key_masks(context) else 0.0

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible items matching its preferences."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = []
        for ctx, mask in zip(contexts, masks, strict=True):
            keys = self.key_masks(ctx) if ctx.personalize else []
            if not keys:
                out.append(no_hit())
                continue
            match = np.sum(keys, axis=0, dtype=np.float64)
            scores = np.where(match > 0, match + 0.5 * self._scaled, -np.inf)
            out.append(top_k(scores, mask, k))
        return out


class VisitPrior(Protocol):
    """Item scores given a visit's context (what :class:`VisitContextSource` reads)."""

    def scores(self, contexts: Sequence[Mapping[str, str]]) -> FloatArray:
        """One row of scores over the prior's items per visit context."""

    def knows(self, context: Mapping[str, str]) -> bool:
        """Whether any value of ``context`` was seen (else the prior says nothing beyond popularity)."""


class VisitContextSource:
    """A visit-context prior for shoppers with no history (module docstring); ``item_ids[i]`` is the
    item of the prior's index ``i`` (items the snapshot lacks are skipped)."""

    def __init__(self, prior: VisitPrior, item_ids: Sequence[str], snapshot: CatalogSnapshot, *,
                 name: str = "context") -> None:
        self.prior = prior
        self.item_ids = tuple(item_ids)
        self.snapshot = snapshot
        self.name = name
        self._to_snap = np.asarray(snapshot.indices(list(self.item_ids)), dtype=np.int64)

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same prior over ``snapshot``."""
        return type(self)(self.prior, self.item_ids, snapshot, name=self.name)

    def context_weight(self, context: Context) -> float:
        """1.0 for a shopper with no recent items whose visit carries a known context value, else 0.0."""
        if context.recent_items or context.cart_items:
            return 0.0
        visit = context.request.visit()
        return 1.0 if visit and self.prior.knows(visit) else 0.0

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context in scope, the ``k`` eligible items the visit prior ranks highest."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = [no_hit() for _ in contexts]
        rows = [r for r, ctx in enumerate(contexts) if self.context_weight(ctx) > 0]
        if rows:
            dense = self.prior.scores([contexts[r].request.visit() for r in rows])
            for r, row in zip(rows, dense, strict=True):
                out[r] = top_k(scatter(row, self._to_snap, self.snapshot.n), masks[r], k)
        return out
