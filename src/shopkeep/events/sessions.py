"""Sessionization by event time, correct for late and out-of-order events, persisted in the store.

An event without a ``session_id`` is placed among the *runs* of its shopper key (its anonymous_id,
else its user_id). A run is a stretch of that shopper's events whose consecutive gaps are at most the
session timeout; it has a fixed *label* ``f"{ms:013d}:{id}"`` (ms: time of the event that opened it),
which is the log partition its events are stored under, and a time range [lo, hi]. Labels start with
the time so that a roughly time-ordered stream inserts into one end of the store's partition index
(random partitions made SQLite appends 3x slower at 500k events). Placement of an event at t:

1. t inside a run's range -> that run (so a replayed event always gets its original label);
2. else t within the timeout of one run or two (after hi or before lo) -> it extends the nearest of
   them (the earlier one on a tie);
3. else a new run labelled ``f"{t:013d}:{id}"``.

Runs never overlap and labels never change (the log is append-only). A *session* is a chain of runs
whose gaps are at most the timeout — exactly the gap-based sessions of all events seen so far, so a
late event that bridges two sessions merges them. Its id is ``f"{id}:{ms of its earliest event}"``
and is computed when read. The sessions do not depend on the order in which events arrive.

State is one document per shopper key in collection ``event_sessions`` (key ``a:<anonymous_id>`` or
``u:<user_id>``): ``{"runs": [[label, lo, hi], ...], "parts": [partition, ...]}``; ``parts`` lists
the other partitions holding that shopper's events (client-given session ids, and sessions keyed by
the anonymous id of a signed-in user). Document ``log:events`` holds ``{"seq": n}``: the states
include the first n records of the events log.

>>> runs = []
>>> [place(runs, "a1", t, 1800_000) for t in (0, 3_600_000, 1_800_000)]
['0000000000000:a1', '0000003600000:a1', '0000000000000:a1']
>>> [s.session_id for s in chains("a1", runs, 1800_000)]
['a1:0']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson

from shopkeep.storage.base import LogRecord, Store

__all__ = [
    "COLLECTION",
    "Placeable",
    "Placement",
    "Session",
    "SessionState",
    "Sessionizer",
    "chains",
    "place",
    "state_key",
]

COLLECTION = "event_sessions"
Run = list[Any]  # [label: str, lo: int, hi: int]


def state_key(anonymous_id: str | None, user_id: str | None) -> str:
    """The state document key of a shopper: ``a:<anonymous_id>`` when present, else ``u:<user_id>``."""
    return f"a:{anonymous_id}" if anonymous_id is not None else f"u:{user_id}"


def place(runs: list[Run], ident: str, ts: int, gap: int) -> str:
    """Place an event at ``ts`` among ``runs`` (sorted, disjoint; updated in place); return its label."""
    i = len(runs) - 1
    while i >= 0 and runs[i][1] > ts:  # skip runs that start after ts
        i -= 1
    before = runs[i] if i >= 0 else None  # the last run starting at or before ts
    if before is not None and ts <= before[2]:
        return str(before[0])
    after = runs[i + 1] if i + 1 < len(runs) else None
    d_before = ts - before[2] if before is not None else gap + 1
    d_after = after[1] - ts if after is not None else gap + 1
    if d_before <= gap and d_before <= d_after and before is not None:
        before[2] = ts
        return str(before[0])
    if d_after <= gap and after is not None:
        after[1] = ts
        return str(after[0])
    label = f"{ts:013d}:{ident}"
    runs.insert(i + 1, [label, ts, ts])
    return label


def put_label(runs: list[Run], label: str, ts: int) -> None:
    """Record that the event at ``ts`` is stored under run ``label`` (extending or creating that run)."""
    for run in runs:
        if run[0] == label:
            run[1], run[2] = min(run[1], ts), max(run[2], ts)
            return
    runs.append([label, ts, ts])
    runs.sort(key=lambda r: r[1])


@dataclass(frozen=True, slots=True)
class Session:
    """A session of one shopper: its id, time range (epoch ms) and the run labels (log partitions) in it."""

    session_id: str
    start_ms: int
    end_ms: int
    labels: tuple[str, ...]


def chains(ident: str, runs: Sequence[Run], gap: int) -> list[Session]:
    """The sessions of a shopper: runs chained while the gap between them is at most ``gap``."""
    out: list[Session] = []
    group: list[Run] = []
    for run in runs:
        if group and run[1] - group[-1][2] > gap:
            out.append(Session(f"{ident}:{group[0][1]}", group[0][1], group[-1][2], tuple(r[0] for r in group)))
            group = []
        group.append(run)
    if group:
        out.append(Session(f"{ident}:{group[0][1]}", group[0][1], group[-1][2], tuple(r[0] for r in group)))
    return out


@dataclass
class SessionState:
    """The in-memory state of one shopper key (see the module docstring)."""

    runs: list[Run]
    parts: list[str]

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> SessionState:
        """State from its stored document (empty when absent)."""
        if not doc:
            return cls([], [])
        return cls([list(r) for r in doc.get("runs", [])], list(doc.get("parts", [])))

    def to_doc(self) -> dict[str, Any]:
        """The stored document."""
        return {"runs": self.runs, "parts": self.parts}

    def copy(self) -> SessionState:
        """A deep copy."""
        return SessionState([list(r) for r in self.runs], list(self.parts))

    def add_part(self, partition: str) -> None:
        """Remember another partition holding this shopper's events."""
        if partition not in self.parts:
            self.parts.append(partition)


