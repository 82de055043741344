"""The event write path: validate -> dedupe -> sessionize -> append -> stitch logins.

:class:`Ingestor` takes raw wire-format events (dicts, or a JSONL file streamed in batches of
``events.batch_size``) and stores them in the ``events`` log of a Store:

* invalid events are rejected with a :class:`~shopkeep.errors.ValidationError` naming line, field
  and value; in ``on_error="reject"`` mode one bad line means nothing from the file is stored;
* an event_id already stored (or earlier in the batch) with the same canonical payload is a
  duplicate (nothing changes); with a different payload it is a conflict: refused, reported as a
  :class:`~shopkeep.errors.ConflictError`, the stored event untouched;
* events without a session_id are sessionized by event time (:mod:`shopkeep.events.sessions`);
* with ``events.retention_days`` > 0, an event older than that is refused (``timestamp``: it would be
  purged anyway, and a purged event re-sent must not come back);
* a login event links its anonymous_id to its user_id in the :class:`~shopkeep.profiles.IdentityGraph`,
  so :meth:`Ingestor.events_of_user` then includes the earlier anonymous events.

Reject mode validates the whole file first (in-file duplicate ids with different payloads count as
bad lines); conflicts with events stored *before* the file are still refused one by one.
"""

from __future__ import annotations

import gc
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

from shopkeep.config import Config
from shopkeep.errors import ConflictError, ValidationError
from shopkeep.events.log import EVENTS_LOG, events_of_session, events_of_user
from shopkeep.events.schema import canonical_json, clean_event, clean_line, now_epoch_ms
from shopkeep.events.sessions import Sessionizer, SessionState, chains, state_key
from shopkeep.profiles import IdentityGraph
from shopkeep.storage.base import LogRecord, Store
from shopkeep.types import Event

__all__ = ["MAX_REPORTED_ERRORS", "IngestReport", "Ingestor", "Parsed", "default_parse_workers", "parse_chunk"]

