"""Training inputs read back from the durable event log (the OFFLINE path's first step).

Models train on what the engine actually stored — not on a side copy of the data — so what they learn
and what serving sees cannot drift apart. Anonymous events are attributed to the user their anonymous
id was linked to (login stitching), through the identity graph.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable

from shopkeep.events.log import EVENTS_LOG
from shopkeep.profiles import IdentityGraph
from shopkeep.storage.base import Store

__all__ = ["DEFAULT_SIGNALS", "interaction_sequences"]

#: Event types that count as a positive interaction with an item for next-item models.
DEFAULT_SIGNALS: tuple[str, ...] = ("view", "add_to_cart", "purchase")

_PAGE = 20_000


def interaction_sequences(
    store: Store,
    *,
    signals: Iterable[str] = DEFAULT_SIGNALS,
    unique: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[str]]:
    """Per shopper, the item ids of their ``signals`` events in event-time order.

    The shopper key is the user_id when known (directly or through a linked anonymous id), else
    ``"anon:" + anonymous_id``. With ``unique`` only the first interaction with each item is kept (the
    seqrec benchmarks' convention). ``progress`` is called with the number of records read so far.
    """
    wanted = frozenset(signals)
    rows: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # key -> (ts_ms, seq, item)
    anon_rows: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    after, read = 0, 0
    while True:
        page = store.read(EVENTS_LOG, after_seq=after, k=_PAGE)
        for record in page:
            event = json.loads(record.payload)
            item = event.get("item_id")
            if item is None or event["type"] not in wanted:
                continue
            user = event.get("user_id")
            if user is not None:
                rows[user].append((record.ts_ms, record.seq, item))
            else:
                anon_rows[event["anonymous_id"]].append((record.ts_ms, record.seq, item))
        read += len(page)
        if progress is not None:
            progress(read)
        if len(page) < _PAGE:
            break
        after = page[-1].seq
    linked = IdentityGraph(store).user_of(sorted(anon_rows))
    for anon, events in anon_rows.items():
        key = linked.get(anon)
        rows[key if key is not None else f"anon:{anon}"].extend(events)
    out: dict[str, list[str]] = {}
    for key in sorted(rows):
        items = [item for _, _, item in sorted(rows[key])]
        if unique:
            items = list(dict.fromkeys(items))
        out[key] = items
    return out
