"""The affinity source (``affinity``): items matching the context's strongest affinity keys (``cat:``,
``brand:``, ``attr:k=v``, ``group:``), with the explicit-signal and mission rules that set how much it
weighs in fusion and what it lists. Immutable after construction; :meth:`AffinitySource.with_snapshot`
returns a copy bound to a newer catalog snapshot. Returns nothing when ``context.personalize`` is False.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.retrieval.base import Candidate, Mask
from shopkeep.retrieval.binding import FloatArray, Hit, IntArray, check_masks, no_hit, to_candidate_lists, top_k

__all__ = ["AffinitySource"]


class AffinitySource:
    """Items matching the context's strongest affinity keys (``cat:``, ``brand:``, ``attr:k=v``, ``group:``).

    The top ``n_keys`` keys with weight >= ``min_weight`` count, strongest first. An item scores
    ``sum_j (w_j / w_0) * key_discount**j`` over the keys ``j`` it matches, plus ``prior_weight`` x a
    popularity prior in [0, 1] (``prior``: scores per snapshot index, e.g. :meth:`PopularSource.scores`).
    With the defaults (discount 0.5, prior 0.05) every item matching the strongest key outranks every
    item that does not: three filter events on one value put that value first. Only matching items
    are returned. :meth:`context_weight` scales the source's fusion weight by the strongest key's
    weight, saturating at ``saturation`` (default 4: two filter events or four views at the
    features' default event weights), so one faint view does not take over a slate, and multiplies
    it by ``explicit_boost`` (default 3) only when :meth:`explicit` holds.

    The explicit-signal rule (:meth:`explicit`): a view, click, cart or purchase adds the same weight
    to *every* key of its item (its ``cat:`` levels and its ``attr:`` values alike), while a filter
    adds weight to one ``attr:`` key only. So with ``A`` the strongest ``attr:`` key and ``C`` the
    strongest ``cat:`` key, and ``n(K)`` the number of the context's recent items holding key ``K``,
    item interactions alone predict ``w(A) ~= w(C) * n(A) / n(C)``. The signal is explicit when
    ``w(A) >= w(C)`` (the attribute is above every category) and the part of ``w(A)`` the recent items
    do not explain, ``w(A) - w(C) * n(A) / max(n(C), 1)``, is at least ``explicit_tolerance * w(C)``
    (at least ``explicit_min`` when there is no ``cat:`` key). Browsing alone therefore keeps the
    weight at ~1 x; three filters on one value make it ``explicit_boost`` x.

    A :meth:`focused` session (its last three items share a category as strong as its strongest key:
    :meth:`mission`) gets, with ``focus_only`` (default), only the items of that category from this
    source. Rank fusion adds ``w / (c + rank + 1)`` per list with ``c`` = 60, so the 30th item of a
    list adds nearly as much as the first: when this source also listed the sibling categories that
    share the department's and the brands' keys, siblings that other sources found too outranked the
    mission category (three clicks in an 8-item leaf gave it 1 of 20 slots). Siblings still come from
    the other sources.
    """

    def __init__(
        self,
        snapshot: CatalogSnapshot,
        *,
        name: str = "affinity",
        n_keys: int = 5,
        min_weight: float = 0.0,
        prior: FloatArray | None = None,
        prior_weight: float = 0.05,
        key_discount: float = 0.5,
        saturation: float = 4.0,
        explicit_boost: float = 3.0,
        explicit_tolerance: float = 0.5,
        explicit_min: float = 1.0,
        focus_boost: float = 2.0,
        focus_only: bool = True,
    ) -> None:
        if not explicit_boost >= 1.0 or not focus_boost >= 1.0:
            raise ValidationError("explicit_boost", (explicit_boost, focus_boost), "boosts must be >= 1")
        if not explicit_tolerance >= 0.0 or not explicit_min > 0.0:
            raise ValidationError("explicit_tolerance", (explicit_tolerance, explicit_min),
                                  "tolerance must be >= 0 and explicit_min > 0")
        self.explicit_boost, self.explicit_tolerance = explicit_boost, explicit_tolerance
        self.explicit_min, self.focus_boost, self.focus_only = explicit_min, focus_boost, focus_only
        if n_keys <= 0:
            raise ValidationError("n_keys", n_keys, "must be > 0")
        if prior is not None and np.asarray(prior).shape != (snapshot.n,):
            raise ValidationError("prior", np.asarray(prior).shape, f"must have one score per item ({snapshot.n})")
        if not saturation > 0:
            raise ValidationError("saturation", saturation, "must be > 0")
        if not 0 < key_discount <= 1:
            raise ValidationError("key_discount", key_discount, "must be in (0, 1]")
        self.key_discount = key_discount
        self.name = name
        self.snapshot = snapshot
        self.n_keys, self.min_weight, self.prior_weight, self.saturation = n_keys, min_weight, prior_weight, saturation
        self.prior = None if prior is None else np.asarray(prior, dtype=np.float64)
        scaled = self.prior if self.prior is not None else np.zeros(self.snapshot.n)
        # the prior scaled to [0, 1] once, not per request
        self._scaled_prior = scaled / scaled.max() if scaled.size and scaled.max() > 0 else scaled
        terms = self.prior_weight * self._scaled_prior
        #: The least and largest prior term of any item (bounds that let retrieval skip hopeless rows).
        self._prior_terms = (float(terms.min()), float(terms.max())) if terms.size else (0.0, 0.0)
        self._masks: dict[str, Mask] = {}
        self._top_cache: dict[int, tuple[Context, tuple[tuple[str, float], ...]]] = {}
        self._mission_cache: dict[int, tuple[Context, str | None]] = {}

    def with_snapshot(self, snapshot: CatalogSnapshot, prior: FloatArray | None = None) -> Self:
        """The same source over ``snapshot`` (``prior`` must then match it; default: none)."""
        return type(self)(snapshot, name=self.name, n_keys=self.n_keys, min_weight=self.min_weight,
                          prior=prior, prior_weight=self.prior_weight, key_discount=self.key_discount,
                          saturation=self.saturation, explicit_boost=self.explicit_boost,
                          explicit_tolerance=self.explicit_tolerance, explicit_min=self.explicit_min,
                          focus_boost=self.focus_boost, focus_only=self.focus_only)

    def key_mask(self, key: str) -> Mask:
        """Items matching one affinity key (all False for unknown kinds, e.g. ``item:``)."""
        found = self._masks.get(key)
        if found is not None:
            return found
        # the items whose affinity_keys hold ``key``: the same keys the features add weight to
        mask = np.zeros(self.snapshot.n, dtype=np.bool_)
        mask[self.snapshot.affinity_matrix().key_rows(key)] = True
        if len(self._masks) >= 256:  # a mask is n bytes: 256 of them at 100k items is ~26 MB per worker
            self._masks.clear()
        self._masks[key] = mask
        return mask

    def key_share(self, key: str) -> float:
        """Share of the catalog matching ``key``."""
        n = self.snapshot.n
        return self.snapshot.affinity_matrix().key_count(key) / n if n else 0.0

    def top_keys(self, context: Context) -> list[tuple[str, float]]:
        """The strongest usable affinity keys of ``context``: weight desc; equal weights (one event adds
        the same weight to every key of its item) go to the more specific key first — the one fewer
        catalog items hold — so three clicks on serums rank ``cat:serum`` above the department and above
        attribute values half the catalog shares; then by key for determinism."""
        if not context.personalize:
            return []
        # one request asks three times (weight, focus, retrieval): remember the last few contexts by identity
        found = self._top_cache.get(id(context))
        if found is not None and found[0] is context:
            return list(found[1])
        keys = [(k, float(w)) for k, w in context.affinities.items()
                if w > 0 and w >= self.min_weight and not k.startswith("item:")]
        keys.sort(key=lambda kw: (-kw[1], kw[0]))
        head = keys[: 3 * self.n_keys]  # specificity only reorders near-ties, so the head suffices
        head.sort(key=lambda kw: (-round(kw[1], 9), self.key_share(kw[0]), kw[0]))
        top = head[: self.n_keys]
        if len(self._top_cache) >= 64:
            self._top_cache.clear()
        self._top_cache[id(context)] = (context, tuple(top))
        return top

    def explicit(self, context: Context) -> bool:
        """Whether the strongest ``attr:`` key comes from an explicit signal (a filter), not from the
        recent items themselves (the rule in the class docstring)."""
        if not context.personalize:
            return False
        attr = max(((w, k) for k, w in context.affinities.items() if k.startswith("attr:") and w > 0), default=None)
        if attr is None:
            return False
        w_a, key_a = attr
        cat = max(((w, k) for k, w in context.affinities.items() if k.startswith("cat:") and w > 0), default=None)
        if cat is None:
            return w_a >= self.explicit_min
        w_c, key_c = cat
        if w_a < w_c:
            return False
        idx = self.snapshot.indices(list(context.recent_items))
        idx = idx[idx >= 0]
        n_a, n_c = int(self.key_mask(key_a)[idx].sum()), int(self.key_mask(key_c)[idx].sum())
        return w_a - w_c * n_a / max(n_c, 1) >= self.explicit_tolerance * w_c

    def mission(self, context: Context) -> str | None:
        """The session's mission category, or None: among the ``cat:`` keys as strong as its strongest
        usable key (one event adds the same weight to every key of its item, so these tie), the most
        specific one (fewest catalog items) that each of the last three recent items holds. Three clicks
        on sizes of one sneaker tie its variant group, brand, attributes and category levels: the group
        leads :meth:`top_keys`, the mission is the leaf category ``cat:sneaker``."""
        # asked twice per request (fusion weight, retrieval): remembered per context like top_keys
        found = self._mission_cache.get(id(context))
        if found is not None and found[0] is context:
            return found[1]
        mission = self._mission(context)
        if len(self._mission_cache) >= 64:
            self._mission_cache.clear()
        self._mission_cache[id(context)] = (context, mission)
        return mission

    def _mission(self, context: Context) -> str | None:
        if not context.personalize or len(context.recent_items) < 3:
            return None
        keys = self.top_keys(context)
        if not keys:
            return None
        floor = keys[0][1] * (1.0 - 1e-9)
        tied = [k for k, w in context.affinities.items() if k.startswith("cat:") and w >= floor]
        if not tied:
            return None
        idx = self.snapshot.indices(list(context.recent_items[-3:]))
        if not (idx.size == 3 and (idx >= 0).all()):
            return None
        held = [k for k in tied if self.key_mask(k)[idx].all()]
        return min(held, key=lambda k: (self.key_share(k), k)) if held else None

    def focused(self, context: Context) -> bool:
        """Whether the session is on a mission (:meth:`mission` names a category)."""
        return self.mission(context) is not None

    def context_weight(self, context: Context) -> float:
        """Multiplier for this source's fusion weight: strongest key weight / ``saturation`` (at most 1),
        times ``explicit_boost`` when :meth:`explicit` holds, else times ``focus_boost`` when
        :meth:`focused` holds (session signals outweigh the long-term mix)."""
        keys = self.top_keys(context)
        if not keys:
            return 0.0
        boost = self.explicit_boost if self.explicit(context) else self.focus_boost if self.focused(context) else 1.0
        return min(1.0, keys[0][1] / self.saturation) * boost

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible items matching its top affinity keys."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = []
        prior = self._scaled_prior
        for ctx, mask in zip(contexts, masks, strict=True):
            keys = self.top_keys(ctx)
            if not keys:
                out.append(no_hit())
                continue
            mission = self.mission(ctx) if self.focus_only else None
            if mission is not None:
                mask = mask & self.key_mask(mission)
            rows, match = self._match(keys, mask, k)
            scores = np.where(match > 0, match + self.prior_weight * prior[rows], -np.inf)
            top, val = top_k(scores, np.ones(len(rows), dtype=np.bool_), k)
            out.append((rows[top], val))
        return out

    def _match(self, keys: Sequence[tuple[str, float]], mask: Mask, k: int) -> tuple[IntArray, FloatArray]:
        """(rows, match) of the eligible items holding some key among ``keys`` that can be among the
        ``k`` best (scored term by term, key order, exactly as every item would be).

        With ``c_j`` key j's term and the prior terms within ``[lo, hi]``, key j *dominates* when
        ``c_j - sum(c_i for i > j) > hi - lo``: then among items that agree on keys ``< j`` every item
        holding key j outscores every item lacking it. Walking the keys while they dominate, the items
        holding the next key are kept as the only contenders when at least the still-needed number of
        them are eligible, else all of them are taken and the rest is sought among the items lacking it;
        the walk only narrows boolean masks (no per-item arithmetic over the catalog), and items it
        leaves out are strictly below the ``k``-th best, so the result is exact."""
        hit = self.key_mask(keys[0][0]).copy()
        for key, _ in keys[1:]:
            hit |= self.key_mask(key)
        hit &= mask
        terms = [(w / keys[0][1]) * self.key_discount**j for j, (_, w) in enumerate(keys)]
        lo, hi = self._prior_terms
        taken = np.zeros_like(hit)
        need = k
        for j, (key, _) in enumerate(keys):
            if not terms[j] - sum(terms[j + 1:]) > (hi - lo) + 1e-9:
                break
            holding = hit & self.key_mask(key)
            found = int(np.count_nonzero(holding))
            if found >= need:
                hit = holding
                continue
            taken |= holding
            need -= found
            hit &= ~self.key_mask(key)
        return self._score_rows(keys, terms, taken | hit)

    def _score_rows(self, keys: Sequence[tuple[str, float]], terms: Sequence[float],
                    candidates: Mask) -> tuple[IntArray, FloatArray]:
        """(rows, match) of the ``candidates``: each key's term (``terms[j]``) added in key order."""
        rows = np.flatnonzero(candidates)
        match = np.zeros(len(rows))
        for (key, _), term in zip(keys, terms, strict=True):
            match += term * self.key_mask(key)[rows]
        return rows, match
