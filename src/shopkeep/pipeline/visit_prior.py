"""The visit-context prior in the serving path: a :class:`~shopkeep.explore.context_prior.ContextPrior`
over the catalog, built at engine start from the event log and updated on ingest.

Rows are the item interactions (view, click, add to cart, purchase) of events that carry a context
(device, referrer, campaign, channel, ...). At start only the newest ``max_records`` log records are
read (a campaign's effect is recent; a long log would slow the start). Items added later have no prior
(the prior's item list is fixed when it is built; :class:`VisitPriorStage` is rebuilt with the engine).
Reads and writes are serialized by a lock, so a request never sees a half-applied batch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.events.log import EVENTS_LOG
from shopkeep.explore.context_prior import CONTEXT_FIELDS, ContextPrior, event_context
from shopkeep.storage.base import Store
from shopkeep.types import Event, EventType

__all__ = ["VisitPriorStage"]

log = logging.getLogger("shopkeep.engine")
_INTERACTIONS = frozenset({EventType.VIEW, EventType.CLICK, EventType.ADD_TO_CART, EventType.PURCHASE})
_INTERACTION_NAMES = frozenset(t.value for t in _INTERACTIONS)


class VisitPriorStage:
    """A thread-safe context prior over ``snapshot``'s items (module docstring)."""

    def __init__(self, snapshot: CatalogSnapshot, *, shrinkage: float = 20.0, max_records: int = 200_000,
                 page: int = 5000) -> None:
        self.item_ids = tuple(snapshot.item_ids)
        self.shrinkage = shrinkage
        self.max_records = max_records
        self.page = page
        self._index = {item: i for i, item in enumerate(self.item_ids)}
        self._lock = threading.Lock()
        self.prior_ = ContextPrior(shrinkage=shrinkage)

    def _rows(self, events: Iterable[Event]) -> list[tuple[dict[str, str], int]]:
        out = []
        for e in events:
            if e.type in _INTERACTIONS and e.item_id is not None and e.context is not None:
                i = self._index.get(e.item_id)
                ctx = event_context(e)
                if i is not None and ctx:
                    out.append((ctx, i))
        return out

    def fit(self, store: Store) -> VisitPriorStage:
        """Count the newest ``max_records`` records of ``store``'s event log."""
        rows: list[tuple[dict[str, str], int]] = []
        if self.item_ids:
            after = max(0, store.log_count(EVENTS_LOG) - self.max_records)
            while page := store.read(EVENTS_LOG, after_seq=after, k=self.page):
                after = page[-1].seq
                rows += self._logged_rows(rec.payload for rec in page)
        with self._lock:
            self.prior_ = ContextPrior(shrinkage=self.shrinkage).fit(rows, n_items=max(len(self.item_ids), 1))
        log.info("visit-context prior: %d interactions with a context, %d context values", len(rows),
                 len(self.prior_.counts_))
        return self

    def _logged_rows(self, payloads: Iterable[str]) -> list[tuple[dict[str, str], int]]:
        """:meth:`_rows` of logged events read straight from their stored JSON: the log holds each
        event's canonical wire form, validated when it was accepted, so building (and re-validating)
        an :class:`Event` per record only to read three fields was most of a worker's start-up at 100k
        items. The rows equal ``_rows(parse_event(json.loads(p)) for p in payloads)``."""
        out = []
        index = self._index
        for payload in payloads:
            if '"context"' not in payload:
                continue
            try:
                raw = json.loads(payload)
            except ValueError:
                continue
            if type(raw) is not dict or type(raw.get("type")) is not str or raw["type"] not in _INTERACTION_NAMES:
                continue
            item, context = raw.get("item_id"), raw.get("context")
            if type(item) is not str or type(context) is not dict:
                continue
            i = index.get(item)
            if i is None:
                continue
            ctx = {f: str(v).strip().lower() for f in CONTEXT_FIELDS if (v := context.get(f))}
            if ctx:
                out.append((ctx, i))
        return out

    def update(self, events: Iterable[Event]) -> int:
        """Fold newly accepted interactions with a context in; returns how many counted."""
        rows = self._rows(events)
        if not rows:
            return 0
        with self._lock:
            return self.prior_.update(rows)

    def scores(self, contexts: Sequence[Mapping[str, str]]) -> npt.NDArray[np.float64]:
        """One row of prior scores over :attr:`item_ids` per visit context."""
        with self._lock:
            return self.prior_.scores(contexts)

    def knows(self, context: Mapping[str, str]) -> bool:
        """Whether a value of ``context`` was seen in the log."""
        with self._lock:
            return self.prior_.knows(context)
