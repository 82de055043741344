"""Versioned policies in a :class:`~shopkeep.storage.base.DocumentStore` (collection ``policies``).

Each save writes the new version document and the ``active`` pointer in ONE ``put_many`` (atomic
in every backend), so readers see either the old or the new policy, never half of one. Every
version stays in the history. Saving a document whose content hash equals the active one's is a
no-op that returns the active policy.

>>> from shopkeep.storage import open_store
>>> ps = PolicyStore(open_store("memory://"))
>>> ps.save({"name": "a", "rules": [{"kind": "inventory"}]}).version.number
1
>>> ps.save({"name": "a", "rules": [{"kind": "inventory"}, {"kind": "map", "mode": "hide"}]}).version.number
2
>>> [v.number for v in ps.history()], ps.active().version.number, ps.get(1).rules[0].kind
([1, 2], 2, 'inventory')
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.policy.model import PolicySet, PolicyVersion, parse_policy
from shopkeep.storage.base import DocumentStore, iter_collection
from shopkeep.types import utc_now

__all__ = ["COLLECTION", "EMPTY_POLICY", "PolicyStore"]

COLLECTION = "policies"
_ACTIVE = "active"
#: The policy in force before any was saved: no merchant rules (the always-on hard rules still apply).
EMPTY_POLICY = parse_policy({"name": "empty", "rules": []})


def _key(number: int) -> str:
    return f"v{number:010d}"


class PolicyStore:
    """Save, load and replace the active policy; keep every version."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def _load(self, doc: Mapping[str, Any]) -> PolicySet:
        return parse_policy(doc["policy"], number=int(doc["version"]))

    def active(self) -> PolicySet:
        """The active policy (:data:`EMPTY_POLICY` before the first save)."""
        doc = self.store.get_many(COLLECTION, [_ACTIVE]).get(_ACTIVE)
        return EMPTY_POLICY if doc is None else self._load(doc)

    def get(self, number: int) -> PolicySet:
        """One stored version; NotFoundError if it was never saved."""
        doc = self.store.get_many(COLLECTION, [_key(number)]).get(_key(number))
        if doc is None:
            raise NotFoundError(f"no policy version {number}", {"version": number})
        return self._load(doc)

    def history(self) -> list[PolicyVersion]:
        """Every saved version, oldest first."""
        out = []
        for key, doc in iter_collection(self.store, COLLECTION):
            if key != _ACTIVE:
                out.append(PolicyVersion(int(doc["version"]), str(doc["hash"])))
        return out

    def save(self, raw: Mapping[str, Any] | str, *, known_items: Container[str] | None = None) -> PolicySet:
        """Validate ``raw`` and make it the active policy as version last+1 (nothing changes on error).

        ``known_items`` (e.g. a CatalogSnapshot's ``index``) enables cross-reference checks."""
        parsed = parse_policy(raw, known_items=known_items)
        current = self.store.get_many(COLLECTION, [_ACTIVE]).get(_ACTIVE)
        if current is not None and current["hash"] == parsed.version.hash:
            return self._load(current)
        number = (int(current["version"]) if current else 0) + 1
        if self.store.get_many(COLLECTION, [_key(number)]):
            raise ValidationError("version", number, "already stored (a concurrent save?); retry")
        doc = {"version": number, "hash": parsed.version.hash, "saved_at": utc_now().isoformat(),
               "policy": dict(parsed.document)}
        self.store.put_many(COLLECTION, {_key(number): doc, _ACTIVE: doc})
        return parse_policy(parsed.document, number=number)

    def activate(self, number: int) -> PolicySet:
        """Roll back (or forward) to a stored version: it becomes active again under a new number."""
        return self.save(dict(self.get(number).document))
