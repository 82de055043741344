"""Exploration of served slates: the policy's slate mixed with a random one, with exact propensities.

Runs after the policy stage. The pool of a request is the policy's slate (minus pinned items, which
keep their positions with propensity 1), then the next ``pool_extra`` items of the ranked list that
pass the request's hard eligibility mask, then up to ``max_new_items`` eligible new items (created
within ``new_item_days``; those the ranker found first, then the newest). :class:`SlatePolicy`
(explore.slates) serves the policy's order with probability ``1 - eps`` and a uniformly random
ordered choice from the pool otherwise, so every explored position's propensity lies in (0, 1);
``eps`` rises for requests with new items so they get ``new_item_share`` of the slots.

Every item of the pool passed the item-level hard rules (exclusions, regulated, inventory,
purchases, MAP hiding, avoids). Position-level shaping (diversity caps, novelty order, boosts'
order) holds on the exploit branch only.

Randomness is seeded per request by :func:`seed_key`: the request's fields and a digest of the
session state it read (recent items, cart, purchases), never the clock — a replayed request on the
same state reproduces its slate, and the next event re-draws.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.config import ExploreConfig
from shopkeep.explore.slates import SlatePolicy
from shopkeep.features.context import Context
from shopkeep.pipeline.policy_stage import Chosen
from shopkeep.ranking import ScoredItem

__all__ = ["Explored", "SlateExplorer", "seed_key"]

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class Explored:
    """The served order, each position's propensity, and what the explorer did (for the trace and log)."""

    items: tuple[Chosen, ...]
    propensities: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)


def seed_key(ctx: Context) -> str:
    """The per-request seed: the request's fields and the state digest (see the module docstring)."""
    r = ctx.request
    parts = [r.surface, ctx.user_id, ctx.anonymous_id, ctx.session_id, r.item_id, list(r.cart_item_ids), ctx.store,
             ctx.region, r.k, list(ctx.recent_items), list(ctx.cart_items), sorted(ctx.purchased.items())]
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=12).hexdigest()


