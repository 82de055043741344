"""Session simulation: shoppers browse, search, add to cart, buy and return, following their tastes.

Each shopper's sessions follow a mission (replenish, explore, gift). Within a session the next view
follows the catalog's structure: other variants of the same product, complements (a cleanser then a
toner), other items of the same type, or a fresh search. Cart and purchase decisions are drawn from
:func:`~shopkeep.simulate.shoppers.response_probabilities`, the ground truth the store exposes.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from shopkeep.simulate import taxonomy as tx
from shopkeep.simulate.catalog import CatalogArrays
from shopkeep.simulate.fit import FIT_NOISE_SD, RETURN_IF_MISFIT, TOLERANCE, fit_error_mean
from shopkeep.simulate.items import item_id
from shopkeep.simulate.search import Intent, make_intent
from shopkeep.simulate.shoppers import Shopper, price_terms, response_probabilities, session_count
from shopkeep.types import Event, EventContext, EventType, Money, ReturnReason

__all__ = ["SessionSimulator"]

_HOURS = (1, 0.5, 0.3, 0.3, 0.4, 0.8, 1.5, 2.5, 3, 3, 3, 3.5, 4, 3.5, 3, 3, 3.5, 4, 5, 6, 6.5, 5.5, 4, 2)
_GIFT_TYPES = ("eau_de_parfum", "body_lotion", "bath_bomb", "sweater", "hand_cream", "coffee", "lipstick")
_LIST_SIZE = 6
_CANDIDATES = 256
_P_STOP = 0.27
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class _Session:
    sid: str
    anon: str
    uid: str | None
    ctx: EventContext
    t: int
    cart: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _Pool:
    start: int
    weights: np.ndarray
    cum: np.ndarray
    p_cart: np.ndarray
    p_buy: np.ndarray


class SessionSimulator:
    """Simulate every shopper's sessions over ``n_days`` from ``start_ms``; ``run()`` returns the events."""

    def __init__(self, cat: CatalogArrays, shoppers: list[Shopper], *, n_days: int, start_ms: int, seed: int,
                 late_rate: float) -> None:
        self.cat, self.shoppers, self.n_days, self.start_ms = cat, shoppers, n_days, start_ms
        self.late_rate = late_rate
        self.r = random.Random(seed * 7919 + 17)
        self.nr = np.random.default_rng(seed + 1)
        bounds = np.flatnonzero(np.r_[True, cat.type_idx[1:] != cat.type_idx[:-1], True])
        self.type_range = {int(cat.type_idx[b]): (int(b), int(e)) for b, e in itertools.pairwise(bounds)}
        gb = np.flatnonzero(np.r_[True, cat.group[1:] != cat.group[:-1], True])
        self.group_start, self.group_end = gb[:-1], gb[1:]
        self.enabled_types = np.array(sorted(self.type_range))
        self.by_key = {tx.TYPES[t].key: t for t in self.type_range}
        # Candidates a category page or search shows: the most popular items of each type (local rows).
        self.top = {t: np.argsort(-cat.pop[lo:hi], kind="stable")[:_CANDIDATES] for t, (lo, hi) in
                    self.type_range.items()}
        self.records: list[tuple[Any, ...]] = []
        self.purchases: list[tuple[Shopper, int, int, str, str | None, str, int]] = []
        self.counters = {"seq": 0, "session": 0, "trace": 0, "order": 0}
        self.pools: dict[int, _Pool] = {}
        self.sess = _Session("", "", None, EventContext(), 0)

    # ---- bookkeeping -------------------------------------------------------------------------
    def _next_id(self, name: str) -> int:
        self.counters[name] += 1
        return self.counters[name]

    def _emit(self, etype: EventType, **extra: Any) -> None:
        s = self.sess
        self.records.append((s.t, self._next_id("seq"), etype, s.sid, s.anon, s.uid, s.ctx, extra))

    def _tick(self, median_s: float, sigma: float = 0.7) -> int:
        ms = int(1000 * median_s * math.exp(self.r.gauss(0.0, sigma)))
        self.sess.t += ms
        return ms

    def _pool(self, s: Shopper, t: int) -> _Pool:
        pool = self.pools.get(t)
        if pool is None:
            lo, hi = self.type_range[t]
            idx = np.arange(lo, hi)
            price = self.cat.price[idx].astype(float)
            p_cart, p_buy = response_probabilities(s, self.cat, idx, price)
            w = self.cat.pop[idx] * np.exp(1.2 * np.log(p_cart) - 0.3 * price_terms(s, self.cat, idx, price))
            pool = _Pool(lo, w, np.cumsum(w), p_cart, p_buy)
            self.pools[t] = pool
        return pool

    def _draw(self, cum: np.ndarray) -> int:
        return int(np.searchsorted(cum, self.r.random() * float(cum[-1]), side="right"))

    def _own_size(self, s: Shopper, i: int) -> int:
        """Map a product to the variant in the shopper's size (or the nearest one)."""
        spec = tx.TYPES[int(self.cat.type_idx[i])]
        if spec.variant not in ("apparel_size", "shoe_size"):
            return i
        g = int(self.cat.group[i])
        lo, hi = int(self.group_start[g]), int(self.group_end[g])
        want = tx.APPAREL_SIZES.index(s.apparel_size) if spec.variant == "apparel_size" else s.shoe_size
        sizes = self.cat.attrs["size"][lo:hi]
        return lo + int(np.argmin(np.abs(sizes - want)))

    # ---- one session -------------------------------------------------------------------------
    def _type_from_taste(self, s: Shopper) -> int:
        w = s.type_weights[self.enabled_types]
        return int(self.enabled_types[self._draw(np.cumsum(w))])

    def _show(self, s: Shopper, t: int, mask: np.ndarray | None) -> tuple[int, int, str] | None:
        """Show a list of items of type ``t`` (impressions); return the clicked (item, position, trace)."""
        pool = self._pool(s, t)
        cand = self.top[t]
        if mask is not None:
            cand = cand[mask[cand]]
            if cand.shape[0] < _LIST_SIZE:
                cand = np.flatnonzero(mask)
        k = min(_LIST_SIZE, cand.shape[0])
        if k == 0:
            return None
        # The store's own ranking: popularity with noise (not personalized), best first.
        engine = self.cat.pop[pool.start + cand] * self.nr.lognormal(0.0, 0.6, size=cand.shape[0])
        part = np.argpartition(-engine, k - 1)[:k]
        order = cand[part[np.argsort(-engine[part], kind="stable")]]
        trace = f"tr-{self._next_id('trace'):08d}"
        for pos, local in enumerate(order.tolist()):
            self._emit(EventType.IMPRESSION, item_id=item_id(pool.start + local), position=pos, trace_id=trace)
        self._tick(4.0)
        w = pool.weights[order] / (1.0 + np.arange(order.shape[0])) ** 0.6
        if self.r.random() < 0.12:
            return None
        pick = self._draw(np.cumsum(w))
        return self._own_size(s, pool.start + int(order[pick])), pick, trace

    def _search(self, s: Shopper, t: int) -> tuple[int, int, str] | None:
        intent: Intent = make_intent(self.r, s, self.cat, t, self._pool(s, t).start, self.type_range[t][1])
        self._emit(EventType.SEARCH, query=intent.query)
        self._tick(3.0)
        for attr, value in intent.filters:
            self._emit(EventType.FILTER, attribute=attr, value=value)
            self._tick(2.0)
        return self._show(s, t, intent.mask)

    def _view(self, s: Shopper, i: int, position: int | None, trace: str | None) -> None:
        self._emit(EventType.VIEW, item_id=item_id(i), position=position, trace_id=trace)
        t = int(self.cat.type_idx[i])
        pool = self._pool(s, t)
        local = i - pool.start
        if self.r.random() < float(pool.p_cart[local]):
            dwell = self._tick(45.0, 0.6)
            qty = self.r.choice((1, 1, 2, 3)) if tx.TYPES[t].department == "grocery" else 1
            self._emit(EventType.ADD_TO_CART, item_id=item_id(i), quantity=qty,
                       price=Money(int(self.cat.price[i]), "USD"), dwell_ms=dwell)
            self.sess.cart.append((i, qty))
            self._tick(5.0)
            return
        dwell = self._tick(20.0, 0.8)
        if self.r.random() < 0.6:
            self._emit(EventType.DWELL, item_id=item_id(i), dwell_ms=dwell)
        if self.r.random() < 0.01:
            self._emit(EventType.WISHLIST, item_id=item_id(i))
        self._tick(3.0)

    def _next(self, s: Shopper, i: int) -> tuple[int, int | None, str | None] | None:
        t = int(self.cat.type_idx[i])
        spec = tx.TYPES[t]
        g = int(self.cat.group[i])
        lo, hi = int(self.group_start[g]), int(self.group_end[g])
        u = self.r.random()
        if spec.variant in ("shade", "volume") and hi - lo > 1 and u < 0.3:
            j = lo + self.r.randrange(hi - lo - 1)
            return (j if j < i else j + 1), None, None
        comps = [self.by_key[c] for c in spec.complements if c in self.by_key]
        if comps and u < 0.55:
            return self._complement(s, i, self.r.choice(comps)), None, None
        if u < 0.82:
            pool = self._pool(s, t)
            j = pool.start + self._draw(pool.cum)
            return self._own_size(s, j), None, None
        shown = self._search(s, self._type_from_taste(s)) if u < 0.92 else self._show(s, self._type_from_taste(s),
                                                                                      None)
        return None if shown is None else (shown[0], shown[1], shown[2])

    def _complement(self, s: Shopper, i: int, ct: int) -> int:
        pool = self._pool(s, ct)
        if self.r.random() < 0.6:
            brands = self.cat.brand[pool.start: pool.start + pool.weights.shape[0]]
            w = np.where(brands == self.cat.brand[i], pool.weights, 0.0)
            if w.sum() > 0:
                return self._own_size(s, pool.start + self._draw(np.cumsum(w)))
        return self._own_size(s, pool.start + self._draw(pool.cum))

    def _entry(self, s: Shopper, history: list[int]) -> tuple[int, int | None, str | None] | None:
        u = self.r.random()
        if history and u < s.replenish * 0.7:
            return self.r.choice(history), None, None
        if u > 0.93:
            gifts = [self.by_key[k] for k in _GIFT_TYPES if k in self.by_key]
            return self._show(s, self.r.choice(gifts), None)
        t = self._type_from_taste(s)
        return self._search(s, t) if self.r.random() < 0.45 else self._show(s, t, None)

    def _checkout(self, s: Shopper) -> None:
        sess = self.sess
        bought: list[tuple[int, int]] = []
        kept: list[tuple[int, int]] = []
        for i, qty in sess.cart:
            pool = self._pool(s, int(self.cat.type_idx[i]))
            (bought if self.r.random() < float(pool.p_buy[i - pool.start]) else kept).append((i, qty))
        if bought:
            if s.user_id and sess.uid is None and self.r.random() < 0.85:
                sess.uid = s.user_id
                self._emit(EventType.LOGIN)
                self._tick(6.0)
            self._emit(EventType.CHECKOUT_STARTED)
            self._tick(40.0, 0.5)
            order = f"ord-{self._next_id('order'):07d}"
            for i, qty in bought:
                self._emit(EventType.PURCHASE, item_id=item_id(i), order_id=order, quantity=qty,
                           price=Money(int(self.cat.price[i]), "USD"))
                self.purchases.append((s, i, sess.t, order, sess.uid, sess.anon, qty))
        elif sess.cart and self.r.random() < 0.25:
            self._emit(EventType.CHECKOUT_STARTED)
        for i, _ in kept:
            if self.r.random() < 0.3:
                self._tick(4.0)
                self._emit(EventType.REMOVE_FROM_CART, item_id=item_id(i))

    def _session(self, s: Shopper, t0: int, history: list[int]) -> int:
        r = self.r
        dev = r.randrange(len(s.anonymous_ids))
        uid = s.user_id if s.user_id and r.random() < 0.55 else None
        mobile = s.devices[dev] == "mobile"
        ctx = EventContext(device=s.devices[dev], channel="app" if mobile and r.random() < 0.5 else "web",
                           referrer=r.choices(("direct", "google", "email", "instagram"), (5, 3, 1, 1))[0],
                           geo=s.region)
        self.sess = _Session(f"sess-{self._next_id('session'):07d}", s.anonymous_ids[dev], uid, ctx, t0)
        if s.user_id and uid is None and r.random() < 0.1:
            self.sess.uid = s.user_id
            self._emit(EventType.LOGIN)
            self._tick(5.0)
        step = self._entry(s, history)
        for _ in range(30):
            if step is None:
                break
            self._view(s, step[0], step[1], step[2])
            if r.random() < _P_STOP:
                break
            step = self._next(s, step[0])
        self._checkout(s)
        return self.sess.t

    def _shopper(self, s: Shopper) -> None:
        self.pools = {}
        n = session_count(self.r, s, self.n_days)
        days = sorted(self.r.random() * self.n_days for _ in range(n))
        last_end, history = -(10**15), list[int]()
        for d in days:
            hour = self.r.choices(range(24), _HOURS)[0]
            t0 = self.start_ms + math.floor(d) * 86_400_000 + hour * 3_600_000 + self.r.randrange(3_600_000)
            t0 = max(t0, last_end + 31 * 60_000)
            before = len(self.purchases)
            last_end = self._session(s, t0, history)
            history += [i for _, i, *_ in self.purchases[before:]
                        if tx.TYPES[int(self.cat.type_idx[i])].department in ("beauty", "grocery")]

    # ---- returns and output --------------------------------------------------------------------
    def _return_reason(self, s: Shopper, i: int) -> ReturnReason | None:
        spec = tx.TYPES[int(self.cat.type_idx[i])]
        r = self.r
        if spec.variant in ("apparel_size", "shoe_size"):
            # the ground truth of shopkeep.simulate.fit (same draws as before it was factored out)
            err = fit_error_mean(s, self.cat, i) + r.gauss(0.0, FIT_NOISE_SD)
            if abs(err) > TOLERANCE and r.random() < RETURN_IF_MISFIT:
                return ReturnReason.TOO_SMALL if err < 0 else ReturnReason.TOO_LARGE
            base, reasons = 0.06, [ReturnReason.CHANGED_MIND, ReturnReason.NOT_AS_DESCRIBED]
        elif spec.department == "beauty":
            base, reasons = 0.03, [ReturnReason.CHANGED_MIND, ReturnReason.DAMAGED, ReturnReason.NOT_AS_DESCRIBED]
        else:
            base, reasons = 0.01, [ReturnReason.DAMAGED]
        return r.choice(reasons) if r.random() < base else None

    def _returns(self) -> None:
        for s, i, t, order, uid, anon, qty in self.purchases:
            reason = self._return_reason(s, i)
            if reason is None:
                continue
            self.sess = _Session("", anon, uid or s.user_id, EventContext(geo=s.region),
                                 t + int(self.r.uniform(3, 21) * 86_400_000))
            self.records.append((self.sess.t, self._next_id("seq"), EventType.RETURN, None, anon,
                                 uid or s.user_id, self.sess.ctx,
                                 {"item_id": item_id(i), "order_id": order, "reason": reason, "quantity": qty,
                                  "price": Money(int(self.cat.price[i]), "USD")}))

    def run(self) -> tuple[list[Event], np.ndarray]:
        """Simulate everyone; return the time-ordered events and each event's arrival time (epoch ms)."""
        for s in self.shoppers:
            self._shopper(s)
        self._returns()
        self.records.sort(key=lambda rec: (rec[0], rec[1]))
        events = []
        for k, (t, _, etype, sid, anon, uid, ctx, extra) in enumerate(self.records):
            ts = _EPOCH + timedelta(milliseconds=t)
            events.append(Event(f"ev-{k:09d}", etype, ts, anonymous_id=anon, user_id=uid, session_id=sid,
                                context=ctx, **{key: v for key, v in extra.items() if v is not None}))
        times = np.array([rec[0] for rec in self.records], dtype=np.int64)
        late = self.nr.random(times.shape[0]) < self.late_rate
        delay = np.where(late, self.nr.uniform(3_600_000, 36 * 3_600_000, size=times.shape[0]),
                         self.nr.uniform(0, 2_000, size=times.shape[0]))
        return events, times + delay.astype(np.int64)
