"""API keys with scopes, stored hashed; the route -> scope table; per-key token-bucket rate limits; CORS.

Keys come from ``serving.api_keys`` (comma-separated entries) and ``serving.api_keys_file`` (one entry a
line, ``#`` comments). An entry is ``HASH:scope+scope`` where ``HASH`` is ``sha256:<salt>:<hex>``
(``hex`` = SHA-256 of salt + key; ``shopkeep keys create`` prints one) or the older unsalted
``sha256-<hex>``. A plaintext ``KEY:scope`` entry is refused unless ``serving.allow_plaintext_keys`` is on
(the loopback dev demo turns it on; its keys are throwaway). Keys are long random strings
(``sk_`` + 32 random bytes), so one SHA-256 is enough; a password hash would only slow every request.
``admin`` implies every other scope. Clients send ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.

>>> entry = hash_key("s3cret", salt="00ff")
>>> entry[:12], len(entry)
('sha256:00ff:', 76)
>>> keys = ApiKeys.parse(entry + ":read+ingest")
>>> sorted(keys.scopes_of("s3cret") or ()), keys.scopes_of("nope")
(['ingest', 'read'], None)
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shopkeep.errors import ConfigError

__all__ = [
    "ADMIN_OR_SHOPPER",
    "PUBLIC",
    "ROUTE_SCOPES",
    "SCOPES",
    "SHOPPER",
    "SIGNED",
    "ApiKeys",
    "KeyEntry",
    "MemoryBuckets",
    "RateLimiter",
    "RedisBuckets",
    "cors_origins",
    "digest",
    "hash_entries",
    "hash_key",
    "install_access_control",
    "key_from_headers",
    "new_key",
    "open_rate_limiter",
]

#: Every scope a key can carry (one per route family; ``admin`` implies all).
SCOPES = ("ingest", "read", "search", "concierge", "offers", "audit", "experiments", "privacy", "onboarding",
          "transparency", "admin")

#: Route guards that are not key scopes.
PUBLIC, SIGNED, SHOPPER, ADMIN_OR_SHOPPER = "public", "signed", "shopper_token", "admin_or_shopper_token"

#: The declared guard of every HTTP route, ``"METHOD /path"`` -> scope (or one of the guards above).
#: tests/serving/test_auth_routes.py walks every route of the OpenAPI schema with every scope and fails
#: for a route missing here: a new route must be declared (and guarded with ``require_scope``) to ship.
ROUTE_SCOPES: dict[str, str] = {
    "GET /healthz": PUBLIC,
    "GET /metrics": "read",
    "POST /v1/events": "ingest",
    "GET /v1/recommendations": "read",
    "GET /v1/items/{item_id}": "read",
    "PUT /v1/items/{item_id}": "admin",
    "GET /v1/policies": "read",
    "PUT /v1/policies": "admin",
    "GET /v1/web/catalog": "read",
    "GET /v1/web/facets": "read",
    "GET /v1/web/personas": "read",
    "GET /v1/web/whatif": "read",
    "GET /v1/web/metrics": "read",
    "POST /v1/search": "search",
    "POST /v1/search/similar": "search",
    "POST /v1/concierge/messages": "concierge",
    "POST /v1/offers/decide": "offers",
    "POST /v1/offers/whatif": "offers",
    "GET /v1/audit/decisions": "audit",
    "GET /v1/audit/decisions/{decision_id}": "audit",
    "GET /v1/catalog/audit": "admin",
    "GET /v1/catalog/proposals": "admin",
    "POST /v1/catalog/proposals/approve": "admin",
    "GET /v1/products/{item_id}/jsonld": "read",
    "GET /v1/feed/products.jsonl": "read",
    "GET /v1/agents/products/{item_id}": "read",
    "GET /v1/agents/availability/{item_id}": "read",
    "GET /v1/agents/policy": "read",
    "POST /v1/agents/offer-eligibility": "read",
    "GET /v1/agents/explanations/{trace_id}": "read",
    "POST /v1/agents/grants": ADMIN_OR_SHOPPER,
    "GET /v1/agents/me/context": SHOPPER,
    "GET /v1/experiments/{experiment_id}/report": "experiments",
    "GET /v1/users/{user_id}": "privacy",
    "DELETE /v1/users/{user_id}": "privacy",
    "POST /v1/webhooks/events": SIGNED,
    "GET /v1/transparency/settings/{user_id}": "transparency",
    "PUT /v1/transparency/settings/{user_id}": "ingest",
    "GET /v1/transparency/disclosures": PUBLIC,  # static text about automation, for anyone
    "GET /v1/transparency/recommendations": "transparency",
    "POST /v1/transparency/search": "transparency",
    "GET /v1/transparency/offers/{decision_id}": "transparency",
    "GET /v1/operators/proposals": "admin",
    "GET /v1/operators/proposals/{proposal_id}": "admin",
    "POST /v1/operators/proposals/{proposal_id}/approve": "admin",
    "POST /v1/operators/proposals/{proposal_id}/reject": "admin",
    "POST /v1/operators/run": "admin",
    "POST /v1/onboarding/next": "read",
    "POST /v1/onboarding/answers": "ingest",
}

_KEY = "serving.api_keys"


def digest(key: str) -> str:
    """Hex SHA-256 of a key (unsalted; used for the key cache and shopper grant tokens)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key: ``sk_`` + 32 random bytes, URL-safe."""
    return "sk_" + secrets.token_urlsafe(32)


def hash_key(key: str, salt: str | None = None) -> str:
    """The stored form of ``key``: ``sha256:<salt>:<hex of SHA-256(salt + key)>`` (a random salt by default)."""
    salt = salt if salt is not None else secrets.token_hex(8)
    return f"sha256:{salt}:{hashlib.sha256((salt + key).encode('utf-8')).hexdigest()}"


def hash_entries(text: str) -> str:
    """``text`` (``KEY:scopes,...``) with every plaintext key replaced by its salted hash (hashed ones kept).

    >>> hash_entries("abc:read").startswith("sha256:") and hash_entries("abc:read").endswith(":read")
    True
    """
    out = []
    for raw in text.split(","):
        key, sep, scopes = raw.strip().rpartition(":")
        if raw.strip():
            out.append(raw.strip() if key.startswith(("sha256:", "sha256-")) or not sep else
                       f"{hash_key(key)}:{scopes}")
    return ",".join(out)


@dataclass(frozen=True)
class KeyEntry:
    """One configured key: its stored hash (``salt`` "" = unsalted), scopes, and a short id safe to log."""

    salt: str
    hexdigest: str
    scopes: frozenset[str]

    @property
    def key_id(self) -> str:
        """The first 12 hex digits of the stored hash: names the key in logs and rate limits, reveals nothing."""
        return self.hexdigest[:12]

    def matches(self, key: str) -> bool:
        """Whether ``key`` hashes to this entry (constant-time compare)."""
        return hmac.compare_digest(hashlib.sha256((self.salt + key).encode("utf-8")).hexdigest(), self.hexdigest)


def _parse_entry(entry: str, where: str, allow_plaintext: bool) -> KeyEntry:
    key, sep, scope_text = entry.rpartition(":")
    if not sep or not key:
        raise ConfigError(f"{_KEY} entry {where} must look like sha256:SALT:HEX:read+ingest",
                          {"key": _KEY, "entry": where})
    scopes = {s.strip() for s in scope_text.split("+") if s.strip()}
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise ConfigError(f"{_KEY} entry {where}: unknown scopes {sorted(unknown)}; use {'+'.join(SCOPES)}",
                          {"key": _KEY, "entry": where})
    if "admin" in scopes:
        scopes |= set(SCOPES)
    if key.startswith("sha256:"):
        parts = key.split(":")
        if len(parts) != 3 or len(parts[2]) != 64:
            raise ConfigError(f"{_KEY} entry {where}: a hashed key is sha256:SALT:HEX (64 hex digits)",
                              {"key": _KEY, "entry": where})
        return KeyEntry(parts[1], parts[2].lower(), frozenset(scopes))
    if key.startswith("sha256-"):
        return KeyEntry("", key[len("sha256-"):].lower(), frozenset(scopes))
    if not allow_plaintext:
        raise ConfigError(f"{_KEY} entry {where} holds a plaintext key: store its hash instead "
                          "(`shopkeep keys create` prints one) or set serving.allow_plaintext_keys for a dev demo",
                          {"key": _KEY, "entry": where})
    return KeyEntry("", digest(key), frozenset(scopes))


@dataclass(frozen=True)
class ApiKeys:
    """Configured keys; ``enabled=False`` lets every request through (loopback demo)."""

    entries: tuple[KeyEntry, ...] = ()
    enabled: bool = True
    _cache: dict[str, KeyEntry | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, *, enabled: bool = True, allow_plaintext: bool = False,
              file_text: str = "") -> ApiKeys:
        """Parse comma-separated ``text`` and one-per-line ``file_text``; ConfigError names a bad entry."""
        entries = [_parse_entry(raw.strip(), str(n), allow_plaintext)
                   for n, raw in enumerate(text.split(","), 1) if raw.strip()]
        for n, raw in enumerate(file_text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if line:
                entries.append(_parse_entry(line, f"file line {n}", allow_plaintext))
        return cls(tuple(entries), enabled)

    @classmethod
    def from_config(cls, serving: Any, *, enabled: bool) -> ApiKeys:
        """The keys of a ``ServingConfig`` (``api_keys`` and the file ``api_keys_file``)."""
        file_text = ""
        if serving.api_keys_file:
            try:
                file_text = Path(serving.api_keys_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"serving.api_keys_file {serving.api_keys_file!r} cannot be read: {exc}",
                                  {"key": "serving.api_keys_file"}) from exc
        return cls.parse(serving.api_keys, enabled=enabled, allow_plaintext=serving.allow_plaintext_keys,
                         file_text=file_text)

    @property
    def scopes_by_digest(self) -> Mapping[str, frozenset[str]]:
        """Stored hash -> scopes (empty when no key is configured)."""
        return {e.hexdigest: e.scopes for e in self.entries}

    def lookup(self, key: str | None) -> KeyEntry | None:
        """The entry ``key`` matches, or None (each entry compared in constant time; answers cached by digest)."""
        if not key:
            return None
        memo = digest(key)
        if memo in self._cache:
            return self._cache[memo]
        found = None
        for entry in self.entries:
            if entry.matches(key):
                found = entry
        if len(self._cache) > 4096:
            self._cache.clear()  # bounded: a flood of random keys cannot grow it
        self._cache[memo] = found
        return found

    def scopes_of(self, key: str | None) -> frozenset[str] | None:
        """The scopes of ``key``, or None when it is not a known key."""
        entry = self.lookup(key)
        return None if entry is None else entry.scopes

    def allows(self, key: str | None, scope: str) -> bool | None:
        """True: allowed; False: known key without ``scope``; None: missing or unknown key."""
        if not self.enabled:
            return True
        scopes = self.scopes_of(key)
        if scopes is None:
            return None
        return scope in scopes


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The API key of a request: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


class RateLimiter(Protocol):
    """Token buckets by key id: ``take`` answers 0.0 when a request may go, else the seconds to wait."""

    def take(self, key_id: str) -> float: ...


class MemoryBuckets:
    """In-process token buckets (one worker): ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float:
        """Spend one token of ``key_id``'s bucket; 0.0, or the seconds until one is there."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._state.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._state[key_id] = (tokens - 1.0, now)
                return 0.0
            self._state[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate


#: KEYS[1] bucket; ARGV rate, burst. Redis's own clock, so every worker and host agrees on "now".
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local got = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(got[1]) or burst, tonumber(got[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RedisBuckets:
    """Token buckets in Redis, shared by every worker process (one atomic Lua call per request)."""

    def __init__(self, uri: str, rate: float, burst: int, prefix: str = "shopkeep:ratelimit:") -> None:
        import redis

        self.rate, self.burst, self.prefix = rate, burst, prefix
        self._client = redis.Redis.from_url(uri)
        self._take = self._client.register_script(_TAKE_LUA)

    def take(self, key_id: str) -> float:
        """Spend one token of ``key_id``'s shared bucket; 0.0, or the seconds until one is there."""
        return float(self._take(keys=[self.prefix + key_id], args=[self.rate, self.burst]))