class SlateExplorer:
    """Applies the exploration policy of ``config`` (see the module docstring)."""

    def __init__(self, config: ExploreConfig) -> None:
        self.config = config
        self.surfaces = frozenset(s.strip() for s in config.surfaces.split(",") if s.strip())
        self._newest: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    def _fresh(self, snapshot: CatalogSnapshot, now_ms: int) -> npt.NDArray[np.int64]:
        """Indices of items created less than ``new_item_days`` before ``now_ms``, newest first.

        The age order is cached per snapshot, so a request costs a binary search, not a catalog scan.
        """
        if self._newest is None or self._newest[0] != id(snapshot):
            known = np.flatnonzero(snapshot.created_ms >= 0)
            order = known[np.argsort(-snapshot.created_ms[known], kind="stable")]
            self._newest = (id(snapshot), order, -snapshot.created_ms[order])  # ascending negated times
        _, order, neg_created = self._newest
        # now - created < window  <=>  -created < window - now
        # for integer times x < y <=> x < ceil(y): searching an int keeps numpy from converting the whole
        # array to float for a fractional ``new_item_days`` (a catalog-sized pass per request)
        bound = math.ceil(self.config.new_item_days * _DAY_MS - now_ms)
        cut = int(np.searchsorted(neg_created, bound, side="left"))
        return order[:cut]

    def _new_items(self, ctx: Context, snapshot: CatalogSnapshot, mask: npt.NDArray[np.bool_],
                   ranked: Sequence[ScoredItem], taken: set[str]) -> list[str]:
        cfg = self.config
        fresh = self._fresh(snapshot, ctx.now_ms)
        fresh = fresh[mask[fresh]]
        if not fresh.size or cfg.max_new_items <= 0:
            return []
        ids, want = snapshot.item_ids, cfg.max_new_items
        is_fresh = np.zeros(snapshot.n, dtype=np.bool_)
        is_fresh[fresh] = True
        order = getattr(ranked, "indices", None)  # RankedArrays: no per-item objects
        if order is None:
            order = snapshot.indices([s.item_id for s in ranked])
        order = np.asarray(order, dtype=np.int64)
        # the fresh ranked items in ranked order, then the other fresh ones newest first, until ``want``
        out: dict[str, None] = {}
        for part in (order[(order >= 0) & is_fresh[np.maximum(order, 0)]], fresh):
            for i in part.tolist():
                if len(out) >= want:
                    return list(out)
                if ids[i] not in taken:
                    out[ids[i]] = None
        return list(out)

    def _reserve(self, ranked: Sequence[ScoredItem], snapshot: CatalogSnapshot, mask: npt.NDArray[np.bool_],
                 taken: set[str]) -> list[ScoredItem]:
        order = getattr(ranked, "indices", None)  # RankedArrays: build objects only for the picks
        if order is None:
            order = snapshot.indices([s.item_id for s in ranked])
        ids, want = snapshot.item_ids, self.config.pool_extra
        picks: list[int] = []
        for j, i in enumerate(order.tolist()):
            if len(picks) >= want:
                break
            if i >= 0 and mask[i] and ids[i] not in taken:
                picks.append(j)
        return [ranked[j] for j in picks]

    def explore(self, ctx: Context, chosen: Sequence[Chosen], ranked: Sequence[ScoredItem],
                mask: npt.NDArray[np.bool_], snapshot: CatalogSnapshot) -> Explored:
        """The served slate for ``ctx`` from the policy's ``chosen`` (at most k items)."""
        chosen = list(chosen[: ctx.request.k])
        if not self.config.enabled or ctx.surface not in self.surfaces or not chosen:
            return Explored(tuple(chosen), (1.0,) * len(chosen), {"explore": False})
        pinned = {j for j, ch in enumerate(chosen) if any(r.startswith("pin:") for r in ch.reasons)}
        free = [ch for j, ch in enumerate(chosen) if j not in pinned]
        taken = {ch.item_id for ch in chosen} | set(ctx.cart_items)
        if ctx.request.item_id:
            taken.add(ctx.request.item_id)
        reserve = self._reserve(ranked, snapshot, mask, taken)
        new = self._new_items(ctx, snapshot, mask, ranked, taken | {s.item_id for s in reserve})
        extra = {s.item_id: self._chosen(s, snapshot, "explore:reserve") for s in reserve}
        extra.update({i: self._chosen(ScoredItem(i, 0.0), snapshot, "explore:new_item") for i in new})
        key = seed_key(ctx)
        if len(free) + len(extra) < 2:
            return Explored(tuple(chosen), (1.0,) * len(chosen), {"explore": True, "seed_key": key, "pool": 1})
        by_id = {ch.item_id: ch for ch in free} | extra
        pool_ranked = [ch.item_id for ch in free] + [s.item_id for s in reserve]
        cfg = self.config
        policy = SlatePolicy(cfg.epsilon, pool_size=max(2, len(pool_ranked)), new_item_share=cfg.new_item_share,
                             max_epsilon=cfg.max_epsilon, seed=cfg.seed)
        got = policy.sample([pool_ranked], len(free), request_ids=[key], new_items=[new])[0] if free else None
        out, props = list(chosen), [1.0] * len(chosen)
        slots = [j for j in range(len(chosen)) if j not in pinned]
        if got is not None:
            for j, item, p in zip(slots, got.items, got.propensities, strict=True):
                out[j] = by_id[item]
                props[j] = round(p, 9)
        info = {"explore": True, "seed_key": key, "explored": bool(got and got.explored),
                "epsilon": round(got.epsilon, 6) if got else 0.0, "pool": got.n_pool if got else 0,
                "new_items": new, "pinned": sorted(pinned)}
        return Explored(tuple(out), tuple(props), info)

    @staticmethod
    def _chosen(s: ScoredItem, snapshot: CatalogSnapshot, reason: str) -> Chosen:
        i = snapshot.index[s.item_id]
        price, floor = int(snapshot.price_minor[i]), int(snapshot.map_minor[i])
        sources = dict(s.sources)
        reasons = (*(f"source:{n}" for n in sorted(sources)), reason)
        return Chosen(s.item_id, s.score, sources, reasons, None if price < 0 else max(price, floor))
