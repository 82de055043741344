"""Randomness seeded per request, so that replaying a request reproduces its random choices.

>>> a = request_rng(7, "req-1").random()
>>> a == request_rng(7, "req-1").random(), a == request_rng(7, "req-2").random()
(True, False)
"""

from __future__ import annotations

import hashlib

import numpy as np

from shopkeep.errors import ValidationError

__all__ = ["request_rng", "stable_hash64"]


def stable_hash64(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process and release (BLAKE2b)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def request_rng(seed: int, request_id: str) -> np.random.Generator:
    """A generator determined by ``(seed, request_id)`` only."""
    if not isinstance(request_id, str) or not request_id:
        raise ValidationError("request_id", request_id, "must be a non-empty string")
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stable_hash64(request_id)])