def open_rate_limiter(serving: Any, online_uri: str) -> RateLimiter | None:
    """The limiter ``serving.rate_limit_per_s`` asks for (None: off): Redis when ``serving.rate_limit_uri`` (or,
    when that is empty, the online state) is ``redis://``, so that several workers share one budget per key."""
    rate = float(serving.rate_limit_per_s)
    if rate <= 0:
        return None
    burst = int(serving.rate_limit_burst) or max(1, math.ceil(rate))
    uri = serving.rate_limit_uri or online_uri
    if uri.startswith(("redis://", "rediss://", "unix://")):
        return RedisBuckets(uri.split("?", 1)[0], rate, burst)
    if uri not in ("", "memory://") and not uri.startswith("memory://"):
        raise ConfigError(f"serving.rate_limit_uri {uri!r}: use redis://... or memory://",
                          {"key": "serving.rate_limit_uri"})
    return MemoryBuckets(rate, burst)


def cors_origins(serving: Any) -> list[str]:
    """The allowed CORS origins of ``serving.cors_origins`` (comma-separated; ``*`` = any; empty = CORS off)."""
    return [o.strip().rstrip("/") for o in str(serving.cors_origins).split(",") if o.strip()]


def install_access_control(app: Any, config: Any) -> None:
    """Attach the per-key rate limiter (``app.state.rate_limiter``) and, when origins are configured, CORS.

    The rate limiter shares Redis with the online state of ``shopkeep serve`` (``SHOPKEEP_ONLINE_URI``) unless
    ``serving.rate_limit_uri`` names another store. CORS answers preflights for the configured origins only,
    allows the auth headers and exposes ``Retry-After``.
    """
    import os

    online = os.environ.get("SHOPKEEP_ONLINE_URI") or config.storage.online_uri
    app.state.rate_limiter = open_rate_limiter(config.serving, online)
    origins = cors_origins(config.serving)
    if origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                           expose_headers=["Retry-After"], max_age=600)
