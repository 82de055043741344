"""``complements``: "bought together" association rules mined from orders and carts.

:class:`AssociationRules` mines pairwise rules ``a -> b`` from baskets (item-id sets): support
``n(a, b) / N``, confidence ``n(a, b) / n(a)`` and lift ``confidence / (n(b) / N)``, kept when
``n(a, b) >= min_count``, confidence ``>= min_confidence`` and lift ``>= min_lift``.
:class:`ComplementsSource` scores a candidate ``b`` for the anchors ``A`` (the pdp item, the cart,
else the last recent items) as ``1 - prod_a (1 - w_a * confidence(a -> b))`` (the chance that at
least one anchor "pulls" it) and never returns an anchor, a variant in an anchor's group, or a
substitute in an anchor's leaf category.

>>> rules = AssociationRules(min_count=2, min_lift=1.0).fit([["tea", "lemon"], ["tea", "lemon", "milk"],
...     ["milk", "bread"], ["milk", "bread"], ["tea"]])
>>> [(b, round(c, 2)) for b, c, _ in rules.rules_for("tea")]
[('lemon', 0.67)]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.models.base import check_fitted
from shopkeep.retrieval.base import Candidate, Mask
from shopkeep.retrieval.binding import FloatArray, Hit, check_masks, no_hit, to_candidate_lists, top_k
from shopkeep.types import Event, EventType

__all__ = ["AssociationRules", "ComplementsSource", "baskets_from_events"]


def baskets_from_events(events: Iterable[Event]) -> list[list[str]]:
    """Baskets: items purchased in one order (``order_id``), else items added to cart in one session."""
    orders: dict[str, list[str]] = defaultdict(list)
    carts: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if e.item_id is None:
            continue
        if e.type == EventType.PURCHASE:
            key = e.order_id or f"session:{e.session_id or e.user_id or e.anonymous_id}"
            orders[key].append(e.item_id)
        elif e.type == EventType.ADD_TO_CART and e.session_id:
            carts[e.session_id].append(e.item_id)
    ordered_sessions = {k.removeprefix("session:") for k in orders}
    out = [list(dict.fromkeys(v)) for v in orders.values()]
    out += [list(dict.fromkeys(v)) for k, v in carts.items() if k not in ordered_sessions]
    return [b for b in out if len(b) >= 1]


class AssociationRules:
    """Pairwise association rules (see the module docstring); ``max_rules`` per antecedent by confidence."""

    def __init__(self, min_count: int = 2, min_confidence: float = 0.01, min_lift: float = 1.0,
                 max_rules: int = 200) -> None:
        self.min_count = min_count
        self.min_confidence = min_confidence
        self.min_lift = min_lift
        self.max_rules = max_rules
        self.item_ids_: tuple[str, ...] | None = None
        self.confidence_: sp.csr_matrix | None = None
        self.lift_: sp.csr_matrix | None = None
        self.counts_: FloatArray | None = None
        self.n_baskets_: int = 0

    def _check(self) -> None:
        if self.min_count < 1:
            raise ValidationError("min_count", self.min_count, "must be >= 1")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValidationError("min_confidence", self.min_confidence, "must be within [0, 1]")
        if self.min_lift < 0 or self.max_rules < 1:
            raise ValidationError("min_lift/max_rules", (self.min_lift, self.max_rules), "must be >= 0 / >= 1")

    def fit(self, baskets: Iterable[Sequence[str]]) -> Self:
        """Mine rules from ``baskets`` (each a collection of item ids; duplicates inside one count once)."""
        self._check()
        vocab: dict[str, int] = {}
        rows, cols = [], []
        n = 0
        for basket in baskets:
            items = {vocab.setdefault(str(i), len(vocab)) for i in basket}
            rows.extend([n] * len(items))
            cols.extend(sorted(items))
            n += 1
        if not vocab:
            raise ValidationError("baskets", n, "need at least one item in one basket")
        b = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocab)))
        counts = np.asarray(b.sum(axis=0), dtype=np.float64).ravel()
        pair = sp.csr_matrix(b.T @ b)
        pair.setdiag(0)
        pair.eliminate_zeros()
        pair.data[pair.data < self.min_count] = 0
        pair.eliminate_zeros()
        conf = sp.csr_matrix(sp.diags(1.0 / counts) @ pair)
        lift = sp.csr_matrix(conf @ sp.diags(n / counts))
        keep = (conf.data >= self.min_confidence) & (lift.data >= self.min_lift)
        conf.data[~keep] = 0
        lift.data[~keep] = 0
        conf.eliminate_zeros()
        lift.eliminate_zeros()
        self.item_ids_, self.counts_, self.n_baskets_ = tuple(vocab), counts, n
        self.confidence_, self.lift_ = self._cap(conf), self._cap(lift, like=conf)
        return self

    def _cap(self, m: sp.csr_matrix, like: sp.csr_matrix | None = None) -> sp.csr_matrix:
        """Keep each row's ``max_rules`` best entries (by ``like``'s values, default ``m``'s)."""
        ref = m if like is None else like
        out = m.tolil()
        for r in range(m.shape[0]):
            lo, hi = ref.indptr[r], ref.indptr[r + 1]
            if hi - lo > self.max_rules:
                drop = ref.indices[lo:hi][np.argsort(-ref.data[lo:hi], kind="stable")[self.max_rules :]]
                out[r, drop] = 0
        res = sp.csr_matrix(out)
        res.eliminate_zeros()
        return res

    def rules_for(self, item_id: str) -> list[tuple[str, float, float]]:
        """Rules ``item_id -> b`` as ``(b, confidence, lift)``, confidence desc then id."""
        check_fitted(self, "confidence_")
        assert self.item_ids_ is not None and self.confidence_ is not None and self.lift_ is not None
        row = {i: n for n, i in enumerate(self.item_ids_)}.get(item_id)
        if row is None:
            return []
        lo, hi = self.confidence_.indptr[row], self.confidence_.indptr[row + 1]
        cols, conf = self.confidence_.indices[lo:hi], self.confidence_.data[lo:hi]
        lift = np.asarray(self.lift_[row, cols].todense()).ravel()
        rules = [(self.item_ids_[c], float(x), float(y)) for c, x, y in zip(cols, conf, lift, strict=True)]
        return sorted(rules, key=lambda r: (-r[1], r[0]))


