"""shopkeep.events: event schema and validation, sessionization, the event log and the served-slate log."""

from shopkeep.events.log import (
    EVENTS_LOG,
    SLATES_LOG,
    ImpressionJoin,
    SlateRecord,
    append_slates,
    event_payload,
    event_record,
    events_of_session,
    events_of_user,
    join_impressions,
    read_slates,
)
from shopkeep.events.schema import (
    canonical_json,
    clean_event,
    event_to_dict,
    parse_event,
    parse_events_jsonl,
)
from shopkeep.events.sessions import Session, Sessionizer

__all__ = [
    "EVENTS_LOG",
    "SLATES_LOG",
    "ImpressionJoin",
    "Session",
    "Sessionizer",
    "SlateRecord",
    "append_slates",
    "canonical_json",
    "clean_event",
    "event_payload",
    "event_record",
    "event_to_dict",
    "events_of_session",
    "events_of_user",
    "join_impressions",
    "parse_event",
    "parse_events_jsonl",
    "read_slates",
]
