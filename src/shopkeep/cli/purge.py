"""``shopkeep purge``: run the event-retention purge (``events.retention_days``) on the configured store.

Deletes the records of the ``events`` log (or the logs named with ``--log``) whose event time is older
than the time-to-live, and the sessionization state of shoppers left without any event
(:func:`shopkeep.pipeline.erasure.purge_expired`: SQLite with secure delete and a WAL truncate,
PostgreSQL with a VACUUM where the role may). ``--older-than 30`` (days; ``36h`` and ``90d`` work too)
overrides the configured TTL; ``--dry-run`` counts what would go and deletes nothing. Prints the count
per table (``--json``: one JSON object). Run it from cron or a scheduler; the Ingestor already refuses
events older than the TTL, so what is purged does not come back.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["count_expired", "parse_age", "register", "run"]

_SESSIONS = "event_sessions"
_UNITS = {"d": 1.0, "h": 1.0 / 24.0}


def register(sub: Any) -> None:
    """Add the ``purge`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("purge", help="delete events older than the retention period")
    p.add_argument("--store", help="storage URI (default: storage.uri of the config)")
    p.add_argument("--older-than", help="age in days (e.g. 90, 90d or 36h); default: events.retention_days")
    p.add_argument("--log", action="append", help="log to purge (repeatable; default: events)")
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    p.set_defaults(handler=run)


def parse_age(text: str) -> float:
    """Days in ``text``: a positive number of days, optionally suffixed ``d`` (days) or ``h`` (hours).

    >>> parse_age("90"), parse_age("90d"), parse_age("36h")
    (90.0, 90.0, 1.5)
    """
    from shopkeep.errors import ValidationError

    raw = text.strip().lower()
    scale = _UNITS.get(raw[-1:], 1.0)
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        days = float(number) * scale
    except ValueError:
        days = float("nan")
    if not 0 < days < float("inf"):
        raise ValidationError("--older-than", text, "must be a positive age in days (e.g. 90, 90d or 36h)")
    return days


def count_expired(store: Any, cutoff: datetime, logs: Sequence[str]) -> dict[str, int]:
    """What :func:`~shopkeep.pipeline.erasure.purge_expired` with this ``cutoff`` would delete, per table,
    read through the store's public API (nothing is changed)."""
    from shopkeep.events.log import EVENTS_LOG
    from shopkeep.storage.base import iter_collection
    from shopkeep.types import to_epoch_ms

    cut = to_epoch_ms(cutoff)
    counts: dict[str, int] = {}
    for log in logs:
        n, after = 0, 0
        while True:
            page = store.read(log, after_seq=after, k=5000)
            n += sum(rec.ts_ms < cut for rec in page)
            if len(page) < 5000:
                break
            after = page[-1].seq
        counts[log] = n
    if counts.get(EVENTS_LOG):  # the same rule as erasure._purge_sessions: every run of the shopper ended before
        counts[_SESSIONS] = sum(
            1
            for key, doc in iter_collection(store, _SESSIONS)
            if key[:2] in ("a:", "u:") and doc.get("runs") and all(int(r[2]) < cut for r in doc["runs"])
        )
    return counts


def run(args: argparse.Namespace) -> int:
    """Purge (or count) and print the counts per table; a TTL of 0 without ``--older-than`` is an error."""
    from rich.console import Console

    from shopkeep.config import load_config
    from shopkeep.errors import ValidationError
    from shopkeep.events.log import EVENTS_LOG
    from shopkeep.pipeline.erasure import purge_expired
    from shopkeep.storage import open_store

    config = load_config(args.config)
    if args.older_than is not None:
        days = parse_age(args.older_than)
    elif config.events.retention_days > 0:
        days = float(config.events.retention_days)
    else:
        raise ValidationError(
            "events.retention_days",
            config.events.retention_days,
            "is 0 (keep forever): set a retention period or pass --older-than DAYS",
        )
    logs = list(dict.fromkeys(args.log or [EVENTS_LOG]))
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=days)
    store = open_store(args.store or config.storage.uri)
    try:
        with Console(stderr=True).status(
            f"{'counting' if args.dry_run else 'purging'} records before "
            f"{cutoff.isoformat(timespec='seconds')} in {', '.join(logs)} ..."
        ):
            if args.dry_run:
                counts = count_expired(store, cutoff, logs)
            else:
                counts = purge_expired(store, days, now=now, logs=logs).deleted
    finally:
        store.close()
    counts.setdefault(_SESSIONS, 0)
    if args.json:
        print(
            json.dumps(
                {
                    "cutoff": cutoff.isoformat().replace("+00:00", "Z"),
                    "older_than_days": days,
                    "dry_run": bool(args.dry_run),
                    "counts": counts,
                    "total": sum(counts.values()),
                }
            )
        )
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    print(f"records older than {days:g} days (before {cutoff.isoformat(timespec='seconds')}): {verb}")
    for table, n in counts.items():
        print(f"  {table}: {n}")
    if args.dry_run:
        print("dry run: nothing was deleted")
    return 0
