"""Returns-aware fit in the serving path: a :class:`~shopkeep.features.fit.FitModel` kept current.

The Engine builds one :class:`FitStage` at start from the event log's purchases and returns (only when
the catalog has sized items), folds every newly ingested purchase or return into it on the write path,
and reads the log's newer records at most every ``catch_up_s`` seconds, so a purchase or return another
API worker stored reaches this one too (applying an event twice changes nothing: observations are keyed
by order and item). :meth:`FitStage.advise` answers the suggested size for a shopper and an item.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping

from shopkeep.errors import ShopkeepError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.events.schema import parse_event
from shopkeep.features.fit import FitAdvice, FitModel, size_position
from shopkeep.storage.base import Store
from shopkeep.types import Event, EventType, Item

__all__ = ["FitStage"]

log = logging.getLogger("shopkeep.engine")
_KINDS = (EventType.PURCHASE, EventType.RETURN)


class FitStage:
    """A fit model over ``store``'s event log and the sized items of the catalog (module docstring)."""

    def __init__(self, store: Store, *, catch_up_s: float = 5.0, page: int = 5000) -> None:
        self.store = store
        self.catch_up_s = catch_up_s
        self.page = page
        self.model_ = FitModel()
        self._seq = 0
        self._checked = 0.0
        self._lock = threading.Lock()

    def fit(self, items: Iterable[Item]) -> FitStage:
        """Index the sized ``items`` and read every purchase and return stored so far."""
        sized = {it.item_id: it for it in items if size_position(it.attributes.get("size")) is not None}
        with self._lock:
            self.model_.fit((), sized)
            if sized:
                self._read_log()
            else:  # nothing sized: no observation can count, so the log is not read (it may be long)
                self._seq = self._last_seq()
            self._checked = time.monotonic()
        log.info("fit model: %d sized items, %d purchases of them", len(sized), len(self.model_.obs_))
        return self

    def _last_seq(self) -> int:
        last = 0
        while page := self.store.read(EVENTS_LOG, after_seq=last, k=self.page):
            last = page[-1].seq
        return last

    def _read_log(self) -> int:
        """Fold the log's records after the last one read (purchases and returns only)."""
        changed = 0
        while page := self.store.read(EVENTS_LOG, after_seq=self._seq, k=self.page):
            self._seq = page[-1].seq
            events = []
            for rec in page:
                if '"purchase"' not in rec.payload and '"return"' not in rec.payload:
                    continue
                try:
                    event = parse_event(json.loads(rec.payload))
                except (ShopkeepError, ValueError):  # stored events were validated; a bad one says nothing
                    continue
                if event.type in _KINDS:
                    events.append(event)
            changed += self.model_.update(events)
        return changed

    def update(self, events: Iterable[Event]) -> int:
        """Fold newly accepted purchases and returns in (the write path)."""
        wanted = [e for e in events if e.type in _KINDS or (e.user_id and e.anonymous_id)]
        if not wanted:
            return 0
        with self._lock:
            return self.model_.update(wanted)

    def add_items(self, items: Iterable[Item]) -> None:
        """Index new or changed items (a new size variant is suggested at once)."""
        with self._lock:
            self.model_.add_items(items)

    def catch_up(self) -> None:
        """Read what other workers stored since the last look (at most every ``catch_up_s``)."""
        now = time.monotonic()
        if now - self._checked < self.catch_up_s or not self.model_.items_:
            return
        with self._lock:
            if now - self._checked < self.catch_up_s:
                return
            self._checked = now
            try:
                self._read_log()
            except ShopkeepError as exc:
                log.warning("fit model could not read the event log: %s", exc)

    def advise(self, user_id: str | None, anonymous_id: str | None, item_id: str) -> FitAdvice | None:
        """The size advice for the shopper and ``item_id`` (None: the item is not sized or the shopper's
        usual size is unknown)."""
        if item_id not in self.model_.items_:
            return None
        with self._lock:
            return self.model_.advise(self.model_.shopper_key(user_id, anonymous_id), item_id)

    def advise_many(self, user_id: str | None, anonymous_id: str | None,
                    item_ids: Iterable[str]) -> Mapping[str, FitAdvice]:
        """:meth:`advise` for several items (only those with advice)."""
        out = {}
        for item_id in item_ids:
            found = self.advise(user_id, anonymous_id, item_id)
            if found is not None:
                out[item_id] = found
        return out
