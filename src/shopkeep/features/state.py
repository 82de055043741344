"""One shopper's or one session's hot state and its compact byte form.

Affinities are stored as values at one reference time ``t`` (epoch ms); the value at time ``u`` is
``v · 2^(−(u − t)/half_life)``. An event at time ``e`` adds ``w · 2^(−(t − e)/half_life)`` (a late
event decays from its own time; a later one adds more than ``w``), and ``t`` moves forward, with
every value rescaled, only once events run far ahead of it — not on every write. The result does
not depend on arrival order (up to float rounding and to the pruning of weak keys).

>>> s = State()
>>> s.add({"cat:tea": 2.0}, 0, 1.0)                # half-life 1 s, event at 0 ms
>>> s.add({"cat:tea": 2.0}, 1000, 1.0)             # one half-life later: 2 · 0.5 + 2
>>> s.settle(1.0, max_keys=10, min_weight=1e-4, latest_ms=1000)
>>> s.t, s.a["cat:tea"], s.affinities_at(1000, 1.0)["cat:tea"]
(0, 6.0, 3.0)
>>> State.decode(s.encode()).a == s.a
True

Each record also keeps the ids of the events folded into it (``e``, a 64-bit digest of each id, the
``cap`` latest by event time), so that a batch retried after a crash is not folded twice:

>>> s.mark(["ev-1", "ev-2"], [0, 1000], cap=2)
>>> s.applied("ev-2", 1000, cap=2), s.applied("ev-3", 2000, cap=2), s.applied("ev-0", -5, cap=2)
(True, False, True)
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson

from shopkeep.errors import StorageError

__all__ = ["State", "decay_factor", "event_digest"]

_FORMAT = 1
# Above this many half-lives ahead of the anchor, 2**x gets near float range: rescale first.
_MAX_AHEAD = 60.0
# settle() moves the reference time only after this many half-lives (values grow up to 2**20).
_REANCHOR = 20.0


def decay_factor(dt_ms: float, half_life_s: float) -> float:
    """``2^(−dt/half_life)`` for ``dt_ms`` milliseconds; never above 1 (a clock behind the state)."""
    if dt_ms <= 0:
        return 1.0
    return float(2.0 ** (-dt_ms / (half_life_s * 1000.0)))


def event_digest(event_id: str) -> str:
    """A 64-bit hex digest of an event id: what ``State.e`` keeps (short, and no raw ids in the state).

    >>> event_digest("ev-1")
    '3350297f6e9c1a5d'
    """
    return blake2b(event_id.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(slots=True)
class State:
    """Mutable working copy of one state record (``sess:``, ``user:`` or ``anon:`` key).

    ``t``: reference epoch ms of ``a`` (at or before the latest event); ``a``: affinity key → value
    at ``t``; ``r``: recent ``[item_id, ms]`` in time order (repeats in a row are merged on read);
    ``c``: cart ``item_id → [in_cart, ms]`` (last event wins, by time); ``p``/``g``: purchased
    item / variant group → last purchase ms; ``s``: session ids seen (long-term records only, for erasure);
    ``e``: ``[ms, digest]`` of the applied events (see :meth:`mark`), in ``(ms, digest)`` order.
    """

    t: int = 0
    a: dict[str, float] = field(default_factory=dict)
    r: list[list[Any]] = field(default_factory=list)
    c: dict[str, list[Any]] = field(default_factory=dict)
    p: dict[str, int] = field(default_factory=dict)
    g: dict[str, int] = field(default_factory=dict)
    s: list[str] = field(default_factory=list)
    e: list[list[Any]] = field(default_factory=list)

    # -- affinities ---------------------------------------------------------------------------

    def _rescale(self, new_t: int, half_life_s: float) -> None:
        if new_t <= self.t:
            return
        factor = decay_factor(new_t - self.t, half_life_s) if self.a else 1.0
        if factor != 1.0:
            self.a = {k: v * factor for k, v in self.a.items()}
        self.t = new_t

    def add(self, deltas: Mapping[str, float], ts_ms: int, half_life_s: float) -> None:
        """Add ``deltas`` (weights at event time ``ts_ms``) to the affinities."""
        if not self.a:
            self.t = max(self.t, ts_ms)
        elif (ts_ms - self.t) / (half_life_s * 1000.0) > _MAX_AHEAD:
            self._rescale(ts_ms, half_life_s)
        scale = float(2.0 ** ((ts_ms - self.t) / (half_life_s * 1000.0)))
        a = self.a
        for key, w in deltas.items():
            a[key] = a.get(key, 0.0) + w * scale

    def settle(self, half_life_s: float, *, max_keys: int, min_weight: float, latest_ms: int) -> None:
        """Bound the state after a batch whose latest event is at ``latest_ms``.

        The reference time stays put (values may then exceed their present size) until the batch
        is more than ``_REANCHOR`` half-lives past it; then values move to ``latest_ms`` and keys
        under ``min_weight`` go. More than 1.5 × ``max_keys`` keys are cut to the ``max_keys``
        strongest (as of ``latest_ms``), so the cut runs once every few events, not on each.
        """
        span = (latest_ms - self.t) / (half_life_s * 1000.0)
        if span > _REANCHOR:
            self._rescale(latest_ms, half_life_s)
            self.a = {k: v for k, v in self.a.items() if abs(v) >= min_weight}
            span = 0.0
        elif not self.a and latest_ms > self.t:
            self.t = latest_ms
        if len(self.a) > max_keys + max_keys // 2:
            floor = min_weight * float(2.0 ** max(span, 0.0))
            top = heapq.nlargest(max_keys, self.a.items(), key=lambda kv: abs(kv[1]))
            self.a = {k: v for k, v in top if abs(v) >= floor}

    def affinities_at(self, now_ms: int, half_life_s: float) -> dict[str, float]:
        """The affinities decayed to ``now_ms``."""
        factor = decay_factor(now_ms - self.t, half_life_s)
        return {k: v * factor for k, v in self.a.items()}

    # -- items, cart, purchases ---------------------------------------------------------------

    def touch(self, item_id: str, ts_ms: int, cap: int) -> None:
        """Record an item interaction at ``ts_ms``; the ``cap`` latest (by time) are kept."""
        r = self.r
        row = [item_id, ts_ms]
        if not r or (r[-1][1], r[-1][0]) <= (ts_ms, item_id):
            r.append(row)  # the common case: events arrive in time order
        else:
            r.insert(bisect.bisect_right([(t, i) for i, t in r], (ts_ms, item_id)), row)
        if len(r) > cap:
            del r[: len(r) - cap]

    def recent_items(self, k: int) -> tuple[str, ...]:
        """The last ``k`` distinct-in-a-row item ids, oldest first (``A A B A`` reads ``A B A``)."""
        out: list[str] = []
        for item_id, _ in self.r:
            if not out or out[-1] != item_id:
                out.append(item_id)
        return tuple(out[-k:])

    def cart(self, item_id: str, in_cart: bool, ts_ms: int, cap: int) -> None:
        """Set an item in or out of the cart at ``ts_ms`` unless a later event already decided it."""
        old = self.c.get(item_id)
        if old is not None and old[1] > ts_ms:
            return
        self.c[item_id] = [in_cart, ts_ms]
        if len(self.c) > cap:
            oldest = sorted(self.c.items(), key=lambda kv: (kv[1][0], kv[1][1]))[: len(self.c) - cap]
            for key, _ in oldest:
                del self.c[key]

    def cart_items(self) -> tuple[str, ...]:
        """Items in the cart, oldest addition first."""
        return tuple(k for k, (inside, _) in sorted(self.c.items(), key=lambda kv: kv[1][1]) if inside)

    def purchase(self, item_id: str, group_id: str | None, ts_ms: int, cap: int) -> None:
        """Record a purchase (keeps the latest time per item and per group)."""
        for book, key in ((self.p, item_id), (self.g, group_id)):
            if key is None:
                continue
            if book.get(key, -1) < ts_ms:
                book[key] = ts_ms
            if len(book) > cap:
                for old, _ in sorted(book.items(), key=lambda kv: kv[1])[: len(book) - cap]:
                    del book[old]

    def add_session(self, session_id: str, cap: int) -> None:
        """Remember a session id of this shopper (most recent last)."""
        if self.s and self.s[-1] == session_id:
            return
        if session_id in self.s:
            self.s.remove(session_id)
        self.s.append(session_id)
        if len(self.s) > cap:
            del self.s[: len(self.s) - cap]

    # -- applied events ---------------------------------------------------------------------------

    def applied(self, event_id: str, ts_ms: int, cap: int) -> bool:
        """Whether an event that may have been folded before was: its digest is in the window, or the
        window is full (``cap``) and the event is older than all of it (it would have been cut)."""
        row = [ts_ms, event_digest(event_id)]
        e = self.e
        if not e:
            return False
        if len(e) >= cap and row < e[0]:
            return True
        i = bisect.bisect_left(e, row)
        return i < len(e) and e[i] == row

    def mark(self, event_ids: Sequence[str], ts_ms: Sequence[int], cap: int) -> None:
        """Record events as folded; the ``cap`` latest by ``(ms, digest)`` are kept (independent of
        arrival order, so every worker and every replay ends with the same window)."""
        e = self.e
        for event_id, ts in zip(event_ids, ts_ms, strict=True):
            row = [ts, event_digest(event_id)]
            i = bisect.bisect_left(e, row)
            if i == len(e) or e[i] != row:
                e.insert(i, row)
        if len(e) > cap:
            del e[: len(e) - cap]

    # -- bytes ----------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Compact JSON bytes (empty parts left out)."""
        doc: dict[str, Any] = {"v": _FORMAT, "t": self.t}
        for name in ("a", "r", "c", "p", "g", "s", "e"):
            value = getattr(self, name)
            if value:
                doc[name] = value
        return orjson.dumps(doc)

    @classmethod
    def decode(cls, raw: bytes) -> State:
        """Parse :meth:`encode` output; StorageError if the bytes are not a state record."""
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict) or doc.get("v") != _FORMAT:
                raise ValueError("unknown format")
            return cls(int(doc["t"]), doc.get("a", {}), doc.get("r", []), doc.get("c", {}), doc.get("p", {}),
                       doc.get("g", {}), doc.get("s", []), doc.get("e", []))
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"online feature state is unreadable: {exc}", {"value": raw[:80]}) from exc