class ComplementsSource:
    """Complements of the anchors by association-rule confidence (see the module docstring).

    Anchors per surface: pdp → the pdp item and the cart; cart → the cart; otherwise the cart, else
    the last ``n_recent`` recent items (personalized contexts only).
    """

    def __init__(self, rules: AssociationRules, snapshot: CatalogSnapshot, *, name: str = "complements",
                 n_recent: int = 3, exclude_substitutes: bool = True) -> None:
        check_fitted(rules, "confidence_")
        assert rules.item_ids_ is not None
        self.name = name
        self.rules = rules
        self.snapshot = snapshot
        self.n_recent = n_recent
        self.exclude_substitutes = exclude_substitutes
        self._rule_index = {i: n for n, i in enumerate(rules.item_ids_)}
        self._to_snap = snapshot.indices(list(rules.item_ids_))
        leaves: dict[str, int] = {}
        self._leaf = np.array([leaves.setdefault(p[-1].strip().lower(), len(leaves)) if p else -1
                               for p in snapshot.category_paths], dtype=np.int64)

    def with_snapshot(self, snapshot: CatalogSnapshot) -> Self:
        """The same rules over ``snapshot``."""
        return type(self)(self.rules, snapshot, name=self.name, n_recent=self.n_recent,
                          exclude_substitutes=self.exclude_substitutes)

    def anchor_items(self, context: Context) -> list[str]:
        """The anchor item ids of ``context`` (see the class docstring)."""
        pdp = [context.request.item_id] if context.request.item_id else []
        cart = list(context.cart_items)
        if context.surface == "pdp" or pdp:
            return list(dict.fromkeys([*pdp, *cart]))
        if cart or not context.personalize:
            return list(dict.fromkeys(cart))
        return list(dict.fromkeys(reversed(context.recent_items[-self.n_recent :])))

    def _blocked(self, anchors: list[str]) -> Mask:
        """Anchors, their group's variants and (optionally) items in their leaf categories."""
        snap = self.snapshot
        blocked = np.zeros(snap.n, dtype=bool)
        idx = snap.indices(anchors)
        idx = idx[idx >= 0]
        blocked[idx] = True
        groups = snap.group[idx]
        if (groups >= 0).any():
            blocked |= np.isin(snap.group, groups[groups >= 0])
        if self.exclude_substitutes:
            leaves = self._leaf[idx]
            if (leaves >= 0).any():
                blocked |= np.isin(self._leaf, leaves[leaves >= 0])
        return blocked

    def scores(self, anchors: list[str]) -> FloatArray:
        """Per snapshot index, ``1 - prod(1 - confidence(a -> b))`` over the anchors (-inf: no rule)."""
        conf = self.rules.confidence_
        assert conf is not None
        rows = [self._rule_index[a] for a in anchors if a in self._rule_index]
        miss = np.ones(conf.shape[1])
        for r in rows:
            lo, hi = conf.indptr[r], conf.indptr[r + 1]
            miss[conf.indices[lo:hi]] *= 1.0 - conf.data[lo:hi]
        model = 1.0 - miss
        out = np.full(self.snapshot.n, -np.inf)
        known = (self._to_snap >= 0) & (model > 0)
        out[self._to_snap[known]] = model[known]
        return out

    def retrieve(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[list[Candidate]]:
        """For each context, up to ``k`` eligible complements of its anchors."""
        return to_candidate_lists(self.snapshot, self.retrieve_arrays(contexts, masks, k), self.name)

    def retrieve_arrays(self, contexts: Sequence[Context], masks: Sequence[Mask], k: int) -> list[Hit]:
        """:meth:`retrieve` as (snapshot indices, scores) per context."""
        check_masks(contexts, masks, self.snapshot.n, k)
        out: list[Hit] = []
        for ctx, mask in zip(contexts, masks, strict=True):
            anchors = self.anchor_items(ctx)
            if not anchors:
                out.append(no_hit())
                continue
            scores = self.scores(anchors)
            out.append(top_k(scores, mask & ~self._blocked(anchors), k))
        return out
