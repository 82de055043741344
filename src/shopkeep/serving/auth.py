"""API keys with scopes (``ingest``, ``read``, ``admin``), compared by SHA-256 digest in constant time.

Keys come from ``serving.api_keys`` (config file or ``SHOPKEEP_SERVING__API_KEYS``): comma-separated
entries ``KEY:scope+scope``; ``KEY`` may be given as ``sha256-<hex digest>`` so that the plain key
never sits in a config file. ``admin`` implies every other scope. Clients send the key as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.

>>> keys = ApiKeys.parse("s3cret:read+ingest, sha256-" + digest("root") + ":admin")
>>> sorted(keys.scopes_of("s3cret") or ()), sorted(keys.scopes_of("root") or ()), keys.scopes_of("nope")
(['ingest', 'read'], ['admin', 'ingest', 'read'], None)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from shopkeep.errors import ConfigError

__all__ = ["SCOPES", "ApiKeys", "digest", "key_from_headers"]

#: Every scope a key can carry.
SCOPES = ("ingest", "read", "experiments", "admin")


def digest(key: str) -> str:
    """Hex SHA-256 of a key (what is kept in memory and may be written in config)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKeys:
    """Key digests and their scopes; ``enabled=False`` lets every request through (loopback demo)."""

    scopes_by_digest: Mapping[str, frozenset[str]] = field(default_factory=dict)
    enabled: bool = True

    @classmethod
    def parse(cls, text: str, *, enabled: bool = True) -> ApiKeys:
        """Parse ``KEY:scope+scope,...`` entries; ConfigError names a bad entry or scope."""
        out: dict[str, frozenset[str]] = {}
        for number, raw in enumerate(text.split(","), 1):
            entry = raw.strip()
            if not entry:
                continue
            key, sep, scope_text = entry.rpartition(":")
            if not sep or not key:
                raise ConfigError(f"serving.api_keys entry {number} must look like KEY:read+ingest",
                                  {"key": "serving.api_keys", "entry": number})
            scopes = {s.strip() for s in scope_text.split("+") if s.strip()}
            unknown = scopes - set(SCOPES)
            if unknown or not scopes:
                raise ConfigError(f"serving.api_keys entry {number}: unknown scopes {sorted(unknown)}; "
                                  f"use {'+'.join(SCOPES)}", {"key": "serving.api_keys", "entry": number})
            if "admin" in scopes:
                scopes |= set(SCOPES)
            hashed = key[len("sha256-"):].lower() if key.startswith("sha256-") else digest(key)
            out[hashed] = frozenset(scopes)
        return cls(out, enabled)

    def scopes_of(self, key: str | None) -> frozenset[str] | None:
        """The scopes of ``key``, or None when it is not a known key (constant-time compare)."""
        if not key:
            return None
        wanted = digest(key)
        found = None
        for known, scopes in self.scopes_by_digest.items():
            if hmac.compare_digest(known, wanted):
                found = scopes
        return found

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
