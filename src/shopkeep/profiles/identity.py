"""The identity graph: which signed-in user each anonymous (device/cookie) id belongs to.

One anonymous id maps to at most one user at a time. Links carry the time they were asserted
(``ts_ms``, epoch milliseconds): a link to another user moves the anonymous id only if it is not
older than the current link, so replaying links in any order ends in the same graph. Every link,
move and unlink is kept in the anonymous id's history (the last :data:`HISTORY_LIMIT` entries).

Both directions live in one collection, ``identity``: ``anon:<anonymous_id>`` →
``{"user_id", "ts_ms", "history", "unlinked"}`` and ``user:<user_id>`` → ``{"anonymous_ids"}``.
Every change writes both kinds of documents in a single ``put_many`` call, so they never disagree.
(Read-modify-write: two processes linking the *same* anonymous id at the same instant may race.)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.storage.base import Document, DocumentStore

__all__ = ["COLLECTION", "HISTORY_LIMIT", "IdentityGraph"]

COLLECTION = "identity"
HISTORY_LIMIT = 100
MAX_ID_LEN = 256


def _check_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LEN:
        raise ValidationError(field, value, f"must be a non-empty string of at most {MAX_ID_LEN} characters")
    return value


def _check_ts(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, value, "must be an int >= 0 (epoch milliseconds)")
    return value


def _anon_key(anonymous_id: str) -> str:
    return f"anon:{anonymous_id}"


def _user_key(user_id: str) -> str:
    return f"user:{user_id}"


def _record(doc: Document, entry: dict[str, Any]) -> None:
    history = list(doc.get("history", []))
    history.append(entry)
    doc["history"] = history[-HISTORY_LIMIT:]


class IdentityGraph:
    """Links between anonymous ids and user ids, stored in a :class:`DocumentStore`."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def _load(self, anon_ids: Sequence[str], user_ids: Sequence[str]) -> dict[str, Document]:
        keys = [_anon_key(a) for a in anon_ids] + [_user_key(u) for u in user_ids]
        if not keys:
            return {}
        # Copies: the changes are applied in memory first and must not leak into a backend's cache.
        return copy.deepcopy(self.store.get_many(COLLECTION, list(dict.fromkeys(keys))))

    def link_many(self, links: Sequence[tuple[str, str, int]]) -> int:
        """Link ``(anonymous_id, user_id, ts_ms)`` triples; returns how many links are new (moves included).

        Idempotent: a link already in place only refreshes its time. A link older than the
        anonymous id's current link, or older than an :meth:`unlink` of the same pair, is ignored.
        """
        checked: list[tuple[str, str, int]] = []
        for i, link in enumerate(links):
            if not isinstance(link, tuple | list) or len(link) != 3:
                raise ValidationError(f"links[{i}]", link, "must be a tuple (anonymous_id, user_id, ts_ms)")
            checked.append((_check_id(f"links[{i}].anonymous_id", link[0]),
                            _check_id(f"links[{i}].user_id", link[1]),
                            _check_ts(f"links[{i}].ts_ms", link[2])))
        if not checked:
            return 0
        checked.sort(key=lambda t: t[2])
        anon_docs = self._load([a for a, _, _ in checked], [])
        current = {str(d["user_id"]) for d in anon_docs.values() if d.get("user_id")}
        docs = {**anon_docs, **self._load([], sorted(current | {u for _, u, _ in checked}))}
        changed: set[str] = set()
        new_links = 0
        for anon, user, ts in checked:
            new_links += self._apply_link(docs, changed, anon, user, ts)
        if changed:
            self.store.put_many(COLLECTION, {key: docs[key] for key in sorted(changed)})
        return new_links

    def _apply_link(self, docs: dict[str, Document], changed: set[str], anon: str, user: str, ts: int) -> int:
        key = _anon_key(anon)
        doc = docs.setdefault(key, {"user_id": None, "ts_ms": 0, "history": [], "unlinked": {}})
        if ts <= int(doc.get("unlinked", {}).get(user, -1)):
            return 0  # a replay of a link that was undone
        old = doc.get("user_id")
        if old == user:
            if ts > int(doc["ts_ms"]):
                doc["ts_ms"] = ts
                changed.add(key)
            return 0
        if old is not None and ts < int(doc["ts_ms"]):
            return 0  # stale: the anonymous id was linked to someone else later
        if old is not None:
            self._drop(docs, changed, str(old), anon)
            _record(doc, {"action": "move", "user_id": user, "from_user_id": old, "ts_ms": ts})
        else:
            _record(doc, {"action": "link", "user_id": user, "ts_ms": ts})
        doc["user_id"], doc["ts_ms"] = user, ts
        user_doc = docs.setdefault(_user_key(user), {"anonymous_ids": []})
        user_doc["anonymous_ids"] = sorted({*user_doc.get("anonymous_ids", []), anon})
        changed.update((key, _user_key(user)))
        return 1

    @staticmethod
    def _drop(docs: dict[str, Document], changed: set[str], user: str, anon: str) -> None:
        user_doc = docs.setdefault(_user_key(user), {"anonymous_ids": []})
        user_doc["anonymous_ids"] = [a for a in user_doc.get("anonymous_ids", []) if a != anon]
        changed.add(_user_key(user))

    def unlink(self, anonymous_id: str, user_id: str) -> None:
        """Undo a wrong link; raises :class:`NotFoundError` if ``anonymous_id`` is not linked to ``user_id``."""
        _check_id("anonymous_id", anonymous_id)
        _check_id("user_id", user_id)
        docs = self._load([anonymous_id], [user_id])
        doc = docs.get(_anon_key(anonymous_id))
        if doc is None or doc.get("user_id") != user_id:
            raise NotFoundError(
                f"anonymous id {anonymous_id!r} is not linked to user {user_id!r}",
                {"anonymous_id": anonymous_id, "user_id": user_id},
            )
        ts = int(doc["ts_ms"])
        unlinked = dict(doc.get("unlinked", {}))
        unlinked[user_id] = max(ts, int(unlinked.get(user_id, -1)))
        doc["unlinked"], doc["user_id"] = unlinked, None
        _record(doc, {"action": "unlink", "user_id": user_id, "ts_ms": ts})
        changed: set[str] = {_anon_key(anonymous_id)}
        self._drop(docs, changed, user_id, anonymous_id)
        self.store.put_many(COLLECTION, {key: docs[key] for key in sorted(changed)})

    def user_of(self, anonymous_ids: Sequence[str]) -> dict[str, str]:
        """The user each linked anonymous id belongs to (unlinked or unknown ids are absent)."""
        if isinstance(anonymous_ids, str):
            raise ValidationError("anonymous_ids", anonymous_ids, "must be a sequence of ids, not a string")
        for i, anon in enumerate(anonymous_ids):
            _check_id(f"anonymous_ids[{i}]", anon)
        docs = self._load(list(anonymous_ids), [])
        out: dict[str, str] = {}
        for anon in anonymous_ids:
            doc = docs.get(_anon_key(anon))
            if doc is not None and doc.get("user_id"):
                out[anon] = str(doc["user_id"])
        return out

    def anonymous_ids_many(self, user_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The anonymous ids currently linked to each user, sorted (users without any map to ``()``)."""
        if isinstance(user_ids, str):
            raise ValidationError("user_ids", user_ids, "must be a sequence of ids, not a string")
        for i, user in enumerate(user_ids):
            _check_id(f"user_ids[{i}]", user)
        docs = self._load([], list(user_ids))
        return {u: tuple(docs.get(_user_key(u), {}).get("anonymous_ids", [])) for u in user_ids}

    def anonymous_ids(self, user_id: str) -> tuple[str, ...]:
        """The anonymous ids currently linked to ``user_id``, sorted (empty if none)."""
        _check_id("user_id", user_id)
        return self.anonymous_ids_many([user_id])[user_id]

    def history(self, anonymous_id: str) -> tuple[dict[str, Any], ...]:
        """The recorded links, moves and unlinks of ``anonymous_id``, oldest first."""
        _check_id("anonymous_id", anonymous_id)
        doc = self._load([anonymous_id], []).get(_anon_key(anonymous_id))
        return tuple(dict(e) for e in doc.get("history", [])) if doc else ()
