"""Input checks and the append plan shared by every Store backend.

Backends validate a whole call before touching storage, so that a bad record or document raises
:class:`~shopkeep.errors.ValidationError` and nothing is written.

>>> plan = plan_append([LogRecord("a", 1, "{}"), LogRecord("a", 1, "[]")], {})
>>> plan.result
AppendResult(inserted=('a',), duplicates=(), conflicts=('a',))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from urllib.parse import urlsplit, urlunsplit

from shopkeep.errors import ValidationError
from shopkeep.storage.base import AppendResult, Document, LogRecord

__all__ = [
    "MAX_KEY_LEN",
    "AppendPlan",
    "check_after",
    "check_deltas",
    "check_docs",
    "check_k",
    "check_keys",
    "check_name",
    "check_read",
    "check_records",
    "check_swap",
    "check_text",
    "check_values",
    "digest",
    "dump_doc",
    "format_number",
    "parse_number",
    "plan_append",
    "redact",
]

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_KEY_LEN = 512
_INT64 = 2**63


def check_name(field: str, name: object) -> str:
    """``name`` if it is a valid collection/log name (``^[a-z][a-z0-9_]{0,62}$``), else ValidationError."""
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        raise ValidationError(field, name, "must match ^[a-z][a-z0-9_]{0,62}$")
    return name


def check_text(field: str, value: object, *, max_len: int | None) -> str:
    """``value`` if it is a NUL-free UTF-8-encodable str of 1 to ``max_len`` characters (any length if None)."""
    if not isinstance(value, str):
        raise ValidationError(field, value, f"must be a str, not {type(value).__name__}")
    if max_len is not None and not 0 < len(value) <= max_len:
        raise ValidationError(field, value, f"must be 1 to {max_len} characters")
    if "\x00" in value:
        raise ValidationError(field, value, "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(field, value, "must be encodable as UTF-8") from None
    return value


def check_keys(field: str, keys: Sequence[str]) -> list[str]:
    """The distinct ``keys`` in first-seen order; each must be a non-empty str of at most 512 characters."""
    if isinstance(keys, str | bytes):
        raise ValidationError(field, keys, "must be a sequence of keys, not a single string")
    for i, key in enumerate(keys):
        check_text(f"{field}[{i}]", key, max_len=MAX_KEY_LEN)
    return list(dict.fromkeys(keys))


def check_k(field: str, k: object) -> int:
    """``k`` if it is an int >= 0, else ValidationError."""
    if type(k) is not int or k < 0:
        raise ValidationError(field, k, "must be an int >= 0")
    return k


def check_after(after: object) -> None:
    """``after`` of a scan must be a key (str) or None."""
    if after is not None and not isinstance(after, str):
        raise ValidationError("after", after, "must be a str or None")


def check_read(after_seq: object, k: object, partition: object) -> None:
    """Check the arguments of ``EventLog.read``."""
    if type(after_seq) is not int or not 0 <= after_seq < _INT64:
        raise ValidationError("after_seq", after_seq, "must be an int >= 0")
    check_k("k", k)
    if partition is not None:
        check_text("partition", partition, max_len=MAX_KEY_LEN)


def dump_doc(field: str, doc: object) -> str:
    """The compact JSON text of a document (a dict), or ValidationError naming ``field``."""
    if not isinstance(doc, dict):
        raise ValidationError(field, type(doc).__name__, "must be a dict (a JSON object)")
    try:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, "<document>", f"is not JSON-serializable: {exc}") from None
    return check_text(field, text, max_len=None)


def check_docs(collection: str, docs: Mapping[str, Document]) -> list[tuple[str, str]]:
    """``(key, json_text)`` for every document, all checked before anything is written."""
    if not isinstance(docs, Mapping):
        raise ValidationError("docs", type(docs).__name__, "must be a mapping of key to document")
    rows = []
    for key, doc in docs.items():
        check_text(f"{collection}.key", key, max_len=MAX_KEY_LEN)
        rows.append((key, dump_doc(f"{collection}[{key!r}]", doc)))
    return rows


def digest(payload: str) -> bytes:
    """A 16-byte BLAKE2b digest of a payload (how replays are told from conflicts)."""
    return blake2b(payload.encode("utf-8"), digest_size=16).digest()


def _check_record(i: int, rec: object) -> None:
    """Raise ValidationError naming the first bad field of ``records[i]``."""
    if not isinstance(rec, LogRecord):
        raise ValidationError(f"records[{i}]", type(rec).__name__, "must be a LogRecord")
    check_text(f"records[{i}].key", rec.key, max_len=MAX_KEY_LEN)
    if type(rec.ts_ms) is not int or not -_INT64 <= rec.ts_ms < _INT64:
        raise ValidationError(f"records[{i}].ts_ms", rec.ts_ms, "must be a 64-bit int (epoch ms)")
    if rec.partition is not None:
        check_text(f"records[{i}].partition", rec.partition, max_len=MAX_KEY_LEN)
    check_text(f"records[{i}].payload", rec.payload, max_len=None)


def check_records(records: Sequence[LogRecord]) -> list[bytes]:
    """The payload digests of ``records``, after checking every field of every record."""
    if isinstance(records, str | bytes):
        raise ValidationError("records", records, "must be a sequence of LogRecord")
    digests = []
    low, high = -_INT64, _INT64
    for i, rec in enumerate(records):
        # Inline fast path for the common all-ASCII record; anything unusual takes the full check.
        try:
            key, ts, part, payload = rec.key, rec.ts_ms, rec.partition, rec.payload
            ok = (
                type(rec) is LogRecord
                and type(key) is str and 0 < len(key) <= MAX_KEY_LEN and key.isascii() and "\x00" not in key
                and type(ts) is int and low <= ts < high
                and type(payload) is str and "\x00" not in payload
                and (part is None or (type(part) is str and 0 < len(part) <= MAX_KEY_LEN
                                      and part.isascii() and "\x00" not in part))
            )
            data = payload.encode("utf-8") if ok else b""
        except (AttributeError, UnicodeEncodeError):
            ok = False
        if not ok:
            _check_record(i, rec)
            data = rec.payload.encode("utf-8")
        digests.append(blake2b(data, digest_size=16).digest())
    return digests


@dataclass(frozen=True, slots=True)
class AppendPlan:
    """What to write: indices of the records to insert (in order) and the result to report."""

    insert: tuple[int, ...]
    result: AppendResult


def plan_append(
    records: Sequence[LogRecord], existing: Mapping[str, bytes], digests: Sequence[bytes] | None = None
) -> AppendPlan:
    """Classify each record against the stored digests ``existing`` and earlier copies in the batch.

    Every record lands in exactly one of inserted/duplicates/conflicts, so their lengths add up to
    ``len(records)``; a key repeated in the batch is inserted once.
    """
    if digests is None:
        digests = check_records(records)
    seen: dict[str, bytes] = {}
    insert: list[int] = []
    inserted: list[str] = []
    duplicates: list[str] = []
    conflicts: list[str] = []
    for i, rec in enumerate(records):
        key = rec.key
        prev = existing.get(key)
        if prev is None:
            prev = seen.get(key)
        if prev is None:
            seen[key] = digests[i]
            insert.append(i)
            inserted.append(key)
        elif prev == digests[i]:
            duplicates.append(key)
        else:
            conflicts.append(key)
    return AppendPlan(tuple(insert), AppendResult(tuple(inserted), tuple(duplicates), tuple(conflicts)))


def format_number(value: float) -> bytes:
    """A counter value as Redis writes it: ``3`` for 3.0, ``0.5`` for 0.5.

    >>> format_number(3.0), format_number(0.25)
    (b'3', b'0.25')
    """
    if value.is_integer() and abs(value) < 1e17:
        return str(int(value)).encode()
    return repr(value).encode()


def parse_number(key: str, raw: bytes) -> float:
    """A stored counter as a float, or ValidationError naming the key."""
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(key, raw, "holds a value that is not a number") from None
    if not math.isfinite(value):
        raise ValidationError(key, raw, "holds a value that is not a finite number")
    return value


def check_values(values: Mapping[str, bytes], ttl_s: int | None) -> None:
    """Check the arguments of ``OnlineState.set_many``."""
    if not isinstance(values, Mapping):
        raise ValidationError("values", type(values).__name__, "must be a mapping of key to bytes")
    for key, value in values.items():
        check_text("values.key", key, max_len=MAX_KEY_LEN)
        if not isinstance(value, bytes):
            raise ValidationError(f"values[{key!r}]", type(value).__name__, "must be bytes")
    if ttl_s is not None and (type(ttl_s) is not int or ttl_s <= 0):
        raise ValidationError("ttl_s", ttl_s, "must be an int > 0 or None")


def check_swap(expected: Mapping[str, bytes | None], values: Mapping[str, bytes], ttl_s: int | None) -> None:
    """Check the arguments of ``OnlineState.swap_many``."""
    check_values(values, ttl_s)
    if not isinstance(expected, Mapping):
        raise ValidationError("expected", type(expected).__name__, "must be a mapping of key to bytes or None")
    for key, value in expected.items():
        check_text("expected.key", key, max_len=MAX_KEY_LEN)
        if value is not None and not isinstance(value, bytes):
            raise ValidationError(f"expected[{key!r}]", type(value).__name__, "must be bytes or None")
    for key in values:
        if key not in expected:
            raise ValidationError(f"expected[{key!r}]", None, "is missing: every written key needs its expected value")


def check_deltas(deltas: Mapping[str, float]) -> None:
    """Check the arguments of ``OnlineState.incr_many``."""
    if not isinstance(deltas, Mapping):
        raise ValidationError("deltas", type(deltas).__name__, "must be a mapping of key to number")
    for key, delta in deltas.items():
        check_text("deltas.key", key, max_len=MAX_KEY_LEN)
        if type(delta) not in (int, float) or not math.isfinite(delta):
            raise ValidationError(f"deltas[{key!r}]", delta, "must be a finite int or float")


def redact(uri: str) -> str:
    """``uri`` with its password replaced by ``***``.

    >>> redact("postgresql://app:secret@db:5432/shop")
    'postgresql://app:***@db:5432/shop'
    """
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
