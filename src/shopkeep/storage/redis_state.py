"""The Redis :class:`~shopkeep.storage.base.OnlineState` (``redis://host:port/db[?prefix=P]``).

Every key is stored as ``prefix + key``, so deployments and tests can share one database. Reads use
MGET, writes a MULTI pipeline (SET with EX), counters a Lua script that first checks every current
value is a number and only then runs INCRBYFLOAT on each key: all counters change, or none. Compare
and set (:meth:`RedisOnlineState.swap_many`) is a Lua script too: it compares the SHA-1 of each key's
current value with the SHA-1 of the expected one (so the expected bytes are not sent again) and
writes the keys that match, all in one atomic step.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from shopkeep.errors import StorageError, ValidationError
from shopkeep.storage._common import (
    check_deltas,
    check_keys,
    check_swap,
    check_text,
    check_values,
    parse_number,
    redact,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisOnlineState"]

# Pass 1 validates (nothing written yet), pass 2 increments; a script runs atomically in Redis.
_INCR_LUA = """
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v and (not tonumber(v) or string.find(v, '[^0-9eE%.%+%-]')) then
    return redis.error_reply('NOT_A_NUMBER ' .. i)
  end
end
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('INCRBYFLOAT', key, ARGV[i])
end
return out
"""


# ARGV: ttl (0 = none), then n expected SHA-1 hex digests ('' = absent), then n new values.
_SWAP_LUA = """
local n = #KEYS
local ttl = tonumber(ARGV[1])
local lost = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  local want = ARGV[1 + i]
  local same
  if want == '' then same = (cur == false) else same = (cur ~= false and redis.sha1hex(cur) == want) end
  if same then
    if ttl > 0 then redis.call('SET', key, ARGV[1 + n + i], 'EX', ttl)
    else redis.call('SET', key, ARGV[1 + n + i]) end
  else
    lost[#lost + 1] = i
  end
end
return lost
"""


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


class RedisOnlineState:
    """An :class:`~shopkeep.storage.base.OnlineState` in Redis; ``prefix`` namespaces every key."""

    def __init__(self, url: str, *, prefix: str = "", uri: str | None = None, timeout_s: float = 5.0) -> None:
        import redis

        if prefix:
            check_text("prefix", prefix, max_len=128)
        self.url = url
        self.prefix = prefix
        self.uri = uri if uri is not None else url
        self._client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        with self._guard():
            self._client.ping()
        self._incr = self._client.register_script(_INCR_LUA)
        self._swap = self._client.register_script(_SWAP_LUA)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn driver failures into StorageError."""
        import redis

        try:
            yield
        except redis.RedisError as exc:
            raise StorageError(f"redis {redact(self.uri)}: {exc}", {"uri": redact(self.uri)}) from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Values of the keys that exist."""
        wanted = check_keys("keys", keys)
        if not wanted:
            return {}
        with self._guard():
            values = self._client.mget([self.prefix + key for key in wanted])
        return {key: _as_bytes(value) for key, value in zip(wanted, values, strict=True) if value is not None}

    def set_many(self, values: Mapping[str, bytes], *, ttl_s: int | None = None) -> None:
        """Write values, optionally expiring after ``ttl_s`` seconds."""
        check_values(values, ttl_s)
        if not values:
            return
        with self._guard():
            pipe = self._client.pipeline(transaction=True)
            for key, value in values.items():
                pipe.set(self.prefix + key, value, ex=ttl_s)
            pipe.execute()

    def incr_many(self, deltas: Mapping[str, float]) -> dict[str, float]:
        """Atomically add to numeric counters (missing = 0); returns the new values.

        A key that holds a non-number raises ValidationError and no counter changes. An existing TTL
        is kept.
        """
        import redis

        check_deltas(deltas)
        keys = list(deltas)
        if not keys:
            return {}
        try:
            with self._guard():
                out = self._incr(keys=[self.prefix + key for key in keys], args=[repr(float(deltas[k])) for k in keys])
        except StorageError as exc:
            cause = exc.__cause__
            found = re.search(r"NOT_A_NUMBER (\d+)", str(cause)) if isinstance(cause, redis.ResponseError) else None
            if found:
                key = keys[int(found.group(1)) - 1]
                shown = self.get_many([key]).get(key)
                raise ValidationError(key, shown, "holds a value that is not a number") from None
            raise
        return {key: parse_number(key, _as_bytes(raw)) for key, raw in zip(keys, out, strict=True)}

    def swap_many(self, expected: Mapping[str, bytes | None], values: Mapping[str, bytes], *,
                  ttl_s: int | None = None) -> list[str]:
        """Compare and set, atomically: write ``values[key]`` where the key still holds ``expected[key]``
        (None: absent); returns the keys that did not match, which keep their value."""
        check_swap(expected, values, ttl_s)
        keys = list(values)
        if not keys:
            return []
        wants = ["" if expected[k] is None else hashlib.sha1(expected[k] or b"").hexdigest() for k in keys]
        with self._guard():
            lost = self._swap(keys=[self.prefix + key for key in keys],
                              args=[ttl_s or 0, *wants, *(values[k] for k in keys)])
        return [keys[int(i) - 1] for i in lost]

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete keys; returns how many existed."""
        wanted = check_keys("keys", keys)
        if not wanted:
            return 0
        with self._guard():
            return int(self._client.delete(*[self.prefix + key for key in wanted]))

    def close(self) -> None:
        """Close the connection pool; the values stay in Redis."""
        with self._guard():
            self._client.close()
