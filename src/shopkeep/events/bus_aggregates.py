"""Heavier aggregates that ``shopkeep worker`` folds in from the bus, shared by every API worker.

Three aggregates over the events' items, each applied *exactly once per event_id* however often the
bus delivers an event (at-least-once delivery, idempotent apply):

* ``total``: all-time weighted interaction count per item (view 1, click 1, add_to_cart 3, purchase 5);
* ``trend``: the same weights decayed with a half-life (stored as ``w * exp((t - ref) / tau)``, read
  back multiplied by ``exp(-(now - ref) / tau)``, so adding is commutative and needs no rewrite);
* ``co-visitation``: for every two weighted events of one session on different items, +1 to
  ``cov[a][b]`` and ``cov[b][a]`` — counted when the later-*applied* of the two arrives, so the final
  counts do not depend on delivery order (up to ``session_cap`` events per session; later ones count
  for popularity only).

Backends: :class:`RedisAggregates` applies a whole batch in one Lua script (per event ``SET NX`` of an
``applied`` marker, then the increments: a crash never leaves an event half-applied, and a
redelivered event finds its marker); :class:`MemoryAggregates` does the same under a lock for one
process. Markers expire after ``marker_ttl_s`` (7 days): a redelivery later than that would count twice.

>>> agg = MemoryAggregates()
>>> e = [AggEvent("e1", "a", "s1", 1.0, 0), AggEvent("e2", "b", "s1", 3.0, 0), AggEvent("e1", "a", "s1", 1.0, 0)]
>>> agg.apply(e), agg.apply(e), agg.applied_count()
(2, 0, 2)
>>> agg.popular(2, trending=False), agg.neighbors(["a"], 5)
([('b', 3.0), ('a', 1.0)], {'a': [('b', 1.0)]})
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shopkeep.errors import StorageError, ValidationError

if TYPE_CHECKING:
    import redis

__all__ = ["TREND_REF_MS", "AggEvent", "MemoryAggregates", "RedisAggregates", "SharedAggregates", "open_aggregates"]

#: Reference time of the stored trend values (2025-01-01T00:00Z). With the default 72 h half-life the
#: stored values stay finite for about 8 years after it.
TREND_REF_MS = 1_735_689_600_000
_HALF_LIFE_H = 72.0


@dataclass(frozen=True, slots=True)
class AggEvent:
    """What the aggregates need of one event: id, item, session (None: no co-visitation), weight, time."""

    event_id: str
    item_id: str | None
    session_id: str | None
    weight: float
    ts_ms: int


@runtime_checkable
class SharedAggregates(Protocol):
    """Idempotent apply of events and the reads API workers make."""

    def apply(self, events: Sequence[AggEvent]) -> int:
        """Fold in events whose id was never applied; returns how many were new."""

    def popular(self, k: int, *, trending: bool = True, now_ms: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` items with the largest trend (decayed to ``now_ms``) or all-time total."""

    def neighbors(self, item_ids: Sequence[str], k: int) -> dict[str, list[tuple[str, float]]]:
        """Per item, its ``k`` most co-visited other items with their counts."""

    def applied_count(self) -> int:
        """Events applied so far."""

    def close(self) -> None:
        """Release connections."""


def _tau_ms(half_life_h: float) -> float:
    return half_life_h * 3_600_000.0 / math.log(2.0)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError("k", k, "must be an integer >= 1")


def _top(scores: dict[str, float], k: int) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


class MemoryAggregates:
    """:class:`SharedAggregates` in this process (threads share it; other processes do not)."""

    def __init__(self, *, half_life_h: float = _HALF_LIFE_H, session_cap: int = 50) -> None:
        self.half_life_h = half_life_h
        self.session_cap = session_cap
        self._applied: set[str] = set()
        self._total: dict[str, float] = defaultdict(float)
        self._trend: dict[str, float] = defaultdict(float)
        self._cov: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._sessions: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()

    def apply(self, events: Sequence[AggEvent]) -> int:
        """Fold in new events (see the module docstring)."""
        tau = _tau_ms(self.half_life_h)
        new = 0
        with self._lock:
            for e in events:
                if e.event_id in self._applied:
                    continue
                self._applied.add(e.event_id)
                new += 1
                if e.item_id is None or e.weight <= 0:
                    continue
                self._total[e.item_id] += e.weight
                self._trend[e.item_id] += e.weight * math.exp((e.ts_ms - TREND_REF_MS) / tau)
                members = self._sessions[e.session_id] if e.session_id is not None else None
                if members is None or len(members) >= self.session_cap:
                    continue
                for other in members:
                    if other != e.item_id:
                        self._cov[e.item_id][other] += 1.0
                        self._cov[other][e.item_id] += 1.0
                members.append(e.item_id)
        return new

    def popular(self, k: int, *, trending: bool = True, now_ms: int | None = None) -> list[tuple[str, float]]:
        """Top-``k`` items by decayed trend or all-time total."""
        _check_k(k)
        with self._lock:
            if not trending:
                return _top(dict(self._total), k)
            scale = _decay_to(now_ms, self.half_life_h)
            return [(i, v * scale) for i, v in _top(dict(self._trend), k)]

    def neighbors(self, item_ids: Sequence[str], k: int) -> dict[str, list[tuple[str, float]]]:
        """Most co-visited items per item (items never co-visited map to ``[]``)."""
        _check_k(k)
        with self._lock:
            return {i: _top(dict(self._cov.get(i, {})), k) for i in item_ids}

    def applied_count(self) -> int:
        """Distinct event ids applied."""
        with self._lock:
            return len(self._applied)

    def close(self) -> None:
        """Nothing to release."""