class Placeable(Protocol):
    """Anything with the four fields sessionization reads (a :class:`Placement`, or a richer record)."""

    @property
    def anonymous_id(self) -> str | None: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def ts_ms(self) -> int: ...


class Placement(NamedTuple):
    """What sessionization needs of one event."""

    anonymous_id: str | None
    user_id: str | None
    session_id: str | None
    ts_ms: int


class Sessionizer:
    """Assigns log partitions (run labels) to events, batch by batch, with state kept in ``store``.

    After each batch's append, :meth:`commit` writes the touched states and a marker (the events log's
    length) in one ``put_many``. Inside :meth:`deferred` states stay in memory and are written every
    ``flush_every`` batches instead. Either way, a crash between an append and the state write is
    repaired on the next use: :meth:`recover` replays the log records after the marker. One writer
    per store at a time: the state is read-modify-write.
    """

    def __init__(self, store: Store, *, timeout_s: int = 1800, log: str = "events") -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.log = log
        #: In :meth:`deferred` mode, write the states every this many batches.
        self.flush_every = 20
        self._cache: dict[str, SessionState] | None = None
        self._pending = 0
        self._recovered = False

    @property
    def gap_ms(self) -> int:
        """The inactivity gap in milliseconds."""
        return self.timeout_s * 1000

    @property
    def marker_key(self) -> str:
        """The document holding how much of the log the stored states include."""
        return f"log:{self.log}"

    def states_for(self, items: Iterable[Placeable]) -> dict[str, SessionState]:
        """In-memory states of every shopper key the items touch (one ``get_many`` for the uncached ones)."""
        self.recover()
        keys: dict[str, None] = {}
        for it in items:
            keys[state_key(it.anonymous_id, it.user_id)] = None
            if it.anonymous_id is not None and it.user_id is not None:
                keys[f"u:{it.user_id}"] = None
        cache = self._cache if self._cache is not None else {}
        missing = [key for key in keys if key not in cache]
        if missing:
            docs = self.store.get_many(COLLECTION, missing)
            for key in missing:
                cache[key] = SessionState.from_doc(docs.get(key))
        return {key: cache[key] for key in keys}

    def commit(self, states: Mapping[str, SessionState]) -> None:
        """Persist the states of a batch that is now appended (deferred: every ``flush_every`` batches)."""
        if self._cache is None:
            self._write(states)
            return
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the cached states and the marker now, and empty the cache (deferred mode)."""
        if self._cache:
            self._write(self._cache)
            self._cache.clear()
        self._pending = 0

    def _write(self, states: Mapping[str, SessionState], seq: int | None = None) -> None:
        docs = {key: st.to_doc() for key, st in states.items()}
        docs[self.marker_key] = {"seq": self.store.log_count(self.log) if seq is None else seq}
        self.store.put_many(COLLECTION, docs)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Keep states in memory across batches (a bulk load), writing them every ``flush_every`` batches."""
        self._cache, self._pending = {}, 0
        try:
            yield
        finally:
            self.flush()
            self._cache = None

    def recover(self) -> int:
        """Replay the log records appended after the last state write (once per instance); returns how many."""
        if self._recovered:
            return 0
        self._recovered = True
        marker = self.store.get_many(COLLECTION, [self.marker_key]).get(self.marker_key) or {}
        after, replayed = int(marker.get("seq", 0)), 0
        while page := self.store.read(self.log, after_seq=after, k=5000):
            items = [_placement(rec) for rec in page]
            states = self.states_for(items)
            self.replace(items, [rec.partition or "" for rec in page], states)
            self._write(states, page[-1].seq)
            after, replayed = page[-1].seq, replayed + len(page)
        return replayed

    def rebuild(self, keys: Iterable[str], states: Mapping[str, SessionState]) -> None:
        """Shrink the runs of ``keys`` to the events actually stored under them (after refused events)."""
        for key in keys:
            runs = []
            for label, _, _ in states[key].runs:
                times = [rec.ts_ms for rec in _read_all(self.store, self.log, label)]
                if times:
                    runs.append([label, min(times), max(times)])
            states[key].runs[:] = sorted(runs, key=lambda r: r[1])

    def assign(self, items: Sequence[Placeable], states: dict[str, SessionState]) -> list[str]:
        """The partition of each item, updating ``states`` in memory; events are placed in time order."""
        gap = self.gap_ms
        labels: list[str] = [""] * len(items)
        for i in sorted(range(len(items)), key=[it.ts_ms for it in items].__getitem__):
            it = items[i]
            anon, user = it.anonymous_id, it.user_id
            state = states[f"a:{anon}" if anon is not None else f"u:{user}"]
            if it.session_id is not None:
                label = it.session_id
                state.add_part(label)
            else:
                label = place(state.runs, anon if anon is not None else str(user), it.ts_ms, gap)
            if anon is not None and user is not None:
                states[f"u:{user}"].add_part(label)
            labels[i] = label
        return labels

    def replace(self, items: Sequence[Placeable], labels: Sequence[str], states: dict[str, SessionState]) -> None:
        """Record already-chosen labels in ``states`` (used to drop refused events from a batch's state)."""
        for it, label in zip(items, labels, strict=True):
            anon, user = it.anonymous_id, it.user_id
            state = states[f"a:{anon}" if anon is not None else f"u:{user}"]
            if it.session_id is not None:
                state.add_part(label)
            else:
                put_label(state.runs, label, it.ts_ms)
            if anon is not None and user is not None:
                states[f"u:{user}"].add_part(label)

    def sessions(self, key: str) -> list[Session]:
        """The sessions of one shopper key (``a:<anonymous_id>`` or ``u:<user_id>``) in time order."""
        doc = self.store.get_many(COLLECTION, [key]).get(key)
        return chains(key[2:], SessionState.from_doc(doc).runs, self.gap_ms)


def _placement(rec: LogRecord) -> Placement:
    raw = orjson.loads(rec.payload)
    return Placement(raw.get("anonymous_id"), raw.get("user_id"), raw.get("session_id"), rec.ts_ms)


def _read_all(store: Store, log: str, partition: str) -> list[LogRecord]:
    out: list[LogRecord] = []
    after = 0
    while page := store.read(log, after_seq=after, k=5000, partition=partition):
        out.extend(page)
        after = page[-1].seq
    return out