MAX_REPORTED_ERRORS = 1000
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest did. ``errors``/``conflict_errors`` keep the first 1000 of each; counts are exact.

    ``stored`` is False when reject mode refused a whole file (then ``accepted`` is 0). ``sessions``
    maps each stored or duplicate event_id to its session id as of this ingest (``ingest_batch``
    only; a later late event can merge sessions, see :mod:`shopkeep.events.sessions`).
    """

    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    logins_linked: int = 0
    errors: tuple[ValidationError, ...] = ()
    conflict_errors: tuple[ConflictError, ...] = ()
    stored: bool = True
    seconds: float = 0.0
    sessions: Mapping[str, str] = field(default_factory=dict)

    @property
    def seen(self) -> int:
        """Events looked at: accepted + duplicates + conflicts + rejected."""
        return self.accepted + self.duplicates + self.conflicts + self.rejected

    def __add__(self, other: IngestReport) -> IngestReport:
        return IngestReport(
            self.accepted + other.accepted, self.duplicates + other.duplicates, self.conflicts + other.conflicts,
            self.rejected + other.rejected, self.logins_linked + other.logins_linked,
            (self.errors + other.errors)[:MAX_REPORTED_ERRORS],
            (self.conflict_errors + other.conflict_errors)[:MAX_REPORTED_ERRORS],
            self.stored and other.stored, self.seconds + other.seconds, {**self.sessions, **other.sessions},
        )


class Parsed(NamedTuple):
    """A validated event reduced to what the write path needs (cheap to pass between processes)."""

    event_id: str
    ts_ms: int
    payload: str
    anonymous_id: str | None
    user_id: str | None
    session_id: str | None
    is_login: bool
    line: int | None


def parse_chunk(lines: Sequence[bytes], first_line: int, max_line_bytes: int, now_ms: int
                ) -> tuple[list[Parsed], list[tuple[str, Any, str, int | None]]]:
    """Validate JSONL lines numbered from ``first_line``: the events, and each bad line's
    ``(field, value, reason, line)`` (plain tuples: they cross process boundaries)."""
    out: list[Parsed] = []
    bad: list[tuple[str, Any, str, int | None]] = []
    for number, raw_line in enumerate(lines, first_line):
        try:
            found = clean_line(raw_line, number, max_line_bytes=max_line_bytes, now_ms=now_ms)
            if found is not None:
                out.append(_parsed(found[0], found[1], number))
        except ValidationError as exc:
            bad.append((exc.field, exc.value, exc.reason, number))
    return out, bad


def _parsed(clean: dict[str, Any], ts: int, line: int | None) -> Parsed:
    return Parsed(clean["event_id"], ts, canonical_json(clean), clean.get("anonymous_id"), clean.get("user_id"),
                  clean.get("session_id"), clean["type"] == "login", line)


@dataclass
class _Batch:
    """Validated events of one batch, deduplicated inside the batch as they are added."""

    events: list[Parsed] = field(default_factory=list)
    first: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    conflicts: list[ConflictError] = field(default_factory=list)

    def add_all(self, events: Iterable[Parsed]) -> _Batch:
        """Add events; a repeated event_id is counted as a duplicate or recorded as a conflict."""
        first, kept = self.first, self.events
        for ev in events:
            j = first.get(ev.event_id)
            if j is None:
                first[ev.event_id] = len(kept)
                kept.append(ev)
            elif kept[j].payload == ev.payload:
                self.duplicates += 1
            else:
                self.conflicts.append(_conflict(ev.event_id, ev.line, f"differs from the event on line {kept[j].line}"))
        return self


def _conflict(event_id: str, line: int | None, why: str) -> ConflictError:
    where = f"line {line}: " if line is not None else ""
    return ConflictError(f"{where}event_id={event_id!r}: {why}",
                         {"field": "event_id", "value": event_id, "reason": why, **({"line": line} if line else {})})


def default_parse_workers() -> int:
    """Parse workers worth starting here: cores beyond two (the storing process and SQLite), at most 3.

    With orjson, parsing is about a third of the work and shipping lines/results between processes
    costs a good part of that, so a worker only pays off when a core is really free (measured on 2
    shared cores: slower).
    """
    return max(0, min((os.cpu_count() or 1) - 2, 3))


class Ingestor:
    """Stores shopper events in ``store``: the write path's orchestration (see the module docstring).

    ``parse_workers`` > 0 parses files of 8 MB or more in that many spawned processes (for programs
    with a ``__main__`` guard, such as the ``shopkeep`` command).
    """

    def __init__(self, store: Store, config: Config | None = None, *, graph: IdentityGraph | None = None,
                 parse_workers: int = 0) -> None:
        self.store = store
        self.config = config if config is not None else Config()
        self.graph = graph if graph is not None else IdentityGraph(store)
        self.sessionizer = Sessionizer(store, timeout_s=self.config.events.session_timeout_s)
        #: Spawned processes that parse big JSONL files while this one stores (0: parse here). The
        #: calling program's main module must be import-safe (``if __name__ == "__main__":``).
        self.parse_workers = parse_workers
        #: Files smaller than this are parsed in this process (starting workers costs ~0.3 s).
        self.parallel_min_bytes = 8_000_000

    # -- write path ---------------------------------------------------------------------------
    def ingest_batch(self, raw_events: Sequence[Mapping[str, Any]], *, first_line: int = 1) -> IngestReport:
        """Validate and store a batch; event i is reported as line ``first_line + i``."""
        start = time.perf_counter()
        now = now_epoch_ms()
        parsed: list[Parsed] = []
        errors: list[ValidationError] = []
        for i, raw in enumerate(raw_events):
            try:
                clean, ts = clean_event(raw, line=first_line + i, now_ms=now)
                parsed.append(_parsed(clean, ts, first_line + i))
            except ValidationError as exc:
                line = first_line + i
                errors.append(exc if exc.line else ValidationError(exc.field, exc.value, exc.reason, line=line))
        report = self._store(_Batch().add_all(parsed), errors, with_sessions=True)
        return replace(report, seconds=time.perf_counter() - start)

    def _expired(self, events: list[Parsed], errors: list[ValidationError]) -> list[Parsed]:
        """``events`` without those older than ``events.retention_days`` (each added to ``errors``)."""
        days = self.config.events.retention_days
        if days <= 0:
            return events
        cutoff = now_epoch_ms() - int(days * 86_400_000)
        kept = [ev for ev in events if ev.ts_ms >= cutoff]
        if len(kept) < len(events):
            errors.extend(ValidationError("timestamp", ev.ts_ms, f"is older than the retention period "
                                          f"(events.retention_days={days:g}): not stored", line=ev.line)
                          for ev in events if ev.ts_ms < cutoff)
        return kept

    def _store(self, batch: _Batch, errors: list[ValidationError], *, with_sessions: bool = False) -> IngestReport:
        conflicts = list(batch.conflicts)
        events = self._expired(batch.events, errors)
        if not events:
            return IngestReport(0, batch.duplicates, len(conflicts), len(errors), 0,
                                tuple(errors[:MAX_REPORTED_ERRORS]), tuple(conflicts[:MAX_REPORTED_ERRORS]))
        states = self.sessionizer.states_for(events)
        labels = self.sessionizer.assign(events, states)
        records = [LogRecord(ev.event_id, ev.ts_ms, ev.payload, label)
                   for ev, label in zip(events, labels, strict=True)]
        result = self.store.append(EVENTS_LOG, records)
        refused = set(result.conflicts)
        if refused:
            hit = [state_key(ev.anonymous_id, ev.user_id) for ev in events
                   if ev.event_id in refused and ev.session_id is None]
            self.sessionizer.rebuild(dict.fromkeys(hit), states)
            conflicts += [_conflict(ev.event_id, ev.line, "is already stored with a different payload (not changed)")
                          for ev in events if ev.event_id in refused]
        self.sessionizer.commit(states)
        sessions = self._session_ids(events, labels, states, refused) if with_sessions else {}
        logins = [(str(ev.anonymous_id), str(ev.user_id), ev.ts_ms) for ev in events
                  if ev.is_login and ev.event_id not in refused]  # a login carries both ids (schema)
        linked = self.graph.link_many(logins) if logins else 0
        return IngestReport(
            len(result.inserted), batch.duplicates + len(result.duplicates), len(conflicts), len(errors), linked,
            tuple(errors[:MAX_REPORTED_ERRORS]), tuple(conflicts[:MAX_REPORTED_ERRORS]), sessions=sessions,
        )

    def _session_ids(self, events: Sequence[Parsed], labels: Sequence[str], states: Mapping[str, SessionState],
                     refused: set[str]) -> dict[str, str]:
        """event_id -> session id now (client-given, or the chain holding the event's run label)."""
        out: dict[str, str] = {}
        by_key: dict[str, dict[str, str]] = {}
        gap = self.sessionizer.gap_ms
        for ev, label in zip(events, labels, strict=True):
            if ev.event_id in refused:
                continue
            if ev.session_id is not None:
                out[ev.event_id] = ev.session_id
                continue
            key = state_key(ev.anonymous_id, ev.user_id)
            found = by_key.get(key)
            if found is None:
                found = by_key[key] = {lab: s.session_id for s in chains(key[2:], states[key].runs, gap)
                                       for lab in s.labels}
            out[ev.event_id] = found.get(label, label)
        return out

    def ingest_jsonl(
        self,
        path: str | Path,
        on_error: Literal["skip", "reject"] = "skip",
        progress: bool | Progress = True,
    ) -> IngestReport:
        """Stream a JSONL file into the store in batches of ``events.batch_size``.

        ``on_error="skip"`` stores the good lines; ``"reject"`` stores nothing if any line is bad.
        ``progress``: True draws a rich progress bar, a callable gets (bytes done, bytes total).
        """
        if on_error not in ("skip", "reject"):
            raise ValidationError("on_error", on_error, "must be 'skip' or 'reject'")
        file = Path(path)
        if not file.is_file():
            raise ValidationError("path", str(path), "is not a readable file")
        start = time.perf_counter()
        with _gc_paused(), _ProgressOf(progress, file.stat().st_size) as tick:
            if on_error == "reject":
                verdict = self._check_file(file, tick)
                if verdict.rejected:
                    return replace(verdict, seconds=time.perf_counter() - start)
            report = IngestReport()
            with self.sessionizer.deferred():
                for batch, errors in self._batches(file, tick):
                    report = report + self._store(batch, errors)
        return replace(report, seconds=time.perf_counter() - start)

    def _batches(self, file: Path, tick: Progress) -> Iterator[tuple[_Batch, list[ValidationError]]]:
        """Batches of validated events in file order; parsed in worker processes for big files."""
        limit = self.config.events.max_line_bytes
        now = now_epoch_ms()
        total = file.stat().st_size
        workers = self.parse_workers if total >= self.parallel_min_bytes else 0
        with file.open("rb") as fh:
            chunks = _chunks(fh, self.config.events.batch_size, limit)
            for (parsed, bad), done in _parse_all(chunks, workers, limit, now):
                errors = [ValidationError(f, v, r, line=n) for f, v, r, n in bad]
                yield _Batch().add_all(parsed), errors
                tick(done, total)
        tick(total, total)

    def _check_file(self, file: Path, tick: Progress) -> IngestReport:
        """Reject mode's first pass: every line valid, no event_id twice with different payloads."""
        payload_of: dict[str, tuple[int, int | None]] = {}
        report = IngestReport()
        for batch, errors in self._batches(file, lambda done, total: tick(done // 2, total)):
            conflicts = [*batch.conflicts]
            for ev in batch.events:
                digest = hash(ev.payload)
                seen = payload_of.setdefault(ev.event_id, (digest, ev.line))
                if seen[0] != digest:
                    conflicts.append(_conflict(ev.event_id, ev.line, f"differs from the event on line {seen[1]}"))
            report = report + IngestReport(rejected=len(errors) + len(conflicts), errors=tuple(errors),
                                           conflict_errors=tuple(conflicts))
        if report.rejected:
            return replace(report, stored=False)
        return report

    # -- read path ----------------------------------------------------------------------------
    def events_of_session(self, session_id: str) -> list[Event]:
        """Events of a session in event-time order (late events placed by their time)."""
        self.sessionizer.recover()
        return events_of_session(self.store, session_id, timeout_s=self.config.events.session_timeout_s)

    def events_of_user(self, user_id: str) -> list[Event]:
        """Events of a user in event-time order, including anonymous events linked by a login."""
        self.sessionizer.recover()
        anons = self.graph.anonymous_ids(user_id)
        return events_of_user(self.store, user_id, anons, timeout_s=self.config.events.session_timeout_s)

    def sessions_of(self, anonymous_id: str) -> list[str]:
        """Session ids of an anonymous shopper, oldest first."""
        self.sessionizer.recover()
        return [s.session_id for s in self.sessionizer.sessions(f"a:{anonymous_id}")]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: ingest makes no cycles, and full collections over the
    millions of short-lived dicts of a big file cost more than half of the parse time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _chunks(fh: IO[bytes], size: int, limit: int) -> Iterator[tuple[list[bytes], int, int]]:
    """``(lines, number of the first, bytes read so far)`` for consecutive runs of ``size`` lines."""
    lines: list[bytes] = []
    first = 1
    for number, line in enumerate(_read_lines(fh, limit), 1):
        lines.append(line)
        if len(lines) >= size:
            yield lines, first, fh.tell()
            lines, first = [], number + 1
    if lines:
        yield lines, first, fh.tell()


def _parse_all(chunks: Iterator[tuple[list[bytes], int, int]], workers: int, limit: int, now: int
               ) -> Iterator[tuple[tuple[list[Parsed], list[tuple[str, Any, str, int | None]]], int]]:
    """Parse chunks in order, in this process (workers=0) or ``workers`` spawned processes,
    keeping at most two chunks per worker in flight."""
    if workers <= 0:
        for lines, first, done in chunks:
            yield parse_chunk(lines, first, limit, now), done
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=gc.disable) as pool:
        pending: deque[tuple[Future[Any], int]] = deque()
        for lines, first, done in chunks:
            pending.append((pool.submit(parse_chunk, lines, first, limit, now), done))
            if len(pending) > 2 * workers:
                future, at = pending.popleft()
                yield future.result(), at
        while pending:
            future, at = pending.popleft()
            yield future.result(), at


def _read_lines(fh: IO[bytes], limit: int) -> Iterator[bytes]:
    """Lines of a binary file; a line over ``limit`` bytes is yielded as its first ``limit + 1`` bytes."""
    cap = limit + 2  # room for "\r\n"
    readline = fh.readline
    while True:
        line = readline(cap)
        if not line:
            return
        if len(line) == cap and not line.endswith(b"\n"):
            while True:  # skip the rest of a huge line without holding it in memory
                rest = readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            line = line[: limit + 1]
        elif line.endswith(b"\n"):
            line = line.rstrip(b"\r\n")
        yield line


class _ProgressOf:
    """Context manager yielding a progress callback: rich bar, user callback, or nothing."""

    def __init__(self, progress: bool | Progress, total: int) -> None:
        self.progress = progress
        self.total = total
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if callable(self.progress):
            return self.progress
        if not self.progress:
            return lambda done, total: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        self._bar = Progress("[bold]ingest events", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                             TimeRemainingColumn(), transient=False)
        self._bar.start()
        task = self._bar.add_task("events", total=self.total)
        return lambda done, total: self._bar.update(task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