def _decay_to(now_ms: int | None, half_life_h: float) -> float:
    import time

    now = int(time.time() * 1000) if now_ms is None else now_ms
    return math.exp(-(now - TREND_REF_MS) / _tau_ms(half_life_h))


# ARGV: prefix, marker ttl, session ttl, session cap, then 5 per event: id, item, session, weight, trend.
_APPLY_LUA = """
local p, mttl, sttl, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local applied = 0
for b = 5, #ARGV, 5 do
  local eid, item, sess, w = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3])
  if redis.call('SET', p .. 'agg:applied:' .. eid, '1', 'NX', 'EX', mttl) then
    applied = applied + 1
    redis.call('INCR', p .. 'agg:n')
    if item ~= '' and w > 0 then
      redis.call('ZINCRBY', p .. 'agg:total', ARGV[b + 3], item)
      redis.call('ZINCRBY', p .. 'agg:trend', ARGV[b + 4], item)
      if sess ~= '' then
        local skey = p .. 'agg:sess:' .. sess
        if redis.call('HLEN', skey) < cap then
          for _, other in ipairs(redis.call('HVALS', skey)) do
            if other ~= item then
              redis.call('ZINCRBY', p .. 'agg:cov:' .. item, 1, other)
              redis.call('ZINCRBY', p .. 'agg:cov:' .. other, 1, item)
            end
          end
          redis.call('HSET', skey, eid, item)
          redis.call('EXPIRE', skey, sttl)
        end
      end
    end
  end
end
return applied
"""


class RedisAggregates:
    """:class:`SharedAggregates` in Redis (``redis://host:port/db[?prefix=P]``, the online state's URI).

    Keys: ``P agg:applied:<event_id>`` markers, ``P agg:n``, sorted sets ``P agg:total``, ``P agg:trend``
    and ``P agg:cov:<item>``, session hashes ``P agg:sess:<session_id>`` (expire after ``session_ttl_s``).
    """

    def __init__(self, url: str, *, prefix: str = "", half_life_h: float = _HALF_LIFE_H, session_cap: int = 50,
                 marker_ttl_s: int = 7 * 86_400, session_ttl_s: int = 86_400, timeout_s: float = 10.0) -> None:
        import redis

        self.prefix, self.half_life_h, self.session_cap = prefix, half_life_h, session_cap
        self.marker_ttl_s, self.session_ttl_s = marker_ttl_s, session_ttl_s
        self._client: redis.Redis = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                                         socket_connect_timeout=timeout_s)
        self._apply = self._client.register_script(_APPLY_LUA)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StorageError(f"redis aggregates: {exc}", {"prefix": self.prefix}) from exc

    def apply(self, events: Sequence[AggEvent]) -> int:
        """One atomic script for the whole batch (see the module docstring)."""
        if not events:
            return 0
        tau = _tau_ms(self.half_life_h)
        args: list[Any] = [self.prefix, self.marker_ttl_s, self.session_ttl_s, self.session_cap]
        for e in events:
            trend = e.weight * math.exp((e.ts_ms - TREND_REF_MS) / tau) if e.weight > 0 else 0.0
            args += [e.event_id, e.item_id or "", e.session_id or "", repr(float(e.weight)), repr(trend)]
        return int(self._call(self._apply, keys=[], args=args))

    def popular(self, k: int, *, trending: bool = True, now_ms: int | None = None) -> list[tuple[str, float]]:
        """ZREVRANGE over the trend or total set."""
        _check_k(k)
        name = self.prefix + ("agg:trend" if trending else "agg:total")
        rows = self._call(self._client.zrevrange, name, 0, k - 1, withscores=True)
        scale = _decay_to(now_ms, self.half_life_h) if trending else 1.0
        return [(_text(m), float(s) * scale) for m, s in rows]

    def neighbors(self, item_ids: Sequence[str], k: int) -> dict[str, list[tuple[str, float]]]:
        """ZREVRANGE of each item's co-visitation set (one pipeline)."""
        _check_k(k)
        pipe = self._client.pipeline(transaction=False)
        for i in item_ids:
            pipe.zrevrange(self.prefix + "agg:cov:" + i, 0, k - 1, withscores=True)
        rows = self._call(pipe.execute) if item_ids else []
        return {i: [(_text(m), float(s)) for m, s in r] for i, r in zip(item_ids, rows, strict=True)}

    def applied_count(self) -> int:
        """The ``agg:n`` counter."""
        return int(self._call(self._client.get, self.prefix + "agg:n") or 0)

    def close(self) -> None:
        """Close the connection pool; the aggregates stay."""
        self._call(self._client.close)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_MEMORY: dict[str, MemoryAggregates] = {}


def open_aggregates(online_uri: str) -> SharedAggregates:
    """Aggregates beside the online state at ``online_uri``: Redis for ``redis://`` (``?prefix=`` kept),
    else one :class:`MemoryAggregates` per process and URI."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    if online_uri.startswith(("redis://", "rediss://", "unix://")):
        parts = urlsplit(online_uri)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for key, v in pairs if key == "prefix"), "")
        url = urlunsplit(parts._replace(query=urlencode([(key, v) for key, v in pairs if key != "prefix"])))
        return RedisAggregates(url, prefix=prefix)
    return _MEMORY.setdefault(online_uri, MemoryAggregates())
