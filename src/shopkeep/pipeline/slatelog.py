"""Served slates written to the slate log off the request path, in batches.

A request hands its :class:`~shopkeep.events.log.SlateRecord` to :meth:`SlateLogger.add` (a list
append); a daemon thread appends whatever is pending every ``interval_s`` in one store call. A slate
is therefore in the log within about ``interval_s`` of being served (:meth:`flush` forces it, e.g.
before joining impressions in tests). At most ``max_pending`` slates wait; beyond that the oldest are
dropped and counted in :attr:`SlateLogger.dropped` (the store being down must not stall serving).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from shopkeep.errors import ShopkeepError
from shopkeep.events.log import SlateRecord, append_slates
from shopkeep.storage.base import Store

__all__ = ["SlateLogger"]

log = logging.getLogger("shopkeep.engine")


class SlateLogger:
    """Batches served slates into ``append_slates`` from a background thread."""

    def __init__(self, store: Store, *, interval_s: float = 0.05, max_pending: int = 100_000) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.dropped = 0
        self.written = 0
        self._pending: list[SlateRecord] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shopkeep-slate-log", daemon=True)
        self._thread.start()

    def add(self, records: Sequence[SlateRecord]) -> None:
        """Queue slates for the log."""
        with self._lock:
            self._pending.extend(records)
            over = len(self._pending) - self.max_pending
            if over > 0:
                del self._pending[:over]
                self.dropped += over

    def flush(self) -> int:
        """Append every pending slate now; returns how many were written."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                append_slates(self.store, batch)
            except ShopkeepError as exc:
                log.error("could not log %d served slates: %s", len(batch), exc)
                self.dropped += len(batch)
                return 0
            self.written += len(batch)
            return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is pending."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
