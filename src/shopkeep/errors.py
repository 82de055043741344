"""One exception tree for shopkeep, with stable machine-readable codes.

Every error raised on purpose by shopkeep is a :class:`ShopkeepError`. Its ``code`` is stable across
releases (clients may branch on it); ``message`` is for people; ``details`` carries structured context
such as the offending field and value. Only ``serving/`` maps these to HTTP statuses.

>>> err = ValidationError("price.amount", -5, "must be >= 0")
>>> err.code, err.details["field"], err.details["value"]
('invalid_input', 'price.amount', -5)
>>> str(err)
'price.amount=-5: must be >= 0'
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "ConflictError",
    "NotFittedError",
    "NotFoundError",
    "ShopkeepError",
    "StorageError",
    "ValidationError",
]


class ShopkeepError(Exception):
    """Base of every shopkeep error: ``code`` (stable), ``message`` and ``details``."""

    code: str = "internal"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The error envelope body: ``{"code", "message", "details"}``."""
        return {"code": self.code, "message": self.message, "details": self.details}


def _short(value: Any, limit: int = 120) -> Any:
    """Keep huge offending values out of messages (a 10 MB line must not be echoed back)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    if isinstance(value, bytes) and len(value) > limit:
        return value[:limit] + b"..."
    return value


class ValidationError(ShopkeepError, ValueError):
    """Input that breaks the schema: names the field and the value.

    ``line`` (1-based) is set when the input came from a file.
    """

    code = "invalid_input"

    def __init__(self, field: str, value: Any, reason: str, *, line: int | None = None) -> None:
        shown = _short(value)
        where = f"line {line}: " if line is not None else ""
        super().__init__(
            f"{where}{field}={shown!r}: {reason}",
            {"field": field, "value": shown, "reason": reason, **({"line": line} if line else {})},
        )
        self.field = field
        self.value = shown
        self.reason = reason
        self.line = line


class ConflictError(ShopkeepError):
    """A write that contradicts data already accepted (same id, different payload)."""

    code = "conflict"


class NotFoundError(ShopkeepError, KeyError):
    """A referenced id (item, user, model version...) does not exist."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


class ConfigError(ShopkeepError):
    """A configuration value or cross reference is invalid; names the key."""

    code = "invalid_config"


class NotFittedError(ShopkeepError, RuntimeError):
    """A model or index was used before ``fit()``/``load()``."""

    code = "not_fitted"


class StorageError(ShopkeepError):
    """A storage backend failed or is unreachable; nothing was half-written."""

    code = "storage_unavailable"
